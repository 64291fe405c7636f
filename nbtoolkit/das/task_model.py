"""Train the task model itself (the network DAS later explains) on the factual task."""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from ..core.anatomy import hf_model
from ..core.modes import eval_mode, training_mode
from .data import as_columns, batches, rows
from .evaluate import task_accuracy
from .forward import predict_logits

SCHEDULES = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}


def fit(model, data, *, epochs: int = 1, batch_size: int = 64, lr: float = 3e-3,
        weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
        warmup: float = 0.0, decay: str = "linear", seed: int = 0, monitor=None,
        log_every: int = 10, eval_data=None, progress: bool = True) -> pd.DataFrame:
    """Train ``model`` on the factual task (cross-entropy of the last-position / output logits
    against ``labels``; for labels ``[N, seq]`` naming tokens at several positions, the mean
    cross-entropy over every labelled position, as a causal LM is trained) with AdamW: linear
    warm-up over the first ``warmup`` fraction of steps,
    then ``"linear"`` or ``"cosine"`` decay (transformers' schedules, as pyvene uses); a fresh permutation of the
    examples every epoch. Returns the history (step, loss[, accuracy]); ``monitor`` gets
    ``update(step, loss=..., accuracy=...)`` every ``log_every`` steps. The model's train/eval
    modes are restored afterwards."""
    if decay not in SCHEDULES:
        raise ValueError(f"decay must be 'linear' or 'cosine', got {decay!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int (else there is no history), got {epochs!r}")
    columns = as_columns(data, sequence_labels=True)
    every_position = columns["labels"].dim() == 2
    module = hf_model(model)
    n = len(columns["base"])
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n} (the training examples), got {batch_size}")
    total = max(1, epochs * math.ceil(n / batch_size))
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr,
                                  betas=betas, weight_decay=weight_decay)
    n_warm = max(1, int(warmup * total)) if warmup > 0 else 0
    schedule = SCHEDULES[decay](optimizer, n_warm, total)
    history, step = [], 0
    with training_mode(module, True), tqdm(total=total, desc="train", disable=not progress,
                                           leave=False) as bar:
        for idx in batches(n, batch_size, epochs, torch.Generator().manual_seed(seed)):
            batch = rows(columns, idx)
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
                    with eval_mode(module):
                        row["accuracy"] = task_accuracy(model, eval_data)
                if monitor is not None:
                    monitor.update(step, **{k: row[k] for k in monitor.metrics if k in row})
            history.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
    return pd.DataFrame(history)

