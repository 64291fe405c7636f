"""Distributed alignment search: train an interchange intervention, measure IIA.

    data = {"inputs": base [N, ...], "source_inputs": [N, ...], "labels": [N],
            "intervention_ids": [N]}               # or input_ids / source_input_ids (a text task)
    rot = RotatedSubspace(d=16, k=8)
    result = train_das(model, rot, "layers.1", data, epochs=3)
    iia(model, rot, "layers.1", test_data)          # interchange intervention accuracy

A step: the frozen model runs the base input with the rotated subspace at ``site`` taken from
the source's activation, and the loss is the cross-entropy against the causal model's
counterfactual label. Source activations do not depend on the rotation, so they are captured
once, without gradients, before training: a step is one forward + backward.

``model`` is an :class:`~nbtoolkit.lm.LM`, a Hugging Face causal LM (the prediction is the
last position's logits; ``labels`` may be pyvene-style ``[N, seq]`` with −100 everywhere but the
last position) or any ``torch.nn.Module`` mapping inputs to class logits ``[N, classes]``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .patching import capture, model_of, patch
from .rotations import BoundlessRotatedSubspace, NeuronSubspace, _Trainable

# ------------------------------------------------------------------ data


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


# ------------------------------------------------------------------ forwards


def _is_text_model(module: torch.nn.Module) -> bool:
    return hasattr(module, "config") and hasattr(module, "get_input_embeddings")


def predict_logits(model, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                   every_position: bool = False) -> torch.Tensor:
    """Class / next-token logits ``[N, classes]``: an LM's last position, or a module's output;
    ``[N, seq, classes]`` at every position with ``every_position``."""
    module = model_of(model)
    device = _device(module)
    inputs = inputs.to(device)
    if _is_text_model(module):
        kwargs = {}
        if mask is not None:
            mask = mask.to(device)
            kwargs = dict(attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
        logits = module(input_ids=inputs, logits_to_keep=0 if every_position else 1, **kwargs).logits
        return logits if every_position else logits[:, -1]
    out = module(inputs)
    return out[:, -1] if out.dim() == 3 and not every_position else out


def _device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def capture_sources(model, site: str, inputs: torch.Tensor, *, at=None,
                    mask: torch.Tensor | None = None, batch_size: int = 512) -> torch.Tensor:
    """Activations at ``site`` on ``inputs``, without gradients: ``[N, d]`` for a layer without
    positions, ``[N, len(at), d]`` for positions ``at`` (int or list), ``[N, seq, d]`` if at=None."""
    chunks = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            with capture(model, site) as acts:
                predict_logits(model, inputs[i:i + batch_size],
                               None if mask is None else mask[i:i + batch_size])
            act = acts[site]
            if act.dim() >= 3 and at is not None:
                positions = [at] if isinstance(at, int) else list(at)
                act = act[:, positions]
            chunks.append(act)
    return torch.cat(chunks)


def intervened_logits(model, intervention: _Trainable, site: str, batch: dict,
                      source_acts: torch.Tensor, at=None) -> torch.Tensor:
    """Logits ``[n, classes]`` of the base inputs with the intervention fed ``source_acts``."""
    _bind(intervention, batch, source_acts, at, _device(model_of(model)))
    with patch(model, {site: intervention}):
        return predict_logits(model, batch["base"], batch.get("mask"))


def _bind(intervention: _Trainable, batch: dict, source_acts: torch.Tensor, at, device) -> None:
    intervention.with_source(source_acts.to(device), at=at,
                             block=batch["block"].to(device) if "block" in batch else None)


def _step(model, intervention: _Trainable, batch: dict, source_acts: torch.Tensor, optimizer,
          device, at=None, boundary_penalty: float = 0.0) -> torch.Tensor:
    """One optimiser step on ``batch`` while ``patch(model, {site: intervention})`` is active;
    returns the detached cross-entropy (a 0-dim tensor: no device sync)."""
    _bind(intervention, batch, source_acts, at, device)
    logits = predict_logits(model, batch["base"], batch.get("mask"))
    loss = F.cross_entropy(logits.float(), batch["labels"].to(logits.device))
    total = loss
    if boundary_penalty:
        total = loss + boundary_penalty * intervention.boundaries.clamp(1e-3, 1).sum()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.detach()


def _batches(n: int, batch_size: int, epochs: int, generator: torch.Generator):
    """Row indices of every batch: a fresh permutation per epoch."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            yield order[i:i + batch_size]


