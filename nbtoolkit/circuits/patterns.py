"""Attention patterns of chosen heads, for the head-grid widget and for naming heads (a name
mover attends from the end to IO, an S-inhibition head to S2, a duplicate-token head from S2
to S1). A stop-gap: ``nbtoolkit.lens`` will hold the toolkit's attention-pattern lens.

    patterns = attention_patterns(lm, data.prompts[:4], layer=9)    # [4, n_heads, seq, seq]
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ..core.anatomy import hf_model, require


@contextmanager
def eager_attention(lm):
    """Eager attention inside (SDPA returns no weights), the model's own implementation after."""
    model = hf_model(lm)
    before = model.config._attn_implementation
    if before != "eager":
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if before != "eager":
            model.set_attn_implementation(before)


@torch.no_grad()
def attention_patterns(lm, prompts, layer: int, heads=None) -> np.ndarray:
    """Each head's attention probabilities at block ``layer`` for each prompt (left-padded):
    ``[batch, n_heads (or len(heads)), seq, seq]``, row = query position, column = key."""
    require(hf_model(lm), "attention patterns")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < lm.n_layers:
        raise ValueError(f"layer must be an int in 0..{lm.n_layers - 1}, got {layer!r}")
    with eager_attention(lm) as model:
        out = model(**lm.encode(prompts), output_attentions=True)
    pattern = out.attentions[layer].float().cpu().numpy()
    return pattern if heads is None else pattern[:, list(heads)]


def attention_to(patterns: np.ndarray, query: list[int], key: list[int]) -> np.ndarray:
    """Per prompt and head, the attention from column ``query[i]`` to column ``key[i]`` of
    prompt i: ``[batch, heads]`` (columns of the left-padded batch)."""
    rows = np.arange(patterns.shape[0])
    return patterns[rows, :, query, key] if patterns.ndim == 4 else patterns[rows, query, key]


def pattern_source(lm, prompt: str):
    """``(layer, head) -> (pattern [seq, seq], tokens)`` for one prompt (each layer computed
    once, on first use): what ``nbtoolkit.viz.circuits.HeadExplorer`` shows."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    tokens, cache = lm.tokens(prompt), {}

    def get(layer: int, head: int):
        if layer not in cache:
            cache[layer] = attention_patterns(lm, [prompt], layer)[0]
        return cache[layer][head], tokens
    return get
