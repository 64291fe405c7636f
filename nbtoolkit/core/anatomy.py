"""The anatomy of each model family: site names, module paths, weight names and config keys.

This is the only file in nbtoolkit that names a model's internals. Methods speak of sites
(``layer.5.mlp``) and ask this file for weights (:func:`weight`) and sizes (:func:`config_value`).

Site names, the same for every family (built by :func:`site_name`, read back by :func:`parse_site`):

    embed               token embeddings (before position embeddings)         [batch, seq, d_model]
    positions           absolute position embeddings added to them, where the
                        family has them (GPT-2, OPT, BERT, RoBERTa)           [batch, seq, d_model]
    layer.{i}.in        residual stream entering block i                      [batch, seq, d_model]
    layer.{i}           residual stream leaving block i                       [batch, seq, d_model]
    layer.{i}.attn      attention output, the term added to the residual     [batch, seq, d_model]
    layer.{i}.mlp       MLP output, the term added to the residual           [batch, seq, d_model]
    layer.{i}.attn.heads  per-head attention outputs, the input of the output
                        projection split by head                              [batch, seq, n_heads, d_head]
    layer.{i}.attn.q/.k/.v  per-head queries, keys, values as the heads read them
                        (before rotary embeddings; after per-head or whole-
                        layer query/key norms where those come first), where
                        the family's table says where (``qkv``, ``qkv_fused``)  [batch, seq, n_heads or n_kv_heads, d_head]
    final_norm          output of the final normalisation                     [batch, seq, d_model]
    logits              the head's output: an LM head's                       [batch, seq, vocab]
                        or a sequence classifier's                            [batch, classes]

Layers, one numbering everywhere: **layer i is block i** (0 … n_layers − 1), and "the hidden
state at layer i" is the residual stream leaving it (site ``layer.{i}``). Where a table or a
method also reads the embeddings (CCS layer sweeps, SelfIE), they are **layer −1**, site ``embed``
(:func:`residual_site`). Hugging Face's ``hidden_states[i + 1]`` is our layer i.

Encoder-decoders (T5) have two stacks, named by a prefix: ``encoder.layer.{i}.mlp``,
``decoder.layer.{i}``, ``decoder.layer.{i}.cross_attn`` (the cross-attention's term),
``encoder.embed`` / ``decoder.embed`` (the embeddings entering the stack), ``encoder.final_norm``.

What ``attn`` and ``mlp`` are, per block layout (:attr:`Family.block`): in a pre-norm block the
block's output is ``in + attn + mlp``; in a parallel block (GPT-J, GPT-NeoX, Phi) both read one
norm of ``in`` and the sum is the same; Gemma-2/3 and OLMo-2 normalise each term before adding
it, so there the sites are the outputs of those post-norms (the sum still holds); in a post-norm
block (BERT, RoBERTa, DeBERTa) the sites are the terms before each Add & Norm:
``out = norm2(norm1(in + attn) + mlp)``. Mixtral's ``mlp`` is the whole sparse (mixture of
experts) block's output. Gemma-2's ``logits`` are before its final soft-capping.

Any other string is taken as a raw module path (``"model.layers.3.mlp"``), read at its output.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class TinySizes:
    """The sizes of a tiny test model (:func:`nbtoolkit.core.tiny.tiny_model`): each family's
    :attr:`Family.tiny` turns them into its config, in the config keys the family uses."""

    vocab: int
    d_model: int
    n_layers: int
    n_kv_heads: int
    context: int
    ids: dict  # the tokenizer's pad_token_id, bos_token_id, eos_token_id
    heads: int = 4

    @property
    def d_head(self) -> int:
        return self.d_model // self.heads

    @property
    def common(self) -> dict:
        """The keys most families share (Llama's names)."""
        return dict(vocab_size=self.vocab, hidden_size=self.d_model,
                    intermediate_size=2 * self.d_model, num_hidden_layers=self.n_layers,
                    num_attention_heads=self.heads, max_position_embeddings=self.context,
                    tie_word_embeddings=False, **self.ids)

    @property
    def grouped(self) -> dict:
        """:attr:`common` with grouped-query attention."""
        return dict(self.common, num_key_value_heads=self.n_kv_heads)

    @property
    def encoder(self) -> dict:
        """:attr:`common` without dropout (BERT's names)."""
        return dict(self.common, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


TinyConfig = Callable[[TinySizes], tuple[str, dict]]  # sizes -> (transformers config class, kwargs)


@dataclass(frozen=True)
class Family:
    """Where things live in one family's Hugging Face model.

    Module paths start at the model's body (``model.base_model``, so they hold for every head):
    ``layers`` (the block list) and ``final_norm`` (``None``: the blocks end with a norm); inside
    a block ``attn`` / ``mlp`` (the terms added to the residual stream), ``heads`` (the attention
    output projection, whose input is split by head), ``cross_attn`` (a decoder's cross-attention).
    ``kind``: ``"decoder"``, ``"encoder"`` or ``"encoder-decoder"`` (then ``decoder`` holds the
    decoder stack's table). ``block``: where the norms sit (``"pre-norm"``; ``"parallel"``:
    attention and MLP read one norm; ``"sandwich"``: before and after each sublayer;
    ``"norm-after"``: after each sublayer only; ``"post-norm"``: after each residual sum), see the
    module docstring; ``norm``: ``"rms"`` or ``"layer"`` (LayerNorm, which also centres).

    Positions: ``positions`` an absolute position embedding added to the token embeddings (the
    table's row of position 0 is ``position_offset``: 2 for OPT and RoBERTa); ``position_ids``
    whether the forward takes position ids counted from 0 (RoBERTa counts them itself from the
    padding, T5 has relative positions only). Oddities: ``embed_in`` a projection from the token
    embeddings to ``d_model`` (OPT-350m); ``embed_out`` its projection back, between the final
    norm and the LM head (:func:`readout`); ``flat_mlp`` the MLP runs on ``[batch·seq, d]`` rows
    (OPT); ``first_block_out`` a module that rewrites block 0's output (DeBERTa-v2's convolution).
    ``stack``: the module whose forward takes the attention mask and runs the blocks, every time
    (``""``: the body itself; OPT's LM calls its ``decoder`` without the body; T5's two stacks).

    ``notes``: what a reader of the family table (docs/guides/families.md) should know. ``tiny``: the config of
    the family's tiny test model, ``sizes -> (transformers config class name, keyword arguments)``
    (see :class:`TinySizes`; :func:`nbtoolkit.core.tiny.tiny_model` builds it).

    Weights read by weight-based explanations (``None`` where the family fuses or lacks them):
    ``query``, ``key`` (the query/key projections), ``attn_norm`` (the attention's input norm),
    ``query_norm`` / ``key_norm`` (per-head query/key norms), ``mlp_values`` (the MLP's output
    projection: one value vector per neuron), ``mlp_values_norm`` (a norm applied to the MLP
    output before the residual), ``mlp_weights`` (the module holding all the MLP's own weights,
    trained by SelfIE control; on Gemma-3 the ``mlp`` site is the post-norm, not this).

    Per-head queries, keys and values (sites ``layer.{i}.attn.q/.k/.v``): ``qkv`` the three
    modules whose outputs they are, or ``qkv_fused`` one module whose output holds all three,
    laid out as ``qkv_layout``: ``"concat"`` (``[q | k | v]`` on the last axis, keys and values
    with ``n_kv_heads``) or ``"per_head"`` (``[..., head, q | k | v]``, GPT-NeoX).
    """

    layers: str
    attn: str
    mlp: str
    heads: str
    final_norm: str | None = None
    kind: str = "decoder"
    block: str = "pre-norm"
    norm: str = "rms"
    cross_attn: str | None = None
    decoder: Family | None = None
    positions: str | None = None
    position_offset: int = 0
    position_ids: bool = True
    embed_in: str | None = None
    embed_out: str | None = None
    flat_mlp: bool = False
    first_block_out: str | None = None
    stack: str = ""
    query: str | None = None
    key: str | None = None
    attn_norm: str | None = None
    query_norm: str | None = None
    key_norm: str | None = None
    mlp_values: str | None = None
    mlp_values_norm: str | None = None
    mlp_weights: str | None = "mlp"
    qkv: tuple[str, str, str] | None = None
    qkv_fused: str | None = None
    qkv_layout: str = "concat"
    notes: str = ""  # for the family table (docs/guides/families.md)
    tiny: TinyConfig | None = None


_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_LLAMA = Family(layers="layers", final_norm="norm", attn="self_attn", mlp="mlp",
                heads="self_attn.o_proj", query="self_attn.q_proj", key="self_attn.k_proj",
                attn_norm="input_layernorm", mlp_values="mlp.down_proj", qkv=_QKV)
# Gemma-2/3 and OLMo-2 normalise each sublayer's output before adding it: the sites are those norms
_POST_NORMED = dict(attn="post_attention_layernorm", mlp="post_feedforward_layernorm",
                    mlp_values_norm="post_feedforward_layernorm")
# Gemma-2/3: sandwich norms; their tiny heads have their own width and a short sliding window
_GEMMA = dict(layers="layers", final_norm="norm", heads="self_attn.o_proj", query="self_attn.q_proj",
              key="self_attn.k_proj", attn_norm="input_layernorm", mlp_values="mlp.down_proj",
              block="sandwich", qkv=_QKV, **_POST_NORMED)


def _gemma_tiny(config: str) -> TinyConfig:
    return lambda s: (config, dict(s.grouped, head_dim=s.d_head, sliding_window=8))


# BERT-style post-norm encoders: each sublayer's term is its output dense, before Add & Norm
_BERT = Family(layers="encoder.layer", attn="attention.output.dense", mlp="output.dense",
               heads="attention.output.dense", kind="encoder", block="post-norm", norm="layer",
               positions="embeddings.position_embeddings", query="attention.self.query",
               key="attention.self.key", mlp_values="output.dense", mlp_weights=None,
               notes="learned positions; Add & Norm after each sublayer, no final norm")
_T5_STACK = dict(attn="layer.0.SelfAttention", heads="layer.0.SelfAttention.o",
                 query="layer.0.SelfAttention.q", key="layer.0.SelfAttention.k",
                 attn_norm="layer.0.layer_norm", position_ids=False, mlp_weights=None)

# Adding a family (pyvene's checklist, one place): an entry below with its module paths, weights,
# notes and tiny config; an alias in MODEL_TYPES if its config's model_type differs; config keys
# CONFIG_KEYS does not know yet. tests/test_families.py then runs every method on its tiny model
# (and tests/test_docs.py checks that the docs' family table, nbtoolkit.tutorials.families, is included).
FAMILIES: dict[str, Family] = {
    "gpt2": Family(layers="h", final_norm="ln_f", attn="attn", mlp="mlp", heads="attn.c_proj",
                   norm="layer", positions="wpe", qkv_fused="attn.c_attn", notes="learned positions",
                   tiny=lambda s: ("GPT2Config", dict(
                       vocab_size=s.vocab, n_embd=s.d_model, n_layer=s.n_layers, n_head=s.heads,
                       n_positions=s.context, bos_token_id=s.ids["bos_token_id"],
                       eos_token_id=s.ids["eos_token_id"]))),
    "gpt_neox": Family(layers="layers", final_norm="final_layer_norm", attn="attention",
                       mlp="mlp", heads="attention.dense", block="parallel", norm="layer",
                       mlp_values="mlp.dense_4h_to_h", qkv_fused="attention.query_key_value",
                       qkv_layout="per_head",
                       notes="parallel attention and MLP (`use_parallel_residual`, the default)",
                       tiny=lambda s: ("GPTNeoXConfig", s.common)),
    "gptj": Family(layers="h", final_norm="ln_f", attn="attn", mlp="mlp", heads="attn.out_proj",
                   block="parallel", norm="layer", query="attn.q_proj", key="attn.k_proj",
                   attn_norm="ln_1", mlp_values="mlp.fc_out",
                   qkv=("attn.q_proj", "attn.k_proj", "attn.v_proj"),
                   notes="attention and MLP read one norm (`ln_1`); EleutherAI/gpt-j-6b",
                   tiny=lambda s: ("GPTJConfig", dict(
                       vocab_size=s.vocab, n_embd=s.d_model, n_layer=s.n_layers, n_head=s.heads,
                       n_positions=s.context, rotary_dim=s.d_head // 2, tie_word_embeddings=False,
                       **s.ids))),
    "opt": Family(layers="decoder.layers", final_norm="decoder.final_layer_norm", attn="self_attn",
                  stack="decoder",
                  mlp="fc2", heads="self_attn.out_proj", norm="layer",
                  positions="decoder.embed_positions", position_offset=2,
                  embed_in="decoder.project_in", embed_out="decoder.project_out", flat_mlp=True,
                  query="self_attn.q_proj", key="self_attn.k_proj", attn_norm="self_attn_layer_norm",
                  mlp_values="fc2", mlp_weights=None, qkv=_QKV,
                  notes="learned positions, offset 2; OPT-350m: post-norm, projections in and out "
                        "of the residual, no final norm",
                  tiny=lambda s: ("OPTConfig", dict(
                      {k: v for k, v in s.common.items() if k != "intermediate_size"},
                      ffn_dim=2 * s.d_model, word_embed_proj_dim=s.d_model))),
    "llama": replace(_LLAMA, tiny=lambda s: ("LlamaConfig", s.grouped)),
    "mistral": replace(_LLAMA, tiny=lambda s: ("MistralConfig", dict(s.grouped, sliding_window=None))),
    "mixtral": Family(layers="layers", final_norm="norm", attn="self_attn", mlp="mlp",
                      heads="self_attn.o_proj", query="self_attn.q_proj", key="self_attn.k_proj",
                      attn_norm="input_layernorm", qkv=_QKV,  # experts' weights: one fused tensor
                      notes="`mlp` is the whole sparse mixture-of-experts block's output",
                      tiny=lambda s: ("MixtralConfig", dict(s.grouped, num_local_experts=4,
                                                            num_experts_per_tok=2,
                                                            sliding_window=None))),
    "qwen2": replace(_LLAMA, tiny=lambda s: ("Qwen2Config", s.grouped)),
    "qwen3": Family(layers="layers", final_norm="norm", attn="self_attn", mlp="mlp",
                    heads="self_attn.o_proj", query="self_attn.q_proj", key="self_attn.k_proj",
                    attn_norm="input_layernorm", query_norm="self_attn.q_norm",
                    key_norm="self_attn.k_norm", mlp_values="mlp.down_proj", qkv=_QKV,
                    notes="per-head query/key norms",
                    tiny=lambda s: ("Qwen3Config", dict(s.grouped, head_dim=s.d_head))),
    "phi": Family(layers="layers", final_norm="final_layernorm", attn="self_attn", mlp="mlp",
                  heads="self_attn.dense", block="parallel", norm="layer",
                  query="self_attn.q_proj", key="self_attn.k_proj", attn_norm="input_layernorm",
                  query_norm="self_attn.q_layernorm", key_norm="self_attn.k_layernorm",
                  mlp_values="mlp.fc2", qkv=_QKV, notes="parallel attention and MLP; partial rotary",
                  tiny=lambda s: ("PhiConfig", dict(s.grouped, qk_layernorm=True))),
    "phi3": Family(layers="layers", final_norm="norm", attn="self_attn", mlp="mlp",
                   heads="self_attn.o_proj", attn_norm="input_layernorm",
                   mlp_values="mlp.down_proj", qkv_fused="self_attn.qkv_proj",
                   notes="fused qkv and gate-up projections",
                   tiny=lambda s: ("Phi3Config", s.grouped)),
    "gemma2": Family(**_GEMMA, notes="sliding windows; soft-capping (`logits` before the final one)",
                     tiny=_gemma_tiny("Gemma2Config")),
    "gemma3": Family(**_GEMMA, query_norm="self_attn.q_norm", key_norm="self_attn.k_norm",
                     notes="sliding windows; per-head query/key norms",
                     tiny=_gemma_tiny("Gemma3TextConfig")),
    # OLMo-2 has no input norms, and its q/k norms span all heads at once (not per head): a
    # head's query or key is read after the norm, where it no longer depends on other heads
    "olmo2": Family(layers="layers", final_norm="norm", heads="self_attn.o_proj",
                    query="self_attn.q_proj", key="self_attn.k_proj", mlp_values="mlp.down_proj",
                    block="norm-after", **_POST_NORMED,
                    qkv=("self_attn.q_norm", "self_attn.k_norm", "self_attn.v_proj"),
                    notes="query/key norms over all heads at once",
                    tiny=lambda s: ("Olmo2Config", s.grouped)),
    "bert": replace(_BERT, tiny=lambda s: ("BertConfig", s.encoder)),
    # RoBERTa counts positions from padding_idx + 1 = 2, from the ids themselves (so its tiny
    # position table starts at padding_idx + 1: the byte tokenizer's <pad> is 1)
    "roberta": replace(_BERT, position_offset=2, position_ids=False,
                       notes="learned positions, offset 2; Add & Norm, no final norm",
                       tiny=lambda s: ("RobertaConfig", dict(
                           s.encoder, max_position_embeddings=s.context + 2))),
    # tiny: DeBERTa-v2-xxlarge's layout, relative attention only, a convolution after block 0
    "deberta-v2": replace(_BERT, first_block_out="encoder.conv", query="attention.self.query_proj",
                          key="attention.self.key_proj",
                          notes="relative attention (learned positions only with "
                                "`position_biased_input`); `layer.0` after the convolution",
                          tiny=lambda s: ("DebertaV2Config", dict(
                              s.encoder, relative_attention=True, position_buckets=16,
                              pos_att_type=["p2c", "c2p"], position_biased_input=False,
                              conv_kernel_size=3, norm_rel_ebd="layer_norm", type_vocab_size=0))),
    "t5": Family(layers="encoder.block", final_norm="encoder.final_layer_norm",
                 mlp="layer.1.DenseReluDense", kind="encoder-decoder", stack="encoder", **_T5_STACK,
                 decoder=Family(layers="decoder.block", final_norm="decoder.final_layer_norm",
                                cross_attn="layer.1.EncDecAttention", mlp="layer.2.DenseReluDense",
                                kind="encoder-decoder", stack="decoder", **_T5_STACK),
                 notes="relative positions; sites `encoder.layer.{i}…`, `decoder.layer.{i}…`, "
                       "`decoder.layer.{i}.cross_attn`",
                 tiny=lambda s: ("T5Config", dict(
                     vocab_size=s.vocab, d_model=s.d_model, d_kv=s.d_head, d_ff=2 * s.d_model,
                     num_layers=s.n_layers, num_decoder_layers=s.n_layers, num_heads=s.heads,
                     relative_attention_num_buckets=8, dropout_rate=0.0,
                     decoder_start_token_id=s.ids["pad_token_id"], **s.ids))),
}

# config.model_type -> family (the families' own names are model types too)
MODEL_TYPES = {**{name: name for name in FAMILIES}, "gemma3_text": "gemma3"}

# what a method may ask of a config -> the attribute names families use for it, first found wins
CONFIG_KEYS = {
    "n_layers": ("num_hidden_layers", "n_layer"),
    "n_decoder_layers": ("num_decoder_layers", "num_hidden_layers"),
    "d_model": ("hidden_size", "n_embd"),
    "n_heads": ("num_attention_heads", "n_head"),
    "n_kv_heads": ("num_key_value_heads", "num_attention_heads", "n_head"),
    "d_head": ("head_dim",),
    "context": ("max_position_embeddings", "n_positions"),
    "layer_types": ("layer_types",),
    "logit_softcap": ("final_logit_softcapping",),  # Gemma-2's cap·tanh(logits/cap)
}
CLASSIFIER = "classifier"  # a sequence-classification head's module (BERT, RoBERTa, DeBERTa)

# ---------------------------------------------------------------- site names

EMBED = "embed"
STACKS = ("encoder", "decoder")
KINDS = ("", "in", "attn", "mlp", "attn.heads", "cross_attn",  # "": the block's output
         "attn.q", "attn.k", "attn.v")
HEAD_INPUTS = ("attn.q", "attn.k", "attn.v")  # per-head queries, keys, values
# the site kinds a (position × layer) sweep restores or patches, by their method names
SWEEP_KINDS = {"hidden": "", "mlp": "mlp", "attn": "attn"}
_LAYER_SITE = re.compile(r"^layer\.(\d+)(?:\.(in|attn|mlp|attn\.heads|attn\.[qkv]|cross_attn))?$")
_SPECIAL = ("embed", "positions", "final_norm", "logits")


def site_name(layer: int, kind: str = "", stack: str = "") -> str:
    """The name of a site: ``site_name(5, "mlp") == "layer.5.mlp"``, ``site_name(5) == "layer.5"``,
    ``site_name(2, "mlp", "encoder") == "encoder.layer.2.mlp"`` (a stack of an encoder-decoder).
    ``kind`` may also be a sweep kind (``"hidden"``, ``"mlp"``, ``"attn"``)."""
    kind = SWEEP_KINDS.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown site kind {kind!r}; kinds: {', '.join(map(repr, KINDS))} "
                         f"or {', '.join(SWEEP_KINDS)}")
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"a layer is a block index >= 0, got {layer!r}")
    if stack not in ("", *STACKS):
        raise ValueError(f"stack must be '' or one of {STACKS}, got {stack!r}")
    return (f"{stack}." if stack else "") + f"layer.{layer}" + (f".{kind}" if kind else "")


