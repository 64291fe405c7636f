"""The anatomy of each model family: site names, module paths, weight names and config keys.

This is the only file in nbtoolkit that names a model's internals. Methods speak of sites
(``layer.5.mlp``) and ask this file for weights (:func:`weight`) and sizes (:func:`config_value`).

Site names, the same for every family (built by :func:`site_name`, read back by :func:`parse_site`):

    embed               token-embedding output (before position embeddings)   [batch, seq, d_model]
    layer.{i}.in        residual stream entering block i                      [batch, seq, d_model]
    layer.{i}           residual stream leaving block i                       [batch, seq, d_model]
    layer.{i}.attn      attention output, the term added to the residual     [batch, seq, d_model]
    layer.{i}.mlp       MLP output, the term added to the residual           [batch, seq, d_model]
    layer.{i}.attn.heads  per-head attention outputs, the input of the output
                        projection split by head                              [batch, seq, n_heads, d_head]
    final_norm          output of the final normalisation                     [batch, seq, d_model]
    logits              the LM head's output                                  [batch, seq, vocab]

Layers, one numbering everywhere: **layer i is block i** (0 … n_layers − 1), and "the hidden
state at layer i" is the residual stream leaving it (site ``layer.{i}``). Where a table or a
method also reads the embeddings (CCS layer sweeps, SelfIE), they are **layer −1**, site ``embed``
(:func:`residual_site`). Hugging Face's ``hidden_states[i + 1]`` is our layer i.

Any other string is taken as a raw module path (``"model.layers.3.mlp"``), read at its output.
Gemma-3 normalises the attention and MLP outputs before adding them to the residual stream, so
there ``layer.{i}.attn`` / ``layer.{i}.mlp`` are the outputs of those post-norms.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Family:
    """Where things live in one family's Hugging Face model.

    Module paths: ``layers`` (the block list) and ``final_norm`` from the model's root; the rest
    inside a block: ``attn`` / ``mlp`` (the terms added to the residual stream), ``heads`` (the
    attention output projection, whose input is split by head). ``positions``: an absolute position
    embedding added to the token embeddings, if the family has one. Weights read by
    weight-based explanations (``None`` where the family fuses or lacks them): ``query``,
    ``key`` (the query/key projections), ``attn_norm`` (the attention's input norm),
    ``query_norm`` / ``key_norm`` (per-head query/key norms), ``mlp_values`` (the MLP's output
    projection: one value vector per neuron), ``mlp_values_norm`` (a norm applied to the MLP
    output before the residual), ``mlp_weights`` (the module holding all the MLP's own weights,
    trained by SelfIE control; on Gemma-3 the ``mlp`` site is the post-norm, not this).
    """

    layers: str
    final_norm: str
    attn: str
    mlp: str
    heads: str
    positions: str | None = None
    query: str | None = None
    key: str | None = None
    attn_norm: str | None = None
    query_norm: str | None = None
    key_norm: str | None = None
    mlp_values: str | None = None
    mlp_values_norm: str | None = None
    mlp_weights: str = "mlp"


_LLAMA = Family(layers="model.layers", final_norm="model.norm", attn="self_attn", mlp="mlp",
                heads="self_attn.o_proj", query="self_attn.q_proj", key="self_attn.k_proj",
                attn_norm="input_layernorm", mlp_values="mlp.down_proj")

FAMILIES: dict[str, Family] = {
    "gpt2": Family(layers="transformer.h", final_norm="transformer.ln_f", attn="attn", mlp="mlp",
                   heads="attn.c_proj", positions="transformer.wpe"),
    "gpt_neox": Family(layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                       attn="attention", mlp="mlp", heads="attention.dense"),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "gemma3": Family(layers="model.layers", final_norm="model.norm",
                     attn="post_attention_layernorm", mlp="post_feedforward_layernorm",
                     heads="self_attn.o_proj", query="self_attn.q_proj", key="self_attn.k_proj",
                     attn_norm="input_layernorm", query_norm="self_attn.q_norm",
                     key_norm="self_attn.k_norm", mlp_values="mlp.down_proj",
                     mlp_values_norm="post_feedforward_layernorm"),
}

# config.model_type -> family
MODEL_TYPES = {"gpt2": "gpt2", "gpt_neox": "gpt_neox", "llama": "llama", "mistral": "mistral",
               "qwen2": "qwen2", "gemma3_text": "gemma3", "gemma3": "gemma3"}

# what a method may ask of a config -> the attribute names families use for it, first found wins
CONFIG_KEYS = {
    "n_layers": ("num_hidden_layers", "n_layer"),
    "d_model": ("hidden_size", "n_embd"),
    "n_heads": ("num_attention_heads", "n_head"),
    "n_kv_heads": ("num_key_value_heads", "num_attention_heads", "n_head"),
    "d_head": ("head_dim",),
    "context": ("max_position_embeddings", "n_positions"),
    "layer_types": ("layer_types",),
}

# ---------------------------------------------------------------- site names

EMBED = "embed"
KINDS = ("", "in", "attn", "mlp", "attn.heads")  # "" = the block's output (the residual stream)
# the site kinds a (position × layer) sweep restores or patches, by their method names
SWEEP_KINDS = {"hidden": "", "mlp": "mlp", "attn": "attn"}
_LAYER_SITE = re.compile(r"^layer\.(\d+)(?:\.(in|attn|mlp|attn\.heads))?$")


def site_name(layer: int, kind: str = "") -> str:
    """The name of a site: ``site_name(5, "mlp") == "layer.5.mlp"``, ``site_name(5) == "layer.5"``.
    ``kind`` may also be a sweep kind (``"hidden"``, ``"mlp"``, ``"attn"``)."""
    kind = SWEEP_KINDS.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown site kind {kind!r}; kinds: {', '.join(map(repr, KINDS))} "
                         f"or {', '.join(SWEEP_KINDS)}")
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"a layer is a block index >= 0, got {layer!r}")
    return f"layer.{layer}" + (f".{kind}" if kind else "")


def parse_site(name: str) -> tuple[int, str] | None:
    """``(layer, kind)`` of a ``layer.{i}...`` site name (kind ``""`` for the block output), else None."""
    match = _LAYER_SITE.match(name) if isinstance(name, str) else None
    return (int(match.group(1)), match.group(2) or "") if match else None


def residual_site(layer: int) -> str:
    """The residual stream at ``layer`` (−1: the embeddings, site ``embed``; i ≥ 0: after block i)."""
    return EMBED if layer == -1 else site_name(layer)


def check_layers(model, layers, *, embed: bool = True) -> list[int]:
    """Validate a list of layers of ``model`` (−1 = embeddings when ``embed``); ``None`` = all."""
    n = n_layers_of(model)
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

def family_of(model: torch.nn.Module) -> str:
    """The nbtoolkit family of a Hugging Face model, or its raw ``model_type`` if not in the table."""
    model_type = getattr(getattr(model, "config", None), "model_type", "unknown")
    return MODEL_TYPES.get(model_type, model_type)


def family_table(model: torch.nn.Module, purpose: str = "named sites") -> Family:
    """The :class:`Family` of ``model``; ``ValueError`` naming the supported families."""
    family = family_of(model)
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} has no anatomy entry, so it has no {purpose}; "
                         f"supported: {', '.join(FAMILIES)} (raw module paths work as sites)")
    return FAMILIES[family]


def config_value(model: torch.nn.Module, key: str, default=None):
    """A size or setting of the model's config under any family's name for it (``CONFIG_KEYS``)."""
    config = model.config
    for name in CONFIG_KEYS[key]:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def n_layers_of(model: torch.nn.Module) -> int:
    return config_value(model, "n_layers")


def site_names(model: torch.nn.Module) -> list[str]:
    """Every named site of the model, in forward order."""
    if family_of(model) not in FAMILIES:
        return []
    order = ("in", "attn.heads", "attn", "mlp", "")
    names = [EMBED] + [site_name(i, kind) for i in range(n_layers_of(model)) for kind in order]
    return names + ["final_norm", "logits"]


# ---------------------------------------------------------------- resolving sites

@dataclass(frozen=True)
class Site:
    """Where a site lives: ``module`` at its ``"output"`` or at its ``"input"`` hidden states.

    ``n_heads`` is set for per-head sites, whose activation is viewed as [batch, seq, n_heads, d_head].
    """

    name: str
    module: torch.nn.Module
    read: str  # "output" or "input"
    n_heads: int | None = None


def resolve_site(model: torch.nn.Module, name: str) -> Site:
    """The :class:`Site` behind a site name or a raw module path; ``ValueError`` naming close matches."""
    if not isinstance(name, str):
        raise TypeError(f"a site is a string such as 'layer.3.mlp', got {type(name).__name__}: {name!r}")
    family = family_of(model)
    table = FAMILIES.get(family)
    parsed = parse_site(name)
    if table is not None and (parsed or name in (EMBED, "final_norm", "logits")):
        if name == EMBED:
            return Site(name, model.get_input_embeddings(), "output")
        if name == "logits":
            return Site(name, model.get_output_embeddings(), "output")
        if name == "final_norm":
            return Site(name, model.get_submodule(table.final_norm), "output")
        i, kind = parsed
        n = n_layers_of(model)
        if i >= n:
            raise ValueError(f"site {name!r}: layer {i} does not exist; this {family} model has "
                             f"layers 0..{n - 1}")
        block = f"{table.layers}.{i}"
        if kind == "":
            return Site(name, model.get_submodule(block), "output")
        if kind == "in":
            return Site(name, model.get_submodule(block), "input")
        if kind == "attn.heads":
            return Site(name, model.get_submodule(f"{block}.{table.heads}"), "input",
                        n_heads=config_value(model, "n_heads"))
        return Site(name, model.get_submodule(f"{block}.{getattr(table, kind)}"), "output")
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


# ---------------------------------------------------------------- blocks and weights

def block_list(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """``(parent, attribute)`` holding the block ``ModuleList`` (``getattr(parent, attribute)``)."""
    parent, _, name = family_table(model, "block list").layers.rpartition(".")
    return model.get_submodule(parent), name


def positions_module(model: torch.nn.Module) -> str | None:
    """The site (a module path) of an absolute position embedding added to the tokens, if any."""
    return family_table(model).positions


def weight(model: torch.nn.Module, layer: int, part: str) -> torch.nn.Module | None:
    """The module of a named weight (``"query"``, ``"key"``, ``"attn_norm"``, ``"query_norm"``,
    ``"key_norm"``, ``"mlp_values"``, ``"mlp_values_norm"``, ``"mlp_weights"``) in block
    ``layer``; ``None`` when the family has no such separate module (e.g. no query/key norms)."""
    path = getattr(family_table(model, "weight table"), part)
    if path is None:
        return None
    block = model.get_submodule(f"{family_table(model).layers}.{layer}")
    return block.get_submodule(path)


def has_weights(model: torch.nn.Module, parts: tuple[str, ...]) -> bool:
    """Whether the family names every weight in ``parts``."""
    family = FAMILIES.get(family_of(model))
    return family is not None and all(getattr(family, p) is not None for p in parts)


def families_with(parts: tuple[str, ...]) -> list[str]:
    """The families whose table names every weight in ``parts``."""
    return [name for name, f in FAMILIES.items() if all(getattr(f, p) is not None for p in parts)]
