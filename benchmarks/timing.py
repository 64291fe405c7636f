"""Side-by-side timing: alternate the candidates in every repeat so drift hits both alike."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable

import torch

# Every benchmark runs twice: with trainable weights and frozen, as after model.requires_grad_(False)
# (torch picks different kernels for a weight that needs no gradient).
STATES = ("unfrozen", "frozen")


@contextmanager
def weights(model: torch.nn.Module, state: str):
    """Inside: every parameter of ``model`` trainable (``"unfrozen"``) or not (``"frozen"``);
    the flags put back after."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(state == "unfrozen")
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def side_by_side(candidates: dict[str, Callable[[], object]], repeats: int = 10,
                 warmup: int = 2) -> dict[str, float]:
    """Median seconds of each candidate, measured interleaved."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def row(benchmark: str, ours: float, reference: float, goal: str, note: str = "",
        state: str = "") -> dict:
    """One line of RESULTS.md; ``state``: the weights it ran with (one of STATES; "" if none)."""
    return dict(benchmark=benchmark, state=state, ours_s=ours, reference_s=reference,
                ratio=ours / reference, goal=goal, note=note)
