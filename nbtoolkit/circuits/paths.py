"""Path patching (Wang et al. 2023, arXiv 2211.00593, Appendix B): the effect of sender heads or
MLPs on chosen receivers only, every other path between them frozen.

    direct = path_patching(lm, base, source, "heads", "logits", metric)
    direct.scores        # [n_layers, n_heads]: each head's direct effect on the logits
    path_patching(lm, base, source, "heads", [(9, 6, "q"), (9, 9, "q")], metric)
    path_patching(lm, base, source, [[(7, 3), (8, 6)], "layer.0.mlp"], "logits", metric)

The paper's algorithm, for each sender h and receivers R:

1. run the base and the source prompts, keeping every activation;
2. run the base prompts with h patched from the source (at ``sender_positions``) and every
   other attention head's output frozen to its base value; MLPs and norms are recomputed
   (``freeze_mlps=True`` freezes the MLPs too); record the receivers' inputs (their queries,
   keys or values), or the final residual stream for ``"logits"``;
3. run the base prompts with only the receivers' inputs patched to those records (at
   ``receiver_positions``), everything else recomputed, and read the metric.

So only the paths from h to R through the residual stream (and MLPs) carry the source. Senders:
``"heads"`` (every head alone: ``[n_layers, n_heads]``), ``"mlps"`` (every MLP alone:
``[n_layers]``), or a list whose entries are a head ``(layer, head)``, an MLP
``"layer.{i}.mlp"``, a whole attention layer ``"layer.{i}.attn"`` or a list of these patched
together (``[n_senders]``). Receivers: ``"logits"`` (the final residual stream) or a list of
``(layer, head, "q" | "k" | "v")`` (for keys and values ``head`` is a key/value head). A sender
at or above every receiver's layer has no path to it: its cells are NaN in a sweep and an error
in a list.

Batched like head patching (tests/test_circuits_paths.py compares every cell with the two
literal passes above): step 2 runs all senders at once, each joining at its own layer and
stopping after the last receiver's block; step 3 runs them all from the first receiver's block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.anatomy import check_layers, parse_site, require, site_name
from ..core.modes import eval_mode
from ..core.sweeps import (Metric, SweepResult, check_metric, encode_pairs, metric_values,
                           patch_cells, position_groups)
from .heads import KINDS, MAX_ROWS, run
from .staged import chunks, entering_streams, staged_forward

SUPPORTED_KINDS = ("decoder",)


@dataclass
class PathPatchingResult(SweepResult):
    """``scores``: the metric with each sender's paths to ``receivers`` patched
    (``[n_layers, n_heads]`` for every head, ``[n_layers]`` for every MLP, ``[n_senders]``)."""

    receivers: tuple = ()
    freeze_mlps: bool = False


def path_patching(lm, base, source, senders, receivers, metric: Metric, *,
                  sender_positions="all", receiver_positions="all", freeze_mlps: bool = False,
                  layers=None, max_rows: int = MAX_ROWS) -> PathPatchingResult:
    """The metric after patching each sender's paths to ``receivers`` from ``source`` into
    ``base`` (module docstring). Positions as ``head_patching``'s, one set per side;
    ``layers`` limits a ``"heads"`` or ``"mlps"`` sweep to senders in those layers (the other
    cells are NaN)."""
    require(lm.model, "path patching", SUPPORTED_KINDS)
    if layers is not None and not (isinstance(senders, str) and senders in ("heads", "mlps")):
        raise ValueError(f"layers limits a 'heads' or 'mlps' sweep; list the senders instead, "
                         f"got senders {senders!r}")
    swept = None if layers is None else set(check_layers(lm.model, layers, embed=False))
    if not isinstance(freeze_mlps, bool):
        raise TypeError(f"freeze_mlps must be True or False, got {freeze_mlps!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
    n_layers, n_heads = lm.n_layers, lm.n_heads
    targets = _receivers(lm, receivers)
    top = n_layers if targets == "logits" else max(layer for layer, _, _ in targets)
    groups, axes, labels = _senders(lm, senders, top)
    pairs = encode_pairs(lm, base, source)
    sender_cols = _one_group(pairs, sender_positions, "sender_positions")
    receiver_cols = _one_group(pairs, receiver_positions, "receiver_positions")
    z_sites = [site_name(layer, "attn.heads") for layer in range(n_layers)]
    mlp_sites = [site_name(layer, "mlp") for layer in range(n_layers)]
    frozen = z_sites + (mlp_sites if freeze_mlps else [])
    with eval_mode(lm.model):
        base_logits, base_acts = run(lm, pairs.base, frozen)
        source_logits, source_acts = run(lm, pairs.source, z_sites + mlp_sites)
        base_scores = check_metric(metric, base_logits)
        source_scores = check_metric(metric, source_logits)
        live = [k for k, g in enumerate(groups)
                if _start(g) < top and (swept is None or _start(g) in swept)]
        values = np.full((pairs.n, len(groups)), np.nan)
        for chunk in chunks(live, max(1, max_rows // pairs.n)):
            chunk = sorted(chunk, key=lambda k: _start(groups[k]))
            got = _paths(lm, pairs, [groups[k] for k in chunk], targets, top, base_acts,
                         source_acts, sender_cols, receiver_cols, metric, freeze_mlps)
            values[:, chunk] = got
    shape = (n_layers, n_heads) if axes == ("layer", "head") else \
        (n_layers,) if axes == ("layer",) else (len(groups),)
    return PathPatchingResult(values.reshape(pairs.n, *shape),
                              base_scores.cpu().double().numpy(),
                              source_scores.cpu().double().numpy(), axes, labels,
                              method="path patching", receivers=tuple(
                                  ["logits"] if targets == "logits" else targets),
                              freeze_mlps=freeze_mlps)


# ---------------------------------------------------------------- the two passes

def _paths(lm, pairs, senders, targets, top, base_acts, source_acts, sender_cols, receiver_cols,
           metric, freeze_mlps) -> np.ndarray:
    """Steps 2 and 3 for ``senders`` (sorted by first layer): ``[n_pairs, len(senders)]``."""
    n, n_layers = pairs.n, lm.n_layers
    starts = [_start(s) for s in senders]
    interventions = {}
    for layer in range(min(starts), top):
        z = site_name(layer, "attn.heads")
        patched = [(k, head, sender_cols) for k, s in enumerate(senders)
                   for (l, head) in s if l == layer and head is not None]
        interventions[z] = [_freeze(base_acts[z], n)] + \
            ([patch_cells(source_acts[z], patched, n)] if patched else [])
        mlp = site_name(layer, "mlp")
        mlps = [(k, None, sender_cols) for k, s in enumerate(senders)
                for (l, head) in s if l == layer and head is None]
        chain = ([_freeze(base_acts[mlp], n)] if freeze_mlps else []) + \
            ([patch_cells(source_acts[mlp], mlps, n)] if mlps else [])
        if chain:
            interventions[mlp] = chain
    entering = entering_streams(lm, pairs.base, set(starts) | ({top} if top < n_layers else set()))
    if targets == "logits":
        logits, _ = staged_forward(lm, pairs, entering, starts, interventions)
        return metric_values(metric, logits, n).T.cpu().double().numpy()
    sites = sorted({site_name(layer, KINDS[part]) for layer, _, part in targets},
                   key=lambda s: parse_site(s)[0])
    _, recorded = staged_forward(lm, pairs, entering, starts, interventions, end=top + 1,
                                 record=sites)
    _, base_inputs = run(lm, pairs.base, sites)
    edits = {}
    for site in sites:
        # senders that joined after this receiver's block (all of them, if none had joined
        # when it ran) leave it at its base value
        act, active = recorded.get(site, (base_inputs[site][:0], 0))
        full = torch.cat([act, base_inputs[site].repeat(len(senders) - active, 1, 1, 1)])
        heads = [h for l, h, part in targets if site_name(l, KINDS[part]) == site]
        cells = [(k, h, receiver_cols) for k in range(len(senders)) for h in heads]
        edits[site] = patch_cells(full, cells, n)
    first = min(parse_site(s)[0] for s in sites)
    entering = entering_streams(lm, pairs.base, [first])
    logits, _ = staged_forward(lm, pairs, entering, [first] * len(senders), edits)
    return metric_values(metric, logits, n).T.cpu().double().numpy()


def _freeze(value: torch.Tensor, n: int):
    """Every active condition's rows set to ``value`` ``[n, ...]`` (the base run's)."""
    def edit(act, ctx):
        return value.repeat(act.shape[0] // n, *([1] * (value.dim() - 1))).to(act.dtype)
    return edit


# ---------------------------------------------------------------- senders and receivers

def _start(sender: list[tuple[int, int | None]]) -> int:
    return min(layer for layer, _ in sender)


def _senders(lm, senders, top: int):
    """Sender groups (lists of ``(layer, head or None for the MLP)``), the result's axes and
    labels."""
    n_layers, n_heads = lm.n_layers, lm.n_heads
    if senders == "heads":
        return [[(l, h)] for l in range(n_layers) for h in range(n_heads)], ("layer", "head"), {}
    if senders == "mlps":
        return [[(l, None)] for l in range(n_layers)], ("layer",), {}
    if isinstance(senders, str) or not isinstance(senders, (list, tuple)) or not senders:
        raise ValueError(f"senders must be 'heads', 'mlps' or a non-empty list of senders (a head "
                         f"(layer, head), 'layer.i.mlp', 'layer.i.attn', or a list of these "
                         f"patched together), got {senders!r}")
    groups, labels = [], []
    for entry in senders:
        members = entry if isinstance(entry, list) else [entry]
        if not members:
            raise ValueError(f"a sender group is empty: {entry!r}")
        group = [c for m in members for c in _component(lm, m)]
        if _start(group) >= top:
            where = "the logits" if top == n_layers else f"receivers at layers <= {top}"
            raise ValueError(f"sender {entry!r} starts at layer {_start(group)}, at or above "
                             f"{where}: it has no path to them (a head reads the residual stream "
                             f"before the heads of its own layer write to it)")
        groups.append(group)
        labels.append(_label(entry))
    return groups, ("sender",), {"sender": labels}


def _component(lm, c) -> list[tuple[int, int | None]]:
    n_layers, n_heads = lm.n_layers, lm.n_heads
    if isinstance(c, tuple) and len(c) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                    for x in c):
        layer, head = c
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"sender head {c!r} is out of range: layers 0..{n_layers - 1}, "
                             f"heads 0..{n_heads - 1}")
        return [c]
    parsed = parse_site(c) if isinstance(c, str) else None
    if parsed and parsed[1] in ("mlp", "attn") and parsed[0] < n_layers:
        layer, kind = parsed
        return [(layer, None)] if kind == "mlp" else [(layer, h) for h in range(n_heads)]
    raise ValueError(f"unknown sender {c!r}: a sender is a head (layer, head), an MLP "
                     f"'layer.i.mlp' or a whole attention layer 'layer.i.attn' (i in "
                     f"0..{n_layers - 1})")


def _label(entry) -> str:
    members = entry if isinstance(entry, list) else [entry]
    return "+".join(f"{m[0]}.{m[1]}" if isinstance(m, tuple) else m for m in members)


def _receivers(lm, receivers):
    if receivers in ("logits", "resid"):
        return "logits"
    listed = [receivers] if isinstance(receivers, tuple) else receivers
    if not isinstance(listed, (list, tuple)) or not listed:
        raise ValueError(f"receivers must be 'logits' or a non-empty list of (layer, head, "
                         f"'q'|'k'|'v'), got {receivers!r}")
    from ..core.anatomy import config_value

    n_layers, n_heads = lm.n_layers, lm.n_heads
    kv_heads = config_value(lm.model, "n_kv_heads")
    out = []
    for r in listed:
        ok = isinstance(r, tuple) and len(r) == 3 and r[2] in ("q", "k", "v") and \
            all(isinstance(x, int) and not isinstance(x, bool) for x in r[:2])
        if not ok:
            raise ValueError(f"a receiver is (layer, head, 'q' | 'k' | 'v'), got {r!r}")
        layer, head, part = r
        limit = n_heads if part == "q" else kv_heads
        if not (0 <= layer < n_layers and 0 <= head < limit):
            what = "heads" if part == "q" else "key/value heads"
            raise ValueError(f"receiver {r!r} is out of range: layers 0..{n_layers - 1}, "
                             f"{what} 0..{limit - 1}")
        out.append(r)
    return out


def _one_group(pairs, positions, what: str):
    groups, axis = position_groups(pairs, positions)
    if axis and len(groups) != 1:
        raise ValueError(f"{what} takes one set of positions ('all', 'last', ints, or a dict "
                         f"with one name), got {positions!r}")
    return groups[0].columns
