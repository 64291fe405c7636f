"""Interchange interventions over a (position, layer) grid: the activation-patching sweep.

For every layer and position, the base run gets the source run's activation at one site
(``layer.{i}``, ``layer.{i}.mlp`` or ``layer.{i}.attn``) and a metric of the base run's
prediction is read: the next-token distribution of a causal LM, the class distribution of a
sequence classifier (an encoder with an MNLI head). All positions of one layer share one batched
forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.anatomy import SWEEP_KINDS, require, site_name
from ..core.hooks import capture, patch
from ..core.interventions import Set
from ..core.lm import prediction_logits

SUPPORTED_KINDS = ("decoder", "encoder")  # with a prediction: the next token or a class


@dataclass
class InterchangeResult:
    """``scores[position, layer]``: the metric after patching the source activation there."""

    scores: np.ndarray
    tokens: list[str]
    kind: str
    base_score: float
    source_score: float

    def to_frame(self) -> pd.DataFrame:
        """One row per (position, layer): ``kind, position, token, layer, score``."""
        n_pos, n_layers = self.scores.shape
        return pd.DataFrame({"kind": self.kind, "position": np.repeat(range(n_pos), n_layers),
                             "token": np.repeat(self.tokens, n_layers),
                             "layer": np.tile(range(n_layers), n_pos),
                             "score": self.scores.ravel()})

    def best(self) -> tuple[int, int, float]:
        """(position, layer, score) of the largest score."""
        position, layer = np.unravel_index(np.argmax(self.scores), self.scores.shape)
        return int(position), int(layer), float(self.scores[position, layer])


def prob_difference(lm, plus: str, minus: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Metric ``p(plus) − p(minus)`` of the next token, from probabilities ``[batch, vocab]``."""
    i, j = lm.token_id(plus), lm.token_id(minus)
    return lambda probs: probs[:, i] - probs[:, j]


@torch.no_grad()
def interchange_sweep(lm, base: str, source: str, metric: Callable[[torch.Tensor], torch.Tensor],
                      kind: str = "hidden", layers=None) -> InterchangeResult:
    """Patch ``source``'s activation into ``base`` at every (position, layer) of one site kind.

    ``metric(probs [batch, vocab or classes]) -> [batch]``. Both prompts must have the same
    token count.
    """
    require(lm.model, "interchange sweeps", SUPPORTED_KINDS)
    if kind not in SWEEP_KINDS:
        raise ValueError(f"kind must be one of {list(SWEEP_KINDS)}, got {kind!r}")
    base_batch, source_batch = lm.encode(base), lm.encode(source)
    n_tokens = base_batch["input_ids"].shape[1]
    if source_batch["input_ids"].shape[1] != n_tokens:
        raise ValueError(f"base and source must have the same number of tokens, got {n_tokens} "
                         f"and {source_batch['input_ids'].shape[1]}: {lm.tokens(base)} vs "
                         f"{lm.tokens(source)}")
    layers = list(range(lm.n_layers)) if layers is None else list(layers)
    sites = [site_name(i, kind) for i in layers]
    with capture(lm, sites) as source_acts:
        source_score = metric(_last_probs(lm, source_batch)).item()
    base_score = metric(_last_probs(lm, base_batch)).item()
    # one row per position: row p gets the source activation at position p
    rows = {k: v.expand(n_tokens, -1) for k, v in base_batch.items()}
    per_row = [[p] for p in range(n_tokens)]
    scores = np.zeros((n_tokens, len(layers)))
    for column, site in enumerate(tqdm(sites, desc=f"interchange {kind}", leave=False)):
        with patch(lm, {site: Set(source_acts[site], at=per_row)}):
            scores[:, column] = metric(_last_probs(lm, rows)).cpu().numpy()
    return InterchangeResult(scores, lm.tokens(base), kind, base_score, source_score)


def _last_probs(lm, batch) -> torch.Tensor:
    return prediction_logits(lm.model, batch, purpose="interchange_sweep").float().softmax(-1)
