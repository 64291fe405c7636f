"""Activation patching of single attention heads: every (layer, head), the source's activation
patched into the base run, the metric read at the last position.

    result = head_patching(lm, data.prompts, data.corrupted, data.metric(lm))
    result.scores        # [n_layers, n_heads]: the metric with that head's output patched
    head_patching(lm, base, source, metric, kind="q", positions=data.positions(lm))
    #                    # [n_layers, n_heads, 4]: queries, one result per named position

``kind``: ``"out"`` (the head's output, the input of the attention's output projection, site
``layer.{i}.attn.heads``), ``"q"``, ``"k"``, ``"v"`` (its queries, keys, values: sites
``layer.{i}.attn.q/.k/.v``). With grouped-query attention a key/value head is shared by several
query heads, so ``"k"`` and ``"v"`` sweep the ``n_kv_heads`` key/value heads.

Exact (tests/test_circuits_heads.py compares every cell with one patched forward per cell): all
cells run in a few batched forwards, and each cell's rows join the batch at its head's block,
fed the base run's residual stream: the blocks below a patch are not recomputed
(:mod:`nbtoolkit.circuits.staged`); only the last position's logits are computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.anatomy import check_layers, require, site_name
from ..core.hooks import capture
from ..core.lm import LAST_POSITION
from ..core.modes import eval_mode
from ..core.sweeps import (Metric, PositionGroup, SweepResult, check_metric, encode_pairs,
                           metric_values, patch_cells, position_groups)
from .staged import chunks, entering_streams, staged_forward

SUPPORTED_KINDS = ("decoder",)  # the next token after each prompt
KINDS = {"out": "attn.heads", "q": "attn.q", "k": "attn.k", "v": "attn.v"}
MAX_ROWS = 512  # batch rows (cells × pairs) per forward


@dataclass
class HeadPatchingResult(SweepResult):
    """``scores`` ``[n_layers, n_heads]`` (``[n_layers, n_heads, n_positions]`` with a position
    axis): the metric with one head's ``kind`` patched from the source."""

    kind: str = "out"


def head_patching(lm, base, source, metric: Metric, *, kind: str = "out", positions="all",
                  layers=None, heads=None, max_rows: int = MAX_ROWS) -> HeadPatchingResult:
    """Patch each head's ``kind`` (``"out"``, ``"q"``, ``"k"``, ``"v"``) from ``source`` into
    ``base`` at ``positions`` (``nbtoolkit.core.sweeps``: ``"all"``, ``"last"``, ints,
    ``"each"`` or a dict of named positions), one head at a time; ``layers`` / ``heads`` limit
    the sweep (the other cells are NaN). ``metric(logits [n_pairs, vocab]) -> [n_pairs]``."""
    require(lm.model, "head patching", SUPPORTED_KINDS)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)} (head output, queries, keys, "
                         f"values), got {kind!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
    pairs = encode_pairs(lm, base, source)
    groups, axis = position_groups(pairs, positions)
    layers = sorted(check_layers(lm.model, layers, embed=False))
    sites = {layer: site_name(layer, KINDS[kind]) for layer in layers}
    with eval_mode(lm.model):
        base_logits, _ = run(lm, pairs.base, [])
        source_logits, source_acts = run(lm, pairs.source, list(sites.values()))
        base_scores = check_metric(metric, base_logits)
        source_scores = check_metric(metric, source_logits)
        n_heads = source_acts[sites[layers[0]]].shape[2]
        heads = check_heads(heads, n_heads, kind)
        cells = [(layer, head, g) for layer in layers for head in heads
                 for g in range(len(groups))]
        values = _patched(lm, pairs, cells, groups, sites, source_acts, metric, max_rows)
    per_pair = np.full((pairs.n, lm.n_layers, n_heads, len(groups)), np.nan)
    for (layer, head, g), column in zip(cells, values.T):
        per_pair[:, layer, head, g] = column
    labels = {"position": [g.label for g in groups]} if axis else {}
    return HeadPatchingResult(per_pair if axis else per_pair[..., 0],
                              base_scores.cpu().double().numpy(),
                              source_scores.cpu().double().numpy(),
                              ("layer", "head", "position") if axis else ("layer", "head"),
                              labels, method=f"head patching ({kind})", kind=kind)


def check_heads(heads, n_heads: int, kind: str = "out") -> list[int]:
    """A list of head indices in ``0 .. n_heads − 1`` (``None``: all)."""
    if heads is None:
        return list(range(n_heads))
    listed = [heads] if isinstance(heads, int) and not isinstance(heads, bool) else heads
    what = "key/value heads" if kind in ("k", "v") else "heads"
    if not isinstance(listed, (list, tuple, range)) or not listed or \
            not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h < n_heads
                    for h in listed):
        raise ValueError(f"heads must be ints in 0..{n_heads - 1} (this model has {n_heads} "
                         f"{what} per layer), got {heads!r}")
    return list(listed)


def run(lm, inputs: dict, sites: list[str]):
    """Last-position logits ``[n, vocab]`` of one forward, and the activations at ``sites``."""
    with torch.no_grad(), capture(lm, sites) as acts:
        logits = lm.model(**inputs, use_cache=False, logits_to_keep=LAST_POSITION).logits[:, -1]
    return logits, acts


def _patched(lm, pairs, cells, groups: list[PositionGroup], sites, source_acts, metric,
             max_rows: int) -> np.ndarray:
    """The metric with each cell ``(layer, head, group)`` patched: ``[n_pairs, n_cells]``."""
    n = pairs.n
    entering = entering_streams(lm, pairs.base, {layer for layer, _, _ in cells})
    out = []
    for chunk in chunks(cells, max(1, max_rows // n)):
        interventions = {}
        for layer in sorted({c[0] for c in chunk}):
            mine = [(k, head, groups[g].columns) for k, (l, head, g) in enumerate(chunk)
                    if l == layer]
            interventions[sites[layer]] = patch_cells(source_acts[sites[layer]], mine, n)
        logits, _ = staged_forward(lm, pairs, entering, [c[0] for c in chunk], interventions)
        out.append(metric_values(metric, logits, n))
    return torch.cat(out).T.cpu().double().numpy()
