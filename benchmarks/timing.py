"""Side-by-side timing: alternate the candidates in every repeat so drift hits both alike; each
row keeps every repeat, so RESULTS.md shows min / median / max and the spread of the ratio."""

from __future__ import annotations

import os
import re
import statistics
import time
from contextlib import contextmanager
from typing import Callable, Sequence

import torch

# Every benchmark runs twice: with trainable weights and frozen, as after model.requires_grad_(False)
# (torch picks different kernels for a weight that needs no gradient).
STATES = ("unfrozen", "frozen")
# `make bench FULL=1`: every row on both weight states and more repeats (about 50 minutes); the
# default (about 10 minutes) runs the slow rows (reference loops, peers, extraction) on one state.
FULL = os.environ.get("BENCH_FULL", "") not in ("", "0")


def states(slow: bool = False) -> tuple[str, ...]:
    """The weight states a benchmark runs in: both, except a ``slow`` one outside FULL (frozen:
    how the tutorials run)."""
    return STATES if FULL or not slow else ("frozen",)


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
                 warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each candidate in every repeat, measured interleaved."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Seconds of ``repeats`` runs of ``fn`` and its last output."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def limit_of(goal: str) -> float | None:
    """The ratio a goal written ``"<= 1.3 ..."`` or ``"< 1"`` allows (None: no ratio goal)."""
    match = re.match(r"\s*<=?\s*([0-9.]+)", goal or "")
    return float(match.group(1)) if match else None


def spread(seconds: Sequence[float] | float) -> dict:
    """min / median / max of one candidate's repeats."""
    values = [seconds] if isinstance(seconds, (int, float)) else list(seconds)
    return dict(min=min(values), median=statistics.median(values), max=max(values), n=len(values))


def row(benchmark: str, ours: Sequence[float] | float, reference: Sequence[float] | float,
        goal: str, note: str = "", state: str = "") -> dict:
    """One line of RESULTS.md: each side's repeats (seconds, or one number), the ratio of the
    medians and the spread of the per-repeat ratios (repeats taken side by side pair up);
    ``met`` whether the ratio meets a ``"<= x"`` goal (None: no such goal); ``state``: the
    weights it ran with (one of STATES, "both" or "")."""
    ours_t, ref_t = spread(ours), spread(reference)
    ratio = ours_t["median"] / ref_t["median"]
    paired = [o / r for o, r in zip(ours, reference)] if ours_t["n"] == ref_t["n"] > 1 else [ratio]
    limit = limit_of(goal)
    return dict(benchmark=benchmark, state=state, ours=ours_t, reference=ref_t, ratio=ratio,
                ratio_spread=(min(paired), max(paired)), goal=goal,
                met=None if limit is None else ratio <= limit, note=note)
