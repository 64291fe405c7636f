"""Scoring DAS: interchange intervention accuracy (IIA), the task accuracy of the unintervened
model and the neuron-aligned baseline."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.anatomy import hf_model
from ..core.modes import frozen
from .data import as_columns, rows
from .forward import capture_sources, intervened_logits, predict_logits
from .rotations import NeuronSubspace, Subspace

NEURON_BASELINE_COLUMNS = ("dims", "iia")


@torch.no_grad()
def iia(model, intervention: Subspace, site: str, data, *, at=None, variable: int | None = None,
        batch_size: int = 512) -> float:
    """Interchange intervention accuracy: the fraction of (base, source) pairs where the intervened
    model's prediction equals the counterfactual label. ``variable`` keeps only the examples
    with that intervention id."""
    columns = as_columns(data)
    if variable is not None:
        if "block" not in columns:
            raise ValueError("variable= needs intervention_ids in the data")
        columns = rows(columns, columns["block"] == variable)
    n = len(columns["base"])
    if n == 0:
        raise ValueError("no examples to score" + (f" for variable {variable}" if variable is not None else ""))
    correct = 0
    with frozen(hf_model(model)), frozen(intervention):
        for i in range(0, n, batch_size):
            batch = rows(columns, slice(i, i + batch_size))
            sources = capture_sources(model, site, batch["source"], at=at,
                                      mask=batch.get("source_mask"), batch_size=batch_size)
            logits = intervened_logits(model, intervention, site, batch, sources, at)
            correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
    return correct / n


@torch.no_grad()
def task_accuracy(model, data, batch_size: int = 512) -> float:
    """Task accuracy of the unintervened model: argmax of its logits against ``labels``."""
    columns = as_columns(data)
    correct = 0
    for i in range(0, len(columns["base"]), batch_size):
        batch = rows(columns, slice(i, i + batch_size))
        logits = predict_logits(model, batch["base"], batch.get("mask"))
        correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
    return correct / len(columns["base"])


def neuron_baseline(model, site: str, data, *, d: int, k: int, at=None, variable: int | None = None,
                    n_candidates: int = 64, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """The neuron-aligned (unrotated) interchange: IIA of swapping ``k`` of the ``d`` neurons,
    for ``n_candidates`` random neuron sets (all sets when there are no more than that), best
    first. Columns: ``dims``, ``iia`` (:data:`NEURON_BASELINE_COLUMNS`). ``k`` must be in 1..``d``."""
    if not 1 <= k <= d:
        raise ValueError(f"k must be in 1..d={d} (the neurons swapped), got k={k}")
    if math.comb(d, k) <= n_candidates:
        candidates = [list(c) for c in combinations(range(d), k)]
    else:
        rng = np.random.default_rng(seed)
        seen, candidates = set(), []
        while len(candidates) < n_candidates:
            c = tuple(sorted(rng.choice(d, size=k, replace=False).tolist()))
            if c not in seen:
                seen.add(c), candidates.append(list(c))
    columns = as_columns(data)
    if variable is not None:
        columns = rows(columns, columns["block"] == variable)
    columns.pop("block", None)
    scores = [{"dims": dims, "iia": iia(model, NeuronSubspace(d, dims), site, columns, at=at)}
              for dims in tqdm(candidates, desc="neuron-aligned", disable=not progress, leave=False)]
    return pd.DataFrame(scores, columns=NEURON_BASELINE_COLUMNS).sort_values(
        "iia", ascending=False, ignore_index=True)
