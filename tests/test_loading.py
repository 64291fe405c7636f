"""Model loading: embedded offline models, the cache, tiny models, helpful errors."""

import json
import shutil

import pytest
import torch

import nbtoolkit
from nbtoolkit.core import loading as models
from nbtoolkit.core.loading import TINY_FAMILIES, load_model, tiny_model


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


def test_cache_manifest_detects_partial_entries(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    (tmp_path / models.MANIFEST).write_text(json.dumps(
        {"format": models.CACHE_FORMAT, "files": {"model.safetensors": 10}}))
    assert models._cache_is_valid(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 7)  # a write cut short
    assert not models._cache_is_valid(tmp_path)
    (tmp_path / models.MANIFEST).unlink()
    assert not models._cache_is_valid(tmp_path)


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


@pytest.mark.slow
def test_corrupt_cache_entry_is_rebuilt(default_lm, tmp_path, monkeypatch):
    source = models.cache_dir() / "smollm2-135m-instruct"
    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path))
    shutil.copytree(source, tmp_path / "smollm2-135m-instruct")
    weights = tmp_path / "smollm2-135m-instruct" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    lm = load_model("smollm2-135m-instruct")  # rebuilt from the GGUF, not read half-written
    assert models._cache_is_valid(tmp_path / "smollm2-135m-instruct")
    torch.testing.assert_close(lm.next_token_probs("The capital of France is"),
                               default_lm.next_token_probs("The capital of France is"))
    assert not list(tmp_path.glob(".smollm2*")), "temporary build folders are cleaned up"
