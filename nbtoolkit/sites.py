"""The anatomy of each model family: readable site names -> the Hugging Face modules behind them.

Every method speaks of sites such as ``layer.5.mlp``; this file is the only place that knows
module paths. A site is read either at a module's output (a forward hook) or at the
``hidden_states`` input of a module (a forward pre-hook).

Site names (the same for every family):

    embed               token-embedding output (before position embeddings)   [batch, seq, d_model]
    layer.{i}.in        residual stream entering block i                      [batch, seq, d_model]
    layer.{i}           residual stream leaving block i                       [batch, seq, d_model]
    layer.{i}.attn      attention output, the term added to the residual     [batch, seq, d_model]
    layer.{i}.mlp       MLP output, the term added to the residual           [batch, seq, d_model]
    layer.{i}.attn.heads  per-head attention outputs, the input of the output
                        projection split by head                              [batch, seq, n_heads, d_head]
    final_norm          output of the final normalisation                     [batch, seq, d_model]
    logits              the LM head's output                                  [batch, seq, vocab]

Any other string is taken as a raw module path (``"model.layers.3.mlp"``), read at its output.
Gemma-3 normalises the attention and MLP outputs before adding them to the residual stream,
so there ``layer.{i}.attn`` / ``layer.{i}.mlp`` are the outputs of those post-norms.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import torch

# family -> {"layers": path of the block list, "final_norm",
#            "attn"/"mlp": path inside a block, "heads": output projection inside a block,
#            "positions": absolute position embedding added to the token embeddings, if any}.
# `embed` and `logits` are the model's input and output embeddings in every family.
FAMILIES: dict[str, dict[str, str]] = {
    "gpt2": dict(layers="transformer.h", final_norm="transformer.ln_f",
                 attn="attn", mlp="mlp", heads="attn.c_proj", positions="transformer.wpe"),
    "gpt_neox": dict(layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                     attn="attention", mlp="mlp", heads="attention.dense"),
    "llama": dict(layers="model.layers", final_norm="model.norm",
                  attn="self_attn", mlp="mlp", heads="self_attn.o_proj"),
    "gemma3": dict(layers="model.layers", final_norm="model.norm",
                   attn="post_attention_layernorm", mlp="post_feedforward_layernorm",
                   heads="self_attn.o_proj"),
}
FAMILIES["mistral"] = FAMILIES["llama"]
FAMILIES["qwen2"] = FAMILIES["llama"]

# config.model_type -> family
MODEL_TYPES = {"gpt2": "gpt2", "gpt_neox": "gpt_neox", "llama": "llama", "mistral": "mistral",
               "qwen2": "qwen2", "gemma3_text": "gemma3", "gemma3": "gemma3"}

_LAYER_SITE = re.compile(r"^layer\.(\d+)(\.in|\.attn|\.mlp|\.attn\.heads)?$")


@dataclass(frozen=True)
class Site:
    """Where a site lives: ``module`` at its ``"output"`` or at its ``"input"`` hidden states.

    ``n_heads`` is set for per-head sites, whose activation is viewed as [batch, seq, n_heads, d_head].
    """

    name: str
    module: torch.nn.Module
    read: str  # "output" or "input"
    n_heads: int | None = None


def family_of(model: torch.nn.Module) -> str:
    """The nbtoolkit family of a Hugging Face model, or its raw ``model_type`` if not in the table."""
    model_type = getattr(getattr(model, "config", None), "model_type", "unknown")
    return MODEL_TYPES.get(model_type, model_type)


def n_layers_of(model: torch.nn.Module) -> int:
    config = model.config
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer")


def site_names(model: torch.nn.Module) -> list[str]:
    """Every named site of the model, in forward order."""
    if family_of(model) not in FAMILIES:
        return []
    names = ["embed"]
    for i in range(n_layers_of(model)):
        names += [f"layer.{i}.in", f"layer.{i}.attn.heads", f"layer.{i}.attn", f"layer.{i}.mlp",
                  f"layer.{i}"]
    return names + ["final_norm", "logits"]


def resolve_site(model: torch.nn.Module, name: str) -> Site:
    """The :class:`Site` behind a site name or a raw module path; ``ValueError`` naming close matches."""
    if not isinstance(name, str):
        raise TypeError(f"a site is a string such as 'layer.3.mlp', got {type(name).__name__}: {name!r}")
    family = family_of(model)
    table = FAMILIES.get(family)
    match = _LAYER_SITE.match(name)
    if table is not None and (match or name in ("embed", "final_norm", "logits")):
        if name == "embed":
            return Site(name, model.get_input_embeddings(), "output")
        if name == "logits":
            return Site(name, model.get_output_embeddings(), "output")
        if not match:
            return Site(name, _module(model, table[name]), "output")
        i, part = int(match.group(1)), match.group(2) or ""
        n = n_layers_of(model)
        if i >= n:
            raise ValueError(f"site {name!r}: layer {i} does not exist; this {family} model has "
                             f"layers 0..{n - 1}")
        block = f"{table['layers']}.{i}"
        if part == "":
            return Site(name, _module(model, block), "output")
        if part == ".in":
            return Site(name, _module(model, block), "input")
        if part == ".attn.heads":
            return Site(name, _module(model, f"{block}.{table['heads']}"), "input",
                        n_heads=_n_heads(model))
        return Site(name, _module(model, f"{block}.{table[part[1:]]}"), "output")
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return Site(name, modules[name], "output")
    valid = site_names(model) or [m for m in modules if m]
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Closest valid names: {', '.join(close)}." if close else ""
    known = (f" Sites look like 'embed', 'layer.0', 'layer.0.mlp', 'layer.0.attn', 'layer.0.in', "
             f"'layer.0.attn.heads', 'final_norm', 'logits'." if table else
             f" Family {family!r} has no site table; use a raw module path.")
    raise ValueError(f"unknown site {name!r}.{hint}{known}")


def _module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path)


def _n_heads(model: torch.nn.Module) -> int:
    config = model.config
    return getattr(config, "num_attention_heads", None) or getattr(config, "n_head")
