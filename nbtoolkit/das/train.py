"""Train an interchange intervention (DAS, Boundless DAS) against counterfactual labels, one
site or a (layer × position) grid of them.

A step: the frozen model runs the base input with the subspace at ``site`` taken from the
source's activation, and the loss is the cross-entropy against the causal model's
counterfactual label. Source activations do not depend on the rotation, so they are captured
once, without gradients, before training: a step is one forward + backward.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from ..core.anatomy import hf_model
from ..core.hooks import patch
from ..core.modes import frozen, training_mode
from .data import as_columns, batches, rows
from .evaluate import iia
from .forward import capture_sources, device_of, interchange_for, predict_logits
from .rotations import BoundlessRotatedSubspace, Interchange, Subspace

GRID_COLUMNS = ("layer", "position", "site", "iia", "result")


@dataclass
class DASResult:
    """Training history (one row per step: loss, lr, temperature, boundary sizes, eval IIA)."""

    intervention: Subspace
    history: pd.DataFrame
    iia: float | None = None
    meta: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.history


def temperature_schedule(start: float, end: float, steps: int) -> np.ndarray:
    """Boundless DAS's linear temperature schedule ``[steps]`` from ``start`` to ``end``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.linspace(start, end, steps)


def das_optimizer(intervention: Subspace, lr: float = 1e-3,
                  boundary_lr: float = 1e-2) -> torch.optim.Adam:
    """Adam over the intervention's parameters: the rotation at ``lr``, Boundless DAS's
    boundaries at ``boundary_lr``. The per-tensor loop (``foreach=False``) is about twice as fast
    as the default multi-tensor path for the few small tensors an intervention has."""
    groups = [{"params": [p for name, p in intervention.named_parameters() if name != "boundaries"],
               "lr": lr}]
    if isinstance(intervention, BoundlessRotatedSubspace):
        groups.append({"params": [intervention.boundaries], "lr": boundary_lr})
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ValueError(f"{intervention!r} has no trainable parameters")
    return torch.optim.Adam(groups, foreach=False)


class CurrentInterchange:
    """The intervention a training loop registers once: it applies whichever
    :class:`~nbtoolkit.das.rotations.Interchange` the loop set for the current batch (the
    per-batch source lives here, with the loop, not in the subspace)."""

    def __init__(self, interchange: Interchange | None = None):
        self.interchange = interchange

    def __call__(self, act: torch.Tensor, ctx) -> torch.Tensor:
        return self.interchange(act, ctx)


def das_step(model, intervention: Subspace, batch: dict, optimizer,
             boundary_penalty: float = 0.0) -> torch.Tensor:
    """One optimiser step on ``batch`` while a :class:`CurrentInterchange` holding this batch's
    interchange is patched in; returns the detached cross-entropy (0-dim: no device sync)."""
    logits = predict_logits(model, batch["base"], batch.get("mask"))
    loss = F.cross_entropy(logits.float(), batch["labels"].to(logits.device))
    total = loss
    if boundary_penalty:
        total = loss + boundary_penalty * intervention.boundaries.clamp(1e-3, 1).sum()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.detach()


