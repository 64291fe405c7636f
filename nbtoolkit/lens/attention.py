"""Attention patterns: where each head looks, per layer and prompt.

    patterns = attention_patterns(lm, ["The cat sat on the mat."], layers=[0, 5])
    patterns[5]            # [batch, heads, query, key]: row q of head h sums to 1 over keys <= q
    patterns.to_frame()

The weights are the model's own: a forward with ``output_attentions=True`` under transformers'
eager attention (SDPA and flash attention do not return weights; :func:`eager_attention` switches
to it for the forward only and puts each config's implementation back, also on errors). Positions
are each prompt's own tokens: a left-padded batch gives each prompt's pattern as it has alone,
NaN past a shorter prompt's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import check_layers, hf_model, n_layers_of, require
from ..core.lm import LAST_POSITION
from ..core.modes import eager_attention
from .inputs import prompt_list, prompt_tokens

SUPPORTED_KINDS = ("decoder",)


@dataclass
class AttentionPatterns:
    """``weights`` ``[layers, batch, heads, query, key]`` (float32; NaN past each prompt's end)
    for ``layers``; ``tokens`` each prompt's tokens. ``patterns[layer]`` is one layer's
    ``[batch, heads, query, key]``."""

    layers: list[int]
    weights: torch.Tensor
    tokens: list[list[str]]

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} was not read; layers: {self.layers}")
        return self.weights[self.layers.index(layer)]

    def between(self, layer: int, head: int, query: Sequence[int], key: Sequence[int]) -> torch.Tensor:
        """Head ``head``'s attention from position ``query[b]`` to position ``key[b]`` of each
        prompt b (its own token positions; negative ones count from its end), ``[batch]``."""
        lengths = [len(tokens) for tokens in self.tokens]
        if not len(query) == len(key) == len(lengths):
            raise ValueError(f"query and key need one position per prompt ({len(lengths)}), got "
                             f"{len(query)} and {len(key)}")
        own = lambda positions: [p % n for p, n in zip(positions, lengths)]  # noqa: E731
        return self[layer][torch.arange(len(lengths)), head, own(query), own(key)]

    def to_frame(self) -> pd.DataFrame:
        """One row per (prompt, layer, head, query, key ≤ query)."""
        frames = []
        for b, tokens in enumerate(self.tokens):
            n = len(tokens)
            layer, head, query, key = np.meshgrid(self.layers, range(self.weights.shape[2]),
                                                  range(n), range(n), indexing="ij")
            keep = key <= query
            w = self.weights[:, b, :, :n, :n].numpy()
            names = np.array(tokens, dtype=object)
            frames.append(pd.DataFrame({
                "prompt": b, "layer": layer[keep], "head": head[keep], "query": query[keep],
                "key": key[keep], "query_token": names[query[keep]],
                "key_token": names[key[keep]], "weight": w[keep]}))
        return pd.concat(frames, ignore_index=True)


def attention_patterns(lm, prompts: str | Sequence[str], layers: Sequence[int] | int | None = None
                       ) -> AttentionPatterns:
    """Every head's attention weights at ``layers`` (blocks 0 … n − 1; default all) for each
    prompt, ``[batch, heads, query, key]`` per layer, in each prompt's own token positions."""
    model = hf_model(lm)
    require(model, "attention patterns", SUPPORTED_KINDS)
    texts, _ = prompt_list(prompts)
    layers = check_layers(model, layers, embed=False)
    batch = lm.encode(texts)
    weights = attention_weights(model, batch, layers)  # [layers, batch, heads, seq, seq]
    mask = batch["attention_mask"].cpu()
    lengths = mask.sum(-1).tolist()
    aligned = torch.full((*weights.shape[:3], max(lengths), max(lengths)), float("nan"))
    for b, n in enumerate(lengths):
        aligned[:, b, :, :n, :n] = weights[:, b, :, -n:, -n:]
    return AttentionPatterns(layers, aligned, [prompt_tokens(lm, batch, b) for b in range(len(texts))])


@torch.no_grad()
def attention_weights(model: torch.nn.Module, inputs: dict, layers: Sequence[int]) -> torch.Tensor:
    """The attention weights of one forward over ``inputs``, ``[len(layers), batch, heads,
    seq, seq]`` float32 on the CPU (eager attention during the forward only)."""
    with eager_attention(model):
        out = model(**inputs, output_attentions=True, logits_to_keep=LAST_POSITION)
    found = out.attentions or ()
    if len(found) != n_layers_of(model) or any(a is None for a in found):
        raise RuntimeError(f"{type(model).__name__} returned {len(found)} attention maps for "
                           f"{n_layers_of(model)} layers under eager attention")
    return torch.stack([found[i].float().cpu() for i in layers])
