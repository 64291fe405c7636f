"""Many patched forwards of a batch of prompt pairs in a few batched passes, each skipping the
blocks below its first patch (causal tracing's trick, ``nbtoolkit.core.blocks.run_blocks``).

A *condition* is one patched forward of all ``n`` pairs: ``n`` rows of the batch, block-major
(condition k owns rows ``k·n … k·n + n − 1``). Conditions come sorted by ``start``, the first
block their patches change; each joins the batch at that block, fed the base run's residual
stream entering it (below it, its rows would equal the base run's), so block l runs only for the
conditions that start at or below l. The interventions see ``[active·n, ...]`` activations, the
conditions that have joined so far, first to last.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from ..core.anatomy import parse_site, residual_site
from ..core.blocks import body, run_blocks
from ..core.hooks import capture, patch
from ..core.lm import LAST_POSITION
from ..core.sweeps import Pairs


def entering_streams(lm, inputs: dict, starts) -> dict[int, torch.Tensor]:
    """The residual stream entering each block in ``starts`` in a forward of ``inputs``
    (block 0: the token embeddings, as ``run_blocks`` takes them) ``[n, width, d_model]``."""
    sites = {start: residual_site(start - 1) for start in sorted(set(starts))}
    with torch.no_grad(), capture(lm, list(sites.values())) as acts:
        lm.model(**inputs, use_cache=False, logits_to_keep=LAST_POSITION)
    return {start: acts[site] for start, site in sites.items()}


def staged_forward(lm, pairs: Pairs, entering: Mapping[int, torch.Tensor], starts: Sequence[int],
                   interventions: Mapping[str, Callable], *, end: int | None = None,
                   record: Sequence[str] = ()) -> tuple[torch.Tensor | None, dict]:
    """Run the conditions (``starts`` sorted) on the base prompts of ``pairs`` with
    ``interventions`` (``{site: fn(act, ctx)}``, ``act`` ``[active·n, ...]``) through block
    ``end − 1`` (default: the last block and the head). Returns the last position's logits
    ``[len(starts)·n, vocab]`` (``None`` when ``end`` stops before the head) and, for each site
    in ``record``, ``(activation [active·n, ...], active)``: the conditions that had joined when
    its block ran (the later ones still equal the base run there)."""
    n, n_layers = pairs.n, lm.n_layers
    end = n_layers if end is None else end
    if list(starts) != sorted(starts) or not starts or starts[-1] >= end:
        raise ValueError(f"starts must be sorted block indices below {end}, got {list(starts)}")
    extra = {k: v for k, v in pairs.base.items() if k != "input_ids"}
    firsts = sorted(set(starts))
    stream, active, recorded, logits = None, 0, {}, None
    for i, lo in enumerate(firsts):
        hi = firsts[i + 1] if i + 1 < len(firsts) else end
        joining = sum(1 for s in starts if s == lo)
        rows = entering[lo].repeat(joining, 1, 1)
        stream = rows if stream is None else torch.cat([stream, rows])
        active += joining
        kwargs = {k: v.repeat(active, 1) for k, v in extra.items()}
        here = [s for s in record if lo <= parse_site(s)[0] < hi]
        head = hi == n_layers
        out_site = [] if head else [residual_site(hi - 1)]
        with torch.no_grad(), patch(lm, interventions), capture(lm, here + out_site) as acts, \
                run_blocks(lm, lo, hi):
            if head:
                logits = lm.model(inputs_embeds=stream, **kwargs, use_cache=False,
                                  logits_to_keep=LAST_POSITION).logits[:, -1]
            else:
                body(lm)(inputs_embeds=stream, **kwargs, use_cache=False)
                stream = acts[out_site[0]]
        recorded.update({site: (acts[site], active) for site in here})
    return logits, recorded


def chunks(items: list, size: int) -> list[list]:
    """``items`` in consecutive chunks of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]
