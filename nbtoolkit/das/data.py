"""DAS data: counterfactual examples as columns of tensors, and their batches."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch


def as_columns(data, sequence_labels: bool = False) -> dict[str, torch.Tensor]:
    """Normalise a dict of arrays or a ``datasets.Dataset`` to ``{base, source, labels, block,
    mask, source_mask}`` tensors (the last three may be absent). ``labels`` becomes ``[N]``
    (pyvene's ``[N, seq]``, −100 everywhere but the last position, gives its last column); with
    ``sequence_labels``, labels ``[N, seq]`` that name tokens at other positions stay ``[N, seq]``."""
    if hasattr(data, "column_names") and hasattr(data, "with_format"):
        data = {c: data.with_format("torch")[c] for c in data.column_names}
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict of arrays or a datasets.Dataset, got {type(data).__name__}")
    if "base" in data and "labels" in data:  # already normalised
        return dict(data)
    pairs = (("base", ("inputs", "input_ids")), ("source", ("source_inputs", "source_input_ids")),
             ("labels", ("labels",)), ("block", ("intervention_ids",)),
             ("mask", ("attention_mask",)), ("source_mask", ("source_attention_mask",)))
    out = {}
    for key, names in pairs:
        for name in names:
            if name in data:
                value = data[name]
                out[key] = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
    for key in ("base", "labels"):
        if key not in out:
            raise ValueError(f"data needs {'inputs or input_ids' if key == 'base' else 'labels'}; "
                             f"got columns {sorted(data)}")
    labels = out["labels"]
    if labels.dim() == 2 and not (sequence_labels and (labels[:, :-1] != -100).any()):
        labels = labels[:, -1]  # pyvene layout: -100 everywhere but the last position
    out["labels"] = labels.long()
    n = len(out["base"])
    for key, value in out.items():
        if len(value) != n:
            raise ValueError(f"column {key!r} has {len(value)} rows but the inputs have {n}")
    return out


def _rows(columns: dict, idx) -> dict:
    return {k: v[idx] for k, v in columns.items()}


def rows(columns: dict, idx) -> dict:
    """The rows ``idx`` of every column."""
    return {k: v[idx] for k, v in columns.items()}


def batches(n: int, batch_size: int, epochs: int, generator: torch.Generator):
    """Row indices of every batch: a fresh permutation per epoch."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            yield order[i:i + batch_size]
