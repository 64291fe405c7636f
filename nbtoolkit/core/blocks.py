"""Run a slice of a model's blocks: skip the blocks below ``start`` and, optionally, those from
``end`` on.

    with run_blocks(lm, 12):            # blocks 12 ... L-1, final norm, head
        out = lm.model(inputs_embeds=resid, **cache_kwarg(lm.model, cache), logits_to_keep=1)
    with capture(lm, ["layer.15"]) as acts, run_blocks(lm, 12, 16):
        body(lm)(inputs_embeds=resid, use_cache=False)    # blocks 12 ... 15, no head
    acts["layer.15"]                    # the residual stream leaving block 15

Inside the context ``inputs_embeds`` [batch, seq, d_model] is the residual stream entering block
``start`` (site ``layer.{start-1}``; for ``start = 0`` the token embeddings, site ``embed``). How:
the block list is temporarily its slice — the same module objects, so hooks on them still fire,
and each attention keeps its ``layer_idx``, so a KV cache of the whole model is read and extended
at the right layers. Per-layer attention types (``config.layer_types``, e.g. Gemma-3's
sliding/global pattern) are sliced alike; for ``start > 0`` an absolute position embedding
(GPT-2's, OPT's), which the model adds to ``inputs_embeds``, is zeroed: the residual stream already
holds it. A projection of the token embeddings into the residual stream (OPT-350m's) is skipped:
``inputs_embeds`` is already in the residual stream's space. Everything is put back on exit, also
on errors. Decoder families only (:func:`~nbtoolkit.core.anatomy.require`).

Enter ``patch``/``capture`` contexts before this one (sites resolve against the whole block list).
Pass ``use_cache=False`` or a cache built by a whole-model forward: a cache the model creates
inside the context would be sized for the slice. Causal tracing uses this to skip the blocks a
restoration cannot change.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from .anatomy import (block_list, config_value, embed_projection, has_positions, hf_model,
                      n_layers_of, require)
from .hooks import patch


def body(lm) -> torch.nn.Module:
    """The module that holds the block list (embeddings, blocks, final norm; no LM head)."""
    return block_list(hf_model(lm))[0]


@contextmanager
def run_blocks(lm, start: int, end: int | None = None):
    """Within the context, a forward given ``inputs_embeds`` runs blocks ``start ... end-1``."""
    model = hf_model(lm)
    require(model, "run_blocks")
    n = n_layers_of(model)
    end = n if end is None else end
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= n):
        raise ValueError(f"run_blocks needs 0 <= start <= end <= {n} (the model's blocks), "
                         f"got start={start!r}, end={end!r}")
    parent, name = block_list(model)
    blocks, config = getattr(parent, name), model.config
    layer_types = config_value(model, "layer_types")
    projection = embed_projection(model)  # (parent, attribute) or None
    projector = getattr(*projection) if projection else None
    zero = patch(lm, {"positions": lambda act, ctx: torch.zeros_like(act)}) \
        if start > 0 and has_positions(model) else nullcontext()
    with zero:
        setattr(parent, name, torch.nn.ModuleList(list(blocks)[start:end]))
        if layer_types is not None:
            config.layer_types = layer_types[start:end]
        if projection is not None:
            setattr(*projection, torch.nn.Identity())
        try:
            yield
        finally:
            setattr(parent, name, blocks)
            if layer_types is not None:
                config.layer_types = layer_types
            if projection is not None:
                setattr(*projection, projector)
