"""Attribution patching (AtP; Nanda 2023) and AtP* (Kramár et al. 2024, arXiv 2403.00745): every
site's patching effect estimated to first order from one base forward, one source forward and
one backward.

    result = attribution_patching(lm, data.prompts, data.corrupted, data.metric(lm))
    result.scores        # [n_layers, n_heads]: base_score + (a_source − a_base) · ∂metric/∂a
    results = attribution_patching(lm, base, source, metric, kind=("out", "q", "mlp"))  # a dict

The estimate of patching site ``a`` at positions P is ``Σ_{t∈P} (a_source[t] − a_base[t]) ·
∂metric/∂a[t]`` (the gradient in the base run), so ``.scores`` = base score + estimate is the
exact sweep's ``.scores`` to first order. Kinds: ``interchange_sweep``'s ``"hidden"`` (the
block's output ``layer.{i}``), ``"attn"``, ``"mlp"`` (``[n_layers]``, or ``[n_layers,
n_positions]`` per position), and the heads' ``"out"``, ``"q"``, ``"k"``, ``"v"`` (``[n_layers,
n_heads]``, as ``head_patching``).

AtP*'s two fixes, both options:

- ``qk_fix=True`` (queries and keys): attention saturates, so the softmax's gradient can vanish
  where a patch would move the pattern a lot. The patched layer's attention is recomputed
  exactly instead (one single-block forward per layer with the source's queries, or keys, of
  every head; per key position for per-position keys), and only what follows the heads' outputs
  is linearised: ``Σ_t ∂metric/∂z[t] · (z_patched[t] − z[t])``, z the head's output. This equals
  the paper's ``∂metric/∂A · ΔA`` (z is linear in the pattern A).
- ``grad_drop=True``: cancellation between a node's direct and indirect effects can hide it. For
  each block ℓ the backward is repeated with the gradient through block ℓ's attention and MLP
  outputs dropped, and ``.graddrop`` holds ``1/(L−1) Σ_ℓ |estimate_ℓ|`` per pair (a magnitude
  for ranking, as the paper uses it, not a signed estimate): L more backward passes.

The backward uses ``torch.autograd.grad``: no parameter's ``.grad`` is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.anatomy import SWEEP_KINDS, require, site_name
from ..core.hooks import patch
from ..core.lm import LAST_POSITION
from ..core.modes import eval_mode
from ..core.sweeps import (Metric, PositionGroup, SweepResult, check_metric, encode_pairs,
                           position_groups)
from .heads import KINDS as HEAD_KINDS, run
from .staged import entering_streams, staged_forward

SUPPORTED_KINDS = ("decoder",)
SITE_KINDS = {**SWEEP_KINDS, **HEAD_KINDS}


@dataclass
class AttributionResult(SweepResult):
    """``scores``: base score + the first-order estimate of each patch (the exact sweep's
    ``scores`` to first order); ``graddrop`` ``[n_pairs, ...]``: AtP*'s GradDrop magnitude
    (``grad_drop=True``), else None."""

    kind: str = "out"
    qk_fix: bool = False
    graddrop: np.ndarray | None = None

    def estimates(self) -> np.ndarray:
        """The estimated effect of each patch, mean over pairs (``scores − base_score``)."""
        return self.effects()


def attribution_patching(lm, base, source, metric: Metric, *, kind="out", positions="all",
                         qk_fix: bool = False, grad_drop: bool = False):
    """AtP estimates of patching ``source`` into ``base`` at every site of ``kind`` (one of
    ``"hidden"``, ``"attn"``, ``"mlp"``, ``"out"``, ``"q"``, ``"k"``, ``"v"``, or a tuple of them:
    then a dict of results from the same forwards and backward) at ``positions`` (as
    ``head_patching``). ``qk_fix``/``grad_drop``: AtP*'s fixes (module docstring)."""
    require(lm.model, "attribution patching", SUPPORTED_KINDS)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    bad = [k for k in kinds if k not in SITE_KINDS]
    if bad or not kinds:
        raise ValueError(f"kind must be one of {list(SITE_KINDS)} or a tuple of them, got "
                         f"{kind!r}")
    for name, flag in (("qk_fix", qk_fix), ("grad_drop", grad_drop)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    pairs = encode_pairs(lm, base, source)
    groups, axis = position_groups(pairs, positions)
    n_layers = lm.n_layers
    needed = set(kinds) | ({"out"} if qk_fix and {"q", "k"} & set(kinds) else set())
    sites = {k: [site_name(l, SITE_KINDS[k]) for l in range(n_layers)] for k in needed}
    flat = [s for k in needed for s in sites[k]]
    with eval_mode(lm.model):
        source_logits, source_acts = run(lm, pairs.source, flat)
        source_scores = check_metric(metric, source_logits).detach()
        base_scores, base_acts, grads, drops = _gradients(lm, pairs, metric, flat, grad_drop)
        results = {}
        for k in kinds:
            per_site = _contributions(k, sites, base_acts, source_acts, grads, lm, pairs, qk_fix)
            estimate = np.stack([_grouped(c, groups) for c in per_site], 1)  # [n, L, (H), G]
            graddrop = None
            if grad_drop:
                dropped = [np.stack([_grouped(c, groups) for c in _contributions(
                    k, sites, base_acts, source_acts, g, lm, pairs, qk_fix)], 1) for g in drops]
                graddrop = sum(np.abs(d) for d in dropped) / max(n_layers - 1, 1)
            base_np = base_scores.cpu().double().numpy()
            shape = (-1,) + (1,) * (estimate.ndim - 1)
            scores = base_np.reshape(shape) + estimate
            if not axis:
                scores, graddrop = scores[..., 0], None if graddrop is None else graddrop[..., 0]
            heads = ("head",) if k in HEAD_KINDS else ()
            fixed = qk_fix and k in ("q", "k")
            results[k] = AttributionResult(
                scores, base_np, source_scores.cpu().double().numpy(),
                ("layer", *heads, *(("position",) if axis else ())),
                {"position": [g.label for g in groups]} if axis else {},
                method=f"attribution patching ({k}{', QK fix' if fixed else ''})",
                kind=k, qk_fix=fixed, graddrop=graddrop)
    return results[kinds[0]] if isinstance(kind, str) else results


def _gradients(lm, pairs, metric, sites: list[str], grad_drop: bool):
    """The base run's metric ``[n]``, activations and ∂(Σ metric)/∂activation at ``sites``; with
    ``grad_drop``, the gradients again with each block's attention and MLP outputs' gradient
    dropped (one list of dicts per block)."""
    recorded, gates = {}, {}

    def record(name):
        def fn(act, ctx):
            alias = act.view_as(act)  # a node the forward reads: its gradient is the site's
            recorded[name] = alias
            return alias
        return fn

    def gate(layer):
        def fn(act, ctx):
            out = act.view_as(act)  # downstream of the site's own alias: drops its gradient too
            gates.setdefault(layer, []).append(out)
            return out
        return fn

    interventions = {s: [record(s)] for s in sites}
    if grad_drop:
        for layer in range(lm.n_layers):
            for kind in ("attn", "mlp"):
                s = site_name(layer, kind)
                interventions.setdefault(s, []).append(gate(layer))
    with torch.enable_grad(), _grad_input(lm), patch(lm, interventions):
        logits = lm.model(**pairs.base, use_cache=False, logits_to_keep=LAST_POSITION).logits
        values = check_metric(metric, logits[:, -1])
        inputs = [recorded[s] for s in sites]
        grads = dict(zip(sites, torch.autograd.grad(values.sum(), inputs, retain_graph=grad_drop,
                                                    allow_unused=True)))
        drops = []
        if grad_drop:
            for layer in range(lm.n_layers):
                handles = [g.register_hook(torch.zeros_like) for g in gates[layer]]
                try:
                    got = torch.autograd.grad(values.sum(), inputs, retain_graph=True,
                                              allow_unused=True)
                finally:
                    for handle in handles:
                        handle.remove()
                drops.append(_filled(dict(zip(sites, got)), inputs, sites))
    acts = {s: recorded[s].detach() for s in sites}
    return values.detach(), acts, _filled(grads, inputs, sites), drops


def _filled(grads: dict, inputs, sites) -> dict:
    """Gradients, zeros where the metric does not depend on a site (``allow_unused``)."""
    return {s: (torch.zeros_like(x) if grads[s] is None else grads[s]).detach()
            for s, x in zip(sites, inputs)}


class _grad_input:
    """A forward that builds a graph even when every weight is frozen: the token embeddings
    are made to require grad (a patch on ``embed``), nothing else is changed."""

    def __init__(self, lm):
        self.context = patch(lm, {"embed": lambda act, ctx: act if act.requires_grad else
                                  act.detach().requires_grad_(True)})

    def __enter__(self):
        return self.context.__enter__()

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def _contributions(kind, sites, base_acts, source_acts, grads, lm, pairs, qk_fix) -> list:
    """Per layer, each position's first-order term ``[n, width]`` (heads: ``[n, width, H]``)."""
    out = []
    for layer, site in enumerate(sites[kind]):
        if qk_fix and kind in ("q", "k"):
            out.append(_qk_fixed(kind, layer, sites, base_acts, source_acts, grads, lm, pairs))
        else:
            out.append(((source_acts[site] - base_acts[site]) * grads[site]).double().sum(-1))
    return out


def _qk_fixed(kind, layer, sites, base_acts, source_acts, grads, lm, pairs) -> torch.Tensor:
    """AtP*'s QK fix for one layer: ``[n, width, heads]`` (queries) — the term of the query at
    each position; for keys, the key at each position with every query's output recomputed,
    summed over the query heads sharing it."""
    out_site, site = sites["out"][layer], sites[kind][layer]
    z, g = base_acts[out_site], grads[out_site]
    entering = entering_streams(lm, pairs.base, [layer])
    n, width = pairs.n, pairs.width
    if kind == "q":  # a query at t changes the output at t only: patch them all at once
        patched = _block_outputs(lm, pairs, entering, layer, site, source_acts[site], [None],
                                 out_site)[0]
        return ((patched - z) * g).double().sum(-1)
    # a key at s changes every later output of its heads: one patched block per position
    columns = [torch.full((n, 1), c, device=z.device) for c in range(width)]
    patched = _block_outputs(lm, pairs, entering, layer, site, source_acts[site], columns,
                             out_site)  # [width, n, width, H, d]
    per_query_head = ((patched - z) * g).double().sum((-1, -3))  # [width (key), n, H]
    kv = source_acts[site].shape[2]
    per_kv = per_query_head.unflatten(-1, (kv, -1)).sum(-1)  # query heads grouped by kv head
    return per_kv.permute(1, 0, 2)  # [n, width (key position), kv heads]


def _block_outputs(lm, pairs, entering, layer, site, source, columns, out_site) -> torch.Tensor:
    """The heads' outputs of block ``layer`` alone, for each entry of ``columns`` (``[n, k]``
    or ``None``: all) with ``site`` of every head patched from ``source`` there:
    ``[len(columns), n, width, H, d_head]``."""
    n, width = pairs.n, pairs.width
    device = source.device

    def edit(act, ctx):
        out = act.clone()
        for k, cols in enumerate(columns):
            rows = slice(k * n, (k + 1) * n)
            if cols is None:
                out[rows] = source.to(act.dtype)
            else:
                pair = torch.arange(n, device=device)[:, None].expand_as(cols)
                out[k * n + pair, cols] = source[pair, cols].to(act.dtype)
        return out
    _, recorded = staged_forward(lm, pairs, entering, [layer] * len(columns), {site: edit},
                                 end=layer + 1, record=[out_site])
    act, _ = recorded[out_site]
    return act.unflatten(0, (len(columns), n))


def _grouped(contribution: torch.Tensor, groups: list[PositionGroup]) -> np.ndarray:
    """``[n, width, ...]`` terms summed over each group's columns: ``[n, ..., n_groups]``."""
    out = []
    for group in groups:
        if group.columns is None:
            out.append(contribution.sum(1))
        else:
            rows = torch.arange(contribution.shape[0], device=contribution.device)[:, None]
            out.append(contribution[rows, group.columns].sum(1))
    return torch.stack(out, -1).cpu().numpy()