def train_das(model, intervention: Subspace, site: str, data, *, at=None, epochs: int = 1,
              batch_size: int = 64, lr: float = 1e-3, boundary_lr: float = 1e-2,
              warmup: float = 0.1, temperature: tuple[float, float] = (50.0, 0.1),
              boundary_penalty: float = 0.0, eval_data=None, eval_every: int | None = None,
              monitor=None, seed: int = 0, progress: bool = True) -> DASResult:
    """Train ``intervention`` (its rotation, and boundaries for Boundless) so that interchanging
    at ``site`` (positions ``at``) makes ``model`` output the counterfactual labels.

    Adam; linear warm-up over ``warmup`` of the steps, then linear decay
    (``transformers.get_linear_schedule_with_warmup``, as pyvene's tutorials). For a
    :class:`BoundlessRotatedSubspace` the temperature falls linearly ``temperature[0] →
    temperature[1]`` over all steps (set after every step) and ``boundary_penalty · Σ boundaries``
    is added to the loss. ``eval_data`` is scored with :func:`~nbtoolkit.das.iia` every
    ``eval_every`` steps and at the end; ``monitor`` (e.g. ``viz.widgets.TrainingMonitor(("loss",
    "iia"))``) gets ``update(step, loss=..., iia=...)``. The model is frozen meanwhile and
    restored afterwards.
    """
    columns = as_columns(data)
    if "source" not in columns:
        raise ValueError("data needs source_inputs or source_input_ids (the interchange sources)")
    n = len(columns["base"])
    if n == 0 or epochs < 1:
        raise ValueError(f"nothing to train: {n} examples, epochs={epochs}")
    total = epochs * math.ceil(n / batch_size)
    boundless = isinstance(intervention, BoundlessRotatedSubspace)
    taus = temperature_schedule(*temperature, total) if boundless else None
    optimizer = das_optimizer(intervention, lr, boundary_lr)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, int(warmup * total)), total)
    device = device_of(hf_model(model))
    intervention.to(device)
    # the hook stays registered for a segment of steps, removed for each evaluation (iia patches)
    segment = eval_every if eval_data is not None and eval_every else total
    todo = batches(n, batch_size, epochs, torch.Generator().manual_seed(seed))
    penalty = boundary_penalty if boundless else 0.0
    history, current = [], CurrentInterchange()

    def report(row):
        if monitor is not None:
            monitor.update(row["step"] + 1, **{k: float(row[k]) for k in monitor.metrics if k in row})

    with frozen(hf_model(model)), training_mode(intervention, True), \
            tqdm(total=total, desc=f"DAS {site}", disable=not progress, leave=False) as bar:
        sources = capture_sources(model, site, columns["source"], at=at,
                                  mask=columns.get("source_mask"))
        if boundless:
            intervention.set_temperature(taus[0])
        while len(history) < total:
            with patch(model, {site: current}):
                for idx in itertools.islice(todo, segment):
                    batch = rows(columns, idx)
                    current.interchange = interchange_for(intervention, batch, sources[idx], at, device)
                    loss = das_step(model, intervention, batch, optimizer, penalty)
                    schedule.step()
                    row = {"step": len(history), "loss": loss, "lr": schedule.get_last_lr()[0]}
                    if boundless:
                        with torch.no_grad():
                            intervention.boundaries.clamp_(1e-3, 1.0)
                        row["temperature"] = float(intervention.temperature)
                        intervention.set_temperature(taus[min(len(history) + 1, total - 1)])
                        row["subspace"] = sum(intervention.subspace_sizes())
                    history.append(row)
                    bar.update(1)
                    if len(history) % segment and len(history) < total:  # a segment's last row: below
                        report(row)
            if len(history) < total:
                history[-1]["iia"] = iia(model, intervention, site, eval_data, at=at)
            report(history[-1])
    for row, loss in zip(history, torch.stack([row["loss"] for row in history]).tolist()):
        row["loss"] = loss
    final = None
    if eval_data is not None:
        final = iia(model, intervention, site, eval_data, at=at)
        history[-1]["iia"] = final
        if monitor is not None and "iia" in monitor.metrics:
            report(history[-1])
    return DASResult(intervention, pd.DataFrame(history), final,
                     dict(site=site, at=at, epochs=epochs, batch_size=batch_size, n=n))


def alignment_grid(model, make: Callable[[], Subspace], data, eval_data, *, layers, positions,
                   site: str = "layer.{layer}", progress: bool = True, **train_kwargs) -> pd.DataFrame:
    """Train one intervention (``make()``) per (layer, position) cell and score it on
    ``eval_data``: columns ``layer``, ``position``, ``site``, ``iia``, ``result`` (the
    :class:`DASResult`; :data:`GRID_COLUMNS`), no rows when ``layers`` or ``positions`` is
    empty. ``train_kwargs`` go to :func:`train_das`."""
    cells = [(layer, position) for layer in layers for position in positions]
    grid = []
    for layer, position in tqdm(cells, desc="grid", disable=not progress):
        name = site.format(layer=layer)
        result = train_das(model, make(), name, data, at=position, eval_data=eval_data,
                           progress=False, **train_kwargs)
        grid.append({"layer": layer, "position": position, "site": name, "iia": result.iia,
                     "result": result})
    return pd.DataFrame(grid, columns=GRID_COLUMNS)
