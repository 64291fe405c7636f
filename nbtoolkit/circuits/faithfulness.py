"""Circuit faithfulness (Wang et al. 2023, §2.1 and §4): the circuit alone, every attention head
outside it mean-ablated, as a fraction of the full model's metric.

    result = circuit_faithfulness(lm, data.prompts, abc.prompts, circuit, metric,
                                  groups=[i["template"] for i in data.info])
    result.fraction      # F(C) / F(M)  (the paper: 87% for its 26 heads in GPT-2 small)

Mean ablation as the paper does it: a head outside the circuit gets its mean output over the
reference prompts (the paper's p_ABC, the IOI templates with three unrelated names), averaged
over the reference prompts of the same template (``groups``: one label per pair), so each
position keeps its grammatical role; the circuit's heads, the MLPs and the embeddings run as
they are. ``F(∅)``, every head ablated, is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import require, site_name
from ..core.hooks import capture, patch
from ..core.lm import LAST_POSITION
from ..core.modes import eval_mode
from ..core.sweeps import Metric, check_metric, encode_pairs


@dataclass
class FaithfulnessResult:
    """``full`` ``[n_pairs]`` F(M) per pair; ``circuit`` F(C); ``empty`` F(∅) (all heads
    ablated); ``heads`` the circuit."""

    full: np.ndarray
    circuit: np.ndarray
    empty: np.ndarray
    heads: list[tuple[int, int]]

    @property
    def fraction(self) -> float:
        """F(C) / F(M), the means over pairs."""
        return float(self.circuit.mean() / self.full.mean())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"model": ["full model M", "circuit C", "no head (∅)"],
                             "metric": [self.full.mean(), self.circuit.mean(), self.empty.mean()],
                             "std": [self.full.std(), self.circuit.std(), self.empty.std()],
                             "fraction_of_full": [1.0, self.fraction,
                                                  float(self.empty.mean() / self.full.mean())]})


def circuit_faithfulness(lm, prompts, reference, heads, metric: Metric, *,
                         groups=None) -> FaithfulnessResult:
    """F(M), F(C) and F(∅) on ``prompts`` with the heads outside ``heads`` (a list of
    ``(layer, head)``) set to their mean over ``reference`` (one reference prompt per prompt, of
    the same length; means taken within each ``groups`` label, default one group)."""
    require(lm.model, "circuit faithfulness")
    pairs = encode_pairs(lm, prompts, reference)
    labels = [0] * pairs.n if groups is None else list(groups)
    if len(labels) != pairs.n:
        raise ValueError(f"groups has {len(labels)} labels for {pairs.n} prompts")
    n_layers, n_heads = lm.n_layers, lm.n_heads
    circuit = _heads(heads, n_layers, n_heads)
    sites = [site_name(layer, "attn.heads") for layer in range(n_layers)]
    with eval_mode(lm.model), torch.no_grad():
        with capture(lm, sites) as ref:
            lm.model(**pairs.source, use_cache=False, logits_to_keep=LAST_POSITION)
        means = {site: _group_means(ref[site], labels, pairs.lengths) for site in sites}
        full = _metric(lm, pairs, metric, {})
        keep = {layer: [h for l, h in circuit if l == layer] for layer in range(n_layers)}
        ablated = {site: _ablate(means[site], keep[layer]) for layer, site in enumerate(sites)}
        with_circuit = _metric(lm, pairs, metric, ablated)
        nothing = _metric(lm, pairs, metric,
                          {site: _ablate(means[site], []) for site in sites})
    return FaithfulnessResult(full, with_circuit, nothing, circuit)


def _heads(heads, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    listed = list(heads) if isinstance(heads, (list, tuple, set)) else None
    if listed is None or not all(isinstance(h, tuple) and len(h) == 2 and
                                 all(isinstance(x, int) and not isinstance(x, bool) for x in h)
                                 for h in listed):
        raise TypeError(f"heads must be a list of (layer, head) tuples, got {heads!r}")
    bad = [h for h in listed if not (0 <= h[0] < n_layers and 0 <= h[1] < n_heads)]
    if bad:
        raise ValueError(f"heads {bad} are out of range: layers 0..{n_layers - 1}, heads "
                         f"0..{n_heads - 1}")
    return sorted(set(listed))


def _group_means(acts: torch.Tensor, labels: list, lengths: list[int]) -> torch.Tensor:
    """Each row replaced by the mean of its group's rows ``[n, width, ...]``."""
    out = torch.empty_like(acts)
    for label in dict.fromkeys(labels):
        rows = [i for i, l in enumerate(labels) if l == label]
        if len({lengths[i] for i in rows}) != 1:
            raise ValueError(f"group {label!r} mixes prompts of {sorted({lengths[i] for i in rows})} "
                             f"tokens: a mean over positions needs one length per group")
        out[rows] = acts[rows].mean(0, keepdim=True)
    return out


def _ablate(mean: torch.Tensor, keep: list[int]):
    """Every head but ``keep`` set to ``mean`` ``[n, width, heads, d_head]``."""
    def edit(act, ctx):
        out = mean.to(act.dtype).clone()
        if keep:
            out[:, :, keep] = act[:, :, keep]
        return out
    return edit


def _metric(lm, pairs, metric, interventions) -> np.ndarray:
    with patch(lm, interventions):
        logits = lm.model(**pairs.base, use_cache=False, logits_to_keep=LAST_POSITION).logits
    return check_metric(metric, logits[:, -1]).cpu().double().numpy()