def parse_site(name: str) -> tuple[int, str] | None:
    """``(layer, kind)`` of a ``layer.{i}...`` site name (kind ``""`` for the block output), else None."""
    match = _LAYER_SITE.match(name) if isinstance(name, str) else None
    return (int(match.group(1)), match.group(2) or "") if match else None


def residual_site(layer: int, stack: str = "") -> str:
    """The residual stream at ``layer`` (−1: the embeddings, site ``embed``; i ≥ 0: after block i)."""
    if layer == -1:
        return f"{stack}.{EMBED}" if stack else EMBED
    return site_name(layer, "", stack)


def check_layers(model, layers, *, embed: bool = True, stack: str = "") -> list[int]:
    """Validate a list of layers of ``model`` (−1 = embeddings when ``embed``); ``None`` = all."""
    n = n_layers_of(model, stack)
    low = -1 if embed else 0
    if layers is None:
        return list(range(low, n))
    layers = [layers] if isinstance(layers, int) else list(layers)
    bad = [l for l in layers if isinstance(l, bool) or not isinstance(l, int) or not low <= l < n]
    if bad or not layers:
        what = "-1 (embeddings) .. " if embed else "0 .. "
        raise ValueError(f"layers must be ints in {what}{n - 1} (layer i = after block i), got "
                         f"{bad or layers!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must not repeat, got {layers}")
    return layers


