"""Interchange interventions over a (layer, position) grid: the activation-patching sweep, on the
sweep convention of ``nbtoolkit.core.sweeps`` (the circuit sweeps' too).

    result = interchange_sweep(lm, "The capital of Spain is", "The capital of Italy is",
                               prob_difference(lm, " Rome", " Madrid"), kind="mlp")
    result.scores        # [n_layers, n_positions]: the metric after patching the source there
    result.per_pair      # [n_pairs, n_layers, n_positions] for a batch of prompt pairs
    interchange_sweep(lm, data.prompts, data.corrupted, data.metric(lm), positions=data.positions(lm))

For every layer and position, each base prompt gets its source prompt's activation at one site
(``layer.{i}``, ``layer.{i}.mlp`` or ``layer.{i}.attn``) and a metric of the base run's
prediction logits is read: the next-token logits of a causal LM, the class logits of a sequence
classifier (an encoder with an MNLI head). Every position of every pair at one layer shares one
batched forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.anatomy import SWEEP_KINDS, check_layers, require, site_name
from ..core.hooks import capture, patch
from ..core.lm import prediction_logits
from ..core.modes import eval_mode
from ..core.sweeps import (Metric, SweepResult, check_metric, encode_pairs, metric_values,
                           patch_cells, position_groups)

#: The model kinds an interchange sweep runs on: those with a prediction (next token or class).
SUPPORTED_KINDS = ("decoder", "encoder")


@dataclass
class InterchangeResult(SweepResult):
    """``scores`` ``[n_layers, n_positions]``: the metric after patching the source's ``kind``
    activation at (layer, position), the mean over pairs (``per_pair`` ``[n_pairs, n_layers,
    n_positions]``; layers not swept are NaN); ``tokens`` the first base prompt's tokens."""

    tokens: list[str] = field(default_factory=list)
    kind: str = "hidden"

    def best(self) -> tuple[int, int, float]:
        """(layer, position, score) of the largest mean score."""
        if not np.isfinite(self.scores).any():
            raise ValueError("this sweep has no scores (no layer or no position was swept)")
        layer, position = np.unravel_index(np.nanargmax(self.scores), self.scores.shape)
        return int(layer), int(position), float(self.scores[layer, position])


def prob_difference(lm, plus: str, minus: str) -> Metric:
    """Metric ``p(plus) − p(minus)`` of the next token, from logits ``[n_pairs, vocab]``."""
    i, j = lm.token_id(plus), lm.token_id(minus)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        probs = logits.float().softmax(-1)
        return probs[:, i] - probs[:, j]
    return metric


@torch.no_grad()
def interchange_sweep(lm, base, source, metric: Metric, kind: str = "hidden",
                      layers=None, positions="each") -> InterchangeResult:
    """Patch each ``source`` prompt's ``kind`` activation into its ``base`` prompt at every
    (layer, position). ``base``/``source``: a string or token ids, or lists of them (pair i =
    ``(base[i], source[i])``, the two of a pair with the same tokens count). ``positions``:
    ``"each"`` (every position; all pairs of one length, so that positions line up) or a dict
    ``{name: position per pair}`` (prompts of any lengths; e.g. ``data.positions(lm)``), or
    one patch (``"all"``, ``"last"``, ints): the position axis of ``scores``.
    ``metric(logits [n_pairs, vocab or classes]) -> [n_pairs]``."""
    require(lm.model, "interchange sweeps", SUPPORTED_KINDS)
    if kind not in SWEEP_KINDS:
        raise ValueError(f"kind must be one of {list(SWEEP_KINDS)}, got {kind!r}")
    pairs = encode_pairs(lm, base, source)
    groups, _ = position_groups(pairs, positions)
    layers = sorted(check_layers(lm.model, layers, embed=False))
    sites = [site_name(i, kind) for i in layers]
    n = pairs.n
    with eval_mode(lm.model):
        with capture(lm, sites) as source_acts:
            source_scores = check_metric(metric, _logits(lm, pairs.source))
        base_scores = check_metric(metric, _logits(lm, pairs.base))
        rows = pairs.tiled(pairs.base, len(groups))  # block p: every pair, patched at position p
        cells = [(p, None, group.columns) for p, group in enumerate(groups)]
        per_pair = np.full((n, lm.n_layers, len(groups)), np.nan)
        for layer, site in zip(layers, tqdm(sites, desc=f"interchange {kind}", leave=False)):
            with patch(lm, {site: patch_cells(source_acts[site], cells, n)}):
                values = metric_values(metric, _logits(lm, rows), n)  # [positions, n]
            per_pair[:, layer] = values.T.cpu().double().numpy()
    return InterchangeResult(per_pair, base_scores.cpu().double().numpy(),
                             source_scores.cpu().double().numpy(), ("layer", "position"),
                             {"position": [group.label for group in groups]},
                             method=f"interchange ({kind})", tokens=pairs.tokens[0], kind=kind)


def _logits(lm, inputs: dict) -> torch.Tensor:
    return prediction_logits(lm.model, inputs, purpose="interchange_sweep")