class _Frozen:
    """Freeze a model's parameters and put it in eval mode; restore both on exit."""

    def __init__(self, model):
        self.module = model_of(model)

    def __enter__(self):
        self.flags = [(p, p.requires_grad) for p in self.module.parameters()]
        self.training = self.module.training
        for p, _ in self.flags:
            p.requires_grad_(False)
        self.module.eval()

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.module.train(self.training)


# ------------------------------------------------------------------ training


def temperature_schedule(start: float, end: float, steps: int) -> np.ndarray:
    """Boundless DAS's linear temperature schedule ``[steps]`` from ``start`` to ``end``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.linspace(start, end, steps)


@dataclass
class DASResult:
    """Training history (one row per step: loss, lr, temperature, boundary sizes, eval IIA)."""

    intervention: _Trainable
    history: pd.DataFrame
    iia: float | None = None
    meta: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.history

    def plot(self):
        from .plots.das import training_history
        return training_history(self.history)


def das_optimizer(intervention: _Trainable, lr: float = 1e-3,
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


def train_das(model, intervention: _Trainable, site: str, data, *, at=None, epochs: int = 1,
              batch_size: int = 64, lr: float = 1e-3, boundary_lr: float = 1e-2,
              warmup: float = 0.1, temperature: tuple[float, float] = (50.0, 0.1),
              boundary_penalty: float = 0.0, eval_data=None, eval_every: int | None = None,
              monitor=None, seed: int = 0, progress: bool = True) -> DASResult:
    """Train ``intervention`` (its rotation, and boundaries for Boundless) so that interchanging
    at ``site`` (positions ``at``) makes ``model`` output the counterfactual labels.

    Adam; linear warm-up over ``warmup`` of the steps, then linear decay (as pyvene). For a
    :class:`BoundlessRotatedSubspace` the temperature falls linearly ``temperature[0] →
    temperature[1]`` over all steps (set after every step) and ``boundary_penalty · Σ boundaries``
    is added to the loss. ``eval_data`` is scored with :func:`iia` every ``eval_every`` steps and
    at the end; ``monitor`` (e.g. ``widgets.TrainingMonitor(("loss", "iia"))``) gets
    ``update(step, loss=..., iia=...)``. The model is frozen meanwhile and restored afterwards.
    """
    at = intervention.at if at is None else at
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
    n_warm = max(1, int(warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / n_warm, max(0.0, (total - s) / max(1, total - n_warm))))
    rows, step = [], 0
    was_training = intervention.training
    device = _device(model_of(model))
    intervention.to(device).train()
    if boundless:
        intervention.set_temperature(taus[0])
    # the hook stays registered for a segment of steps, removed for each evaluation (iia patches)
    segment = eval_every if eval_data is not None and eval_every else total
    todo = _batches(n, batch_size, epochs, torch.Generator().manual_seed(seed))
    penalty = boundary_penalty if boundless else 0.0
    show_every = max(1, total // 100)

    def report(row):
        if monitor is not None:
            monitor.update(row["step"] + 1, **{k: float(row[k]) for k in monitor.metrics if k in row})

    with _Frozen(model):
        sources = capture_sources(model, site, columns["source"], at=at,
                                  mask=columns.get("source_mask"))
        bar = tqdm(total=total, desc=f"DAS {site}", disable=not progress, leave=False)
        try:
            while step < total:
                with patch(model, {site: intervention}):
                    for idx in itertools.islice(todo, segment):
                        loss = _step(model, intervention, _rows(columns, idx), sources[idx],
                                     optimizer, device, at, penalty)
                        schedule.step()
                        row = {"step": step, "loss": loss, "lr": schedule.get_last_lr()[0]}
                        if boundless:
                            with torch.no_grad():
                                intervention.boundaries.clamp_(1e-3, 1.0)
                            row["temperature"] = float(intervention.temperature)
                            intervention.set_temperature(taus[min(step + 1, total - 1)])
                            row["subspace"] = sum(intervention.subspace_sizes())
                        rows.append(row)
                        step += 1
                        bar.update(1)
                        if progress and step % show_every == 0:
                            bar.set_postfix(loss=f"{loss.item():.3f}")
                        if step % segment and step < total:  # a segment's last row: below
                            report(row)
                if segment < total and step < total:
                    rows[-1]["iia"] = iia(model, intervention, site, eval_data, at=at)
                    intervention.train()
                report(rows[-1])
        finally:
            bar.close()
            intervention.train(was_training)
            intervention.source = None
    losses = torch.stack([row["loss"] for row in rows]).tolist()
    for row, loss in zip(rows, losses):
        row["loss"] = loss
    final = None
    if eval_data is not None:
        final = iia(model, intervention, site, eval_data, at=at)
        rows[-1]["iia"] = final
        if monitor is not None and "iia" in monitor.metrics:
            report(rows[-1])
    return DASResult(intervention, pd.DataFrame(rows), final,
                     dict(site=site, at=at, epochs=epochs, batch_size=batch_size, n=n))


@torch.no_grad()
def iia(model, intervention: _Trainable, site: str, data, *, at=None, variable: int | None = None,
        batch_size: int = 512) -> float:
    """Interchange intervention accuracy: the fraction of (base, source) pairs where the intervened
    model's prediction equals the counterfactual label. ``variable`` keeps only the examples
    with that intervention id."""
    at = intervention.at if at is None else at
    columns = as_columns(data)
    if variable is not None:
        if "block" not in columns:
            raise ValueError("variable= needs intervention_ids in the data")
        columns = _rows(columns, columns["block"] == variable)
    n = len(columns["base"])
    if n == 0:
        raise ValueError("no examples to score" + (f" for variable {variable}" if variable is not None else ""))
    was_training = intervention.training
    intervention.eval()
    correct = 0
    with _Frozen(model):
        try:
            for i in range(0, n, batch_size):
                batch = _rows(columns, slice(i, i + batch_size))
                sources = capture_sources(model, site, batch["source"], at=at,
                                          mask=batch.get("source_mask"), batch_size=batch_size)
                logits = intervened_logits(model, intervention, site, batch, sources, at)
                correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
        finally:
            intervention.train(was_training)
            intervention.source = None
    return correct / n


@torch.no_grad()
def accuracy(model, data, batch_size: int = 512) -> float:
    """Task accuracy of the unintervened model: argmax of its logits against ``labels``."""
    columns = as_columns(data)
    correct = 0
    for i in range(0, len(columns["base"]), batch_size):
        batch = _rows(columns, slice(i, i + batch_size))
        logits = predict_logits(model, batch["base"], batch.get("mask"))
        correct += (logits.argmax(-1).cpu() == batch["labels"]).sum().item()
    return correct / len(columns["base"])


def neuron_baseline(model, site: str, data, *, d: int, k: int, at=None, variable: int | None = None,
                    n_candidates: int = 64, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """The neuron-aligned (unrotated) interchange: IIA of swapping ``k`` of the ``d`` neurons,
    for ``n_candidates`` random neuron sets (all sets when there are no more than that), best
    first. Columns: ``dims``, ``iia``."""
    from itertools import combinations

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
        columns = _rows(columns, columns["block"] == variable)
    columns.pop("block", None)
    rows = []
    for dims in tqdm(candidates, desc="neuron-aligned", disable=not progress, leave=False):
        rows.append({"dims": dims, "iia": iia(model, NeuronSubspace(d, dims), site, columns, at=at)})
    return pd.DataFrame(rows).sort_values("iia", ascending=False, ignore_index=True)


def alignment_grid(model, make: Callable[[], _Trainable], data, eval_data, *, layers, positions,
                   site: str = "layer.{layer}", progress: bool = True, **train_kwargs) -> pd.DataFrame:
    """Train one intervention (``make()``) per (layer, position) cell and score it on
    ``eval_data``: columns ``layer``, ``position``, ``site``, ``iia``, ``result`` (the
    :class:`DASResult`). ``train_kwargs`` go to :func:`train_das`."""
    rows = []
    cells = [(layer, position) for layer in layers for position in positions]
    for layer, position in tqdm(cells, desc="grid", disable=not progress):
        name = site.format(layer=layer)
        result = train_das(model, make(), name, data, at=position, eval_data=eval_data,
                           progress=False, **train_kwargs)
        rows.append({"layer": layer, "position": position, "site": name, "iia": result.iia,
                     "result": result})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the task model itself


def lr_factor(step: int, total: int, warmup: int = 0, decay: str = "linear") -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``total``: linear warm-up to 1 over
    ``warmup`` steps, then ``"linear"`` or ``"cosine"`` decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 1 - progress if decay == "linear" else 0.5 * (1 + math.cos(math.pi * progress))


def fit(model, data, *, epochs: int = 1, batch_size: int = 64, lr: float = 3e-3,
        weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
        warmup: float = 0.0, decay: str = "linear", seed: int = 0, monitor=None,
        log_every: int = 10, eval_data=None, progress: bool = True) -> pd.DataFrame:
    """Train ``model`` on the factual task (cross-entropy of the last-position / output logits
    against ``labels``; for labels ``[N, seq]`` naming tokens at several positions, the mean
    cross-entropy over every labelled position, as a causal LM is trained) with AdamW: linear
    warm-up over the first ``warmup`` fraction of steps,
    then ``"linear"`` or ``"cosine"`` decay (:func:`lr_factor`); a fresh permutation of the
    examples every epoch. Returns the history (step, loss[, accuracy]); ``monitor`` gets
    ``update(step, loss=..., accuracy=...)`` every ``log_every`` steps. The model's train/eval
    mode is restored afterwards."""
    if decay not in ("linear", "cosine"):
        raise ValueError(f"decay must be 'linear' or 'cosine', got {decay!r}")
    columns = as_columns(data, sequence_labels=True)
    every_position = columns["labels"].dim() == 2
    module = model_of(model)
    n = len(columns["base"])
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n} (the training examples), got {batch_size}")
    total = max(1, epochs * math.ceil(n / batch_size))
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr,
                                  betas=betas, weight_decay=weight_decay)
    n_warm = max(1, int(warmup * total)) if warmup > 0 else 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, n_warm, decay))
    generator = torch.Generator().manual_seed(seed)
    rows, step = [], 0
    was_training = module.training
    module.train()
    bar = tqdm(total=total, desc="train", disable=not progress, leave=False)
    try:
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for i in range(0, n, batch_size):
                batch = _rows(columns, order[i:i + batch_size])
                logits = predict_logits(model, batch["base"], batch.get("mask"), every_position)
                loss = F.cross_entropy(logits.flatten(0, -2).float(),
                                       batch["labels"].flatten().to(logits.device), ignore_index=-100)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                row = {"step": step, "loss": loss.item()}
                if step % log_every == 0 or step == total:
                    if eval_data is not None:
                        module.eval()
                        row["accuracy"] = accuracy(model, eval_data)
                        module.train()
                    if monitor is not None:
                        monitor.update(step, **{k: row[k] for k in monitor.metrics if k in row})
                rows.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
    finally:
        bar.close()
        module.train(was_training)
    return pd.DataFrame(rows)


__all__ = ["DASResult", "accuracy", "alignment_grid", "as_columns", "capture_sources",
           "das_optimizer", "fit", "iia", "intervened_logits", "lr_factor", "neuron_baseline",
           "predict_logits", "temperature_schedule", "train_das"]