# ---------------------------------------------------------------- families and config

def hf_model(model) -> torch.nn.Module:
    """The Hugging Face model (or plain module) whose modules the site paths name, found through
    the wrappers users pass: an :class:`~nbtoolkit.LM` (its ``.model``) and a PEFT model (its
    ``get_base_model()``). A ``torch.compile``d module is refused: hooks added to a compiled
    graph are silently skipped."""
    if not isinstance(model, torch.nn.Module) and isinstance(getattr(model, "model", None),
                                                             torch.nn.Module):
        model = model.model  # an LM
    if isinstance(model, torch.nn.Module) and hasattr(model, "_orig_mod"):
        raise TypeError(f"{type(model).__name__} is a torch.compile()d model: hooks added after "
                        f"compiling are skipped by the compiled graph, so patches and captures "
                        f"would silently do nothing. Pass the model before compiling "
                        f"(model._orig_mod) and compile it again afterwards")
    if isinstance(model, torch.nn.Module) and callable(getattr(model, "get_base_model", None)):
        model = model.get_base_model()  # PEFT: the wrapped transformers model, adapters inside
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected an nbtoolkit LM, a Hugging Face model or a torch.nn.Module, "
                        f"got {type(model).__name__}")
    return model


def stacks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules whose forward takes a sequence's attention mask and runs its blocks, whichever
    entry point the user calls (:attr:`Family.stack`): the body, OPT's decoder, T5's encoder and
    decoder (``generate`` calls the encoder itself). Outside the table: an encoder-decoder's
    ``get_encoder()`` and ``get_decoder()``, else the body; a plain torch module is its own."""
    body = getattr(model, "base_model", model)
    table = FAMILIES.get(family_of(model))
    if table is not None:
        found = [_optional(body, t.stack) if t.stack else body for t in (table, table.decoder) if t]
        return [module for module in found if module is not None]
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return [model.get_encoder(), model.get_decoder()]
    return [body]


def family_of(model: torch.nn.Module) -> str:
    """The nbtoolkit family of a Hugging Face model, or its raw ``model_type`` if not in the table."""
    model_type = getattr(getattr(model, "config", None), "model_type", "unknown")
    return MODEL_TYPES.get(model_type, model_type)


def anatomy_of(model: torch.nn.Module, purpose: str = "named sites") -> Family:
    """The :class:`Family` of ``model``; ``ValueError`` naming the supported families."""
    family = family_of(model)
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} has no anatomy entry, so it has no {purpose}; "
                         f"supported: {', '.join(FAMILIES)} (raw module paths work as sites)")
    return FAMILIES[family]


def kind_of(model: torch.nn.Module) -> str | None:
    """``"decoder"``, ``"encoder"`` or ``"encoder-decoder"``; ``None`` outside the table."""
    table = FAMILIES.get(family_of(model))
    return table.kind if table else None


def families_of_kind(kinds: Sequence[str]) -> list[str]:
    """The families whose kind is one of ``kinds``."""
    return [name for name, f in FAMILIES.items() if f.kind in kinds]


def require(model: torch.nn.Module, method: str, kinds: Sequence[str] = ("decoder",), *,
            raw_paths: bool = False) -> Family | None:
    """The family table of ``model`` if ``method`` runs on its kind of model; otherwise a
    ``ValueError`` naming the kinds and families ``method`` runs on. ``raw_paths``: the method
    also runs, on raw module paths, on a model outside the table (then ``None``)."""
    family = family_of(model)
    table = FAMILIES.get(family)
    if table is not None and table.kind in kinds or table is None and raw_paths:
        return table
    what = (f"{family!r} is an {table.kind} family" if table else
            f"family {family!r} has no anatomy entry")
    raise ValueError(f"{method} runs on {' and '.join(kinds)} models "
                     f"({', '.join(families_of_kind(kinds))}); {what}")


def config_value(model: torch.nn.Module, key: str, default=None):
    """A size or setting of the model's config under any family's name for it (``CONFIG_KEYS``)."""
    config = model.config
    for name in CONFIG_KEYS[key]:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def config_entry(config: dict, key: str, default=None):
    """A size or setting from a config read as a dict (a file written beside a model, e.g. the
    tuned-lens project's ``config.json``) under any family's name for it (``CONFIG_KEYS``)."""
    return next((config[name] for name in CONFIG_KEYS[key] if name in config), default)


def _stack(model: torch.nn.Module, stack: str = "") -> Family:
    """The table of one stack: the family's own, or an encoder-decoder's ``decoder``."""
    table = anatomy_of(model)
    if table.decoder is None:
        if stack:
            raise ValueError(f"{family_of(model)!r} models have one stack; drop the "
                             f"{stack!r} prefix")
        return table
    if stack not in STACKS:
        raise ValueError(f"{family_of(model)!r} models have an encoder and a decoder: name the "
                         f"stack ('encoder.' or 'decoder.' before the site)")
    return table if stack == "encoder" else table.decoder


def n_layers_of(model: torch.nn.Module, stack: str = "") -> int:
    """Blocks in the model (in one stack of an encoder-decoder: ``stack="decoder"``)."""
    return config_value(model, "n_decoder_layers" if stack == "decoder" else "n_layers")


def context_length(model: torch.nn.Module) -> int | None:
    """The longest input the model takes: its absolute position table's rows (less the offset),
    else the config's maximum (``None`` if it states none)."""
    table = FAMILIES.get(family_of(model))
    positions = _optional(model.base_model, table.positions) if table else None
    if positions is not None:
        return positions.num_embeddings - table.position_offset
    return config_value(model, "context")


def site_names(model: torch.nn.Module) -> list[str]:
    """Every named site of the model, in forward order."""
    table = FAMILIES.get(family_of(model))
    if table is None:
        return []
    names = []
    for stack in (STACKS if table.decoder else ("",)):
        t = _stack(model, stack)
        prefix = f"{stack}." if stack else ""
        qkv = HEAD_INPUTS if t.qkv or t.qkv_fused else ()
        kinds = ("in", *qkv, "attn.heads", "attn") + (("cross_attn",) if t.cross_attn else ()) + \
            ("mlp", "")
        names.append(prefix + EMBED)
        if _optional(model.base_model, t.positions) is not None:
            names.append("positions")
        names += [site_name(i, kind, stack) for i in range(n_layers_of(model, stack))
                  for kind in kinds]
        if _optional(model.base_model, t.final_norm) is not None:
            names.append(prefix + "final_norm")
    return names + ["logits"]


# ---------------------------------------------------------------- resolving sites

@dataclass(frozen=True)
class Site:
    """Where a site lives: ``module`` at its ``"output"`` or at its ``"input"`` hidden states.

    ``n_heads`` is set for per-head sites, whose activation is viewed as [batch, seq, n_heads, d_head].
    ``rows_of`` is set when ``module`` runs on flattened rows ``[batch·seq, d]``: the activation is
    viewed as ``[batch, seq, d]``, with batch and sequence sizes read from ``rows_of``'s input.
    ``fused`` is set when the activation is one part of a fused query/key/value output:
    ``(layout, part, n_heads, n_kv_heads)`` with ``part`` 0, 1, 2 for queries, keys, values
    (layouts as :attr:`Family.qkv_layout`).
    """

    name: str
    module: torch.nn.Module
    read: str  # "output" or "input"
    n_heads: int | None = None
    rows_of: torch.nn.Module | None = None
    fused: tuple[str, int, int, int] | None = None


_NAMED = re.compile(r"^(?:(encoder|decoder)\.)?(embed|positions|final_norm|logits|layer\..+)$")


def resolve_site(model: torch.nn.Module, name: str) -> Site:
    """The :class:`Site` behind a site name or a raw module path; ``ValueError`` naming close matches."""
    if not isinstance(name, str):
        raise TypeError(f"a site is a string such as 'layer.3.mlp', got {type(name).__name__}: {name!r}")
    family = family_of(model)
    table = FAMILIES.get(family)
    match = _NAMED.match(name)
    # "encoder.layer.1" is a raw module path of a bare BertModel: a prefix names a stack only
    # in families that have two
    if table is not None and match and (match.group(1) is None or table.decoder is not None):
        site = _named_site(model, table, name, match.group(1) or "", match.group(2))
        if site is not None:
            return site
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return Site(name, modules[name], "output")
    valid = site_names(model) or [m for m in modules if m]
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Closest valid names: {', '.join(close)}." if close else ""
    known = (" Sites look like 'embed', 'layer.0', 'layer.0.mlp', 'layer.0.attn', 'layer.0.in', "
             "'layer.0.attn.heads', 'final_norm', 'logits'." if table else
             f" Family {family!r} has no site table; use a raw module path.")
    raise ValueError(f"unknown site {name!r}.{hint}{known}")


def _named_site(model, table: Family, name: str, stack: str, rest: str) -> Site | None:
    """The site ``rest`` of one stack (``None`` if ``rest`` is no site name)."""
    family, body = family_of(model), model.base_model
    if rest == "logits":
        if stack:
            raise ValueError(f"site {name!r}: the logits belong to no stack; use 'logits'")
        head = model.get_output_embeddings()
        head = _optional(model, CLASSIFIER) if head is None else head
        if head is None:
            raise ValueError(f"this {type(model).__name__} has no head, so no 'logits' site")
        return Site(name, head, "output")
    parsed = parse_site(rest)
    if rest not in _SPECIAL and parsed is None:
        return None
    t = _stack(model, stack)
    if rest == EMBED:
        if table.decoder is not None:  # both stacks share one embedding: read where each starts
            return Site(name, body.get_submodule(f"{t.layers}.0"), "input")
        projection = _optional(body, t.embed_in)
        return Site(name, projection or model.get_input_embeddings(), "output")
    if rest in ("positions", "final_norm"):
        module = _optional(body, getattr(t, rest))
        if module is None:
            why = ("no absolute position embedding (its positions are rotary or relative)"
                   if rest == "positions" else "no final norm (its blocks end with one)")
            raise ValueError(f"site {name!r}: this {family} model has {why}")
        return Site(name, module, "output")
    i, kind = parsed
    n = n_layers_of(model, stack)
    if i >= n:
        raise ValueError(f"site {name!r}: layer {i} does not exist; this {family} model has "
                         f"layers 0..{n - 1}")
    block_path = f"{t.layers}.{i}"
    block = body.get_submodule(block_path)
    if kind == "":
        rewrite = _optional(body, t.first_block_out) if i == 0 else None
        return Site(name, rewrite or block, "output")
    if kind == "in":
        return Site(name, block, "input")
    if kind == "attn.heads":
        return Site(name, block.get_submodule(t.heads), "input",
                    n_heads=config_value(model, "n_heads"))
    if kind in HEAD_INPUTS:
        return _head_input_site(model, t, block, name, HEAD_INPUTS.index(kind))
    if kind == "cross_attn" and t.cross_attn is None:
        raise ValueError(f"site {name!r}: only the decoder of an encoder-decoder has "
                         f"cross-attention")
    flat = block if kind == "mlp" and t.flat_mlp else None
    return Site(name, block.get_submodule(getattr(t, kind)), "output", rows_of=flat)


def _head_input_site(model, t: Family, block, name: str, part: int) -> Site:
    """The queries (``part`` 0), keys (1) or values (2) of every head of one block."""
    heads, kv_heads = config_value(model, "n_heads"), config_value(model, "n_kv_heads")
    n = heads if part == 0 else kv_heads
    if t.qkv is not None:
        return Site(name, block.get_submodule(t.qkv[part]), "output", n_heads=n)
    if t.qkv_fused is not None:
        return Site(name, block.get_submodule(t.qkv_fused), "output", n_heads=n,
                    fused=(t.qkv_layout, part, heads, kv_heads))
    raise ValueError(f"site {name!r}: the anatomy does not say where this {family_of(model)} "
                     f"model's per-head queries, keys and values are; families that have them: "
                     f"{', '.join(families_with_head_inputs())}")


def families_with_head_inputs() -> list[str]:
    """The families with per-head query/key/value sites (``layer.{i}.attn.q/.k/.v``)."""
    return [name for name, f in FAMILIES.items() if f.qkv or f.qkv_fused]


def _optional(root: torch.nn.Module, path: str | None) -> torch.nn.Module | None:
    """The module at ``path`` under ``root``; ``None`` for no path or a module the config left out
    (OPT-350m's final norm, Phi's q/k norms, DeBERTa's convolution)."""
    if path is None:
        return None
    parent, _, leaf = path.rpartition(".")
    try:
        owner = root.get_submodule(parent) if parent else root
    except AttributeError:
        return None
    module = getattr(owner, leaf, None)
    return module if isinstance(module, torch.nn.Module) else None


# ---------------------------------------------------------------- blocks and weights

def block_list(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """``(parent, attribute)`` holding the block ``ModuleList`` (``getattr(parent, attribute)``)."""
    parent, _, name = anatomy_of(model, "block list").layers.rpartition(".")
    body = model.base_model
    return (body.get_submodule(parent) if parent else body), name


def embed_projection(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """``(parent, attribute)`` of a projection from the token embeddings into the residual
    stream (OPT-350m's), if the model has one."""
    path = anatomy_of(model).embed_in
    if _optional(model.base_model, path) is None:
        return None
    parent, _, name = path.rpartition(".")
    return model.base_model.get_submodule(parent), name


def has_positions(model: torch.nn.Module) -> bool:
    """Whether the model adds an absolute position embedding (site ``positions``) to the tokens."""
    return _optional(model.base_model, anatomy_of(model).positions) is not None


def takes_position_ids(model: torch.nn.Module) -> bool:
    """Whether the forward takes position ids counted from 0 (RoBERTa and T5 make their own)."""
    table = FAMILIES.get(family_of(model))
    return table is None or table.position_ids


def weight(model: torch.nn.Module, layer: int, part: str) -> torch.nn.Module | None:
    """The module of a named weight (``"query"``, ``"key"``, ``"attn_norm"``, ``"query_norm"``,
    ``"key_norm"``, ``"mlp_values"``, ``"mlp_values_norm"``, ``"mlp_weights"``) in block
    ``layer``; ``None`` when the family has no such separate module (e.g. no query/key norms)."""
    table = anatomy_of(model, "weight table")
    block = model.base_model.get_submodule(f"{table.layers}.{layer}")
    return _optional(block, getattr(table, part))


def families_with(parts: tuple[str, ...], norm: str | None = None) -> list[str]:
    """The families whose table names every weight in ``parts`` (and whose norms are ``norm``)."""
    return [name for name, f in FAMILIES.items()
            if all(getattr(f, p) is not None for p in parts) and norm in (None, f.norm)]


# ---------------------------------------------------------------- reading the residual stream

@dataclass(frozen=True)
class Readout:
    """The modules that turn the last block's output into logits, applied in this order:
    ``final_norm`` (``None``: the model has none, e.g. OPT-350m), ``project_out`` (OPT-350m's
    projection out of the residual stream; ``None`` elsewhere), ``unembed`` (the LM head) and
    ``softcap`` (Gemma-2's final ``cap · tanh(logits / cap)``; ``None``: no cap). ``centred``:
    the norms of this family subtract the mean (LayerNorm) rather than only rescale (RMSNorm)."""

    final_norm: torch.nn.Module | None
    project_out: torch.nn.Module | None
    unembed: torch.nn.Module
    softcap: float | None
    centred: bool


def readout(model: torch.nn.Module) -> Readout:
    """The :class:`Readout` of a causal LM of a decoder family (``ValueError`` without an LM head)."""
    table = anatomy_of(model, "read-out")
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"this {type(model).__name__} has no LM head to read the residual "
                         f"stream through; load it as a causal LM")
    body = model.base_model
    return Readout(_optional(body, table.final_norm), _optional(body, table.embed_out), head,
                   config_value(model, "logit_softcap"), table.norm == "layer")


def attn_output_norm(model: torch.nn.Module, layer: int) -> torch.nn.Module | None:
    """The norm block ``layer`` applies to its attention output projection before adding it to
    the residual stream (Gemma-2/3's and OLMo-2's post-attention norm: the ``attn`` site is its
    output); ``None`` where the projection's output is the ``attn`` term itself."""
    table = anatomy_of(model)
    if table.block not in ("sandwich", "norm-after"):
        return None
    return model.base_model.get_submodule(f"{table.layers}.{layer}.{table.attn}")
