"""ROME's averages over known facts: six token buckets × layers, with 95% intervals."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .noise import resolve_noise
from .effects import BUCKETS, KINDS, AverageEffect, TraceResult, bucket_rows
from .tracer import causal_trace

def answer_matches(answer: str, attribute: str) -> bool:
    """The model's answer token begins the fact's attribute (whitespace stripped, non-empty)."""
    token = answer.strip()
    return bool(token) and attribute.startswith(token)


def average_indirect_effect(lm, facts: Sequence[dict], kind: str = "hidden", *,
                            samples: int = 10, noise: str | float = "s3", window: int = 10,
                            seed: int = 1, positions=None, only_correct: bool = True,
                            max_tokens: int = 8192, progress: bool = True) -> AverageEffect:
    """ROME's averaged causal effects over ``facts`` (dicts with ``prompt``, ``subject``,
    ``attribute``) in six token buckets × layers, with 95% intervals.

    ``only_correct`` skips facts whose clean top-1 token does not begin the attribute (ROME
    requires the stripped token to equal the whole attribute; ours also keeps multi-token
    attributes). ``noise="s<f>"`` takes σ over these facts' subjects, as ROME does.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    facts, level = facts_and_noise(lm, facts, noise, "average_indirect_effect")
    results, skipped = [], []
    for fact in with_progress(facts, f"tracing {kind}", progress):
        result = causal_trace(lm, fact["prompt"], fact["subject"], kind=kind, samples=samples,
                              noise=level, window=window, seed=seed, positions=positions,
                              max_tokens=max_tokens)
        if only_correct and not answer_matches(result.answer, fact["attribute"]):
            skipped.append(fact)
            continue
        results.append(result)
    return average_results(results, kind=kind, skipped=skipped)



def facts_and_noise(lm, facts: Sequence[dict], noise: str | float,
                    caller: str) -> tuple[list[dict], float]:
    """The facts as a list (``ValueError`` naming ``caller`` when empty) and the noise level:
    ``"s<f>"`` takes σ over these facts' subjects, as ROME does."""
    facts = list(facts)
    if not facts:
        raise ValueError(f"{caller} needs at least one fact")
    subjects = [f["subject"] for f in facts] if isinstance(noise, str) else None
    return facts, resolve_noise(lm, noise, subjects)


def with_progress(items: list, desc: str, show: bool):
    """``items``, with a tqdm progress bar when ``show``."""
    if not show:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc)


def average_results(results: Sequence[TraceResult], kind: str | None = None,
                    skipped: Sequence[dict] = ()) -> AverageEffect:
    """Pool per-prompt traces into ROME's bucket averages (see :class:`AverageEffect`)."""
    results = list(results)
    if not results:
        raise ValueError("no traces to average (did every fact fail the correctness check?)")
    kinds = {r.kind for r in results}
    if len(kinds) > 1:
        raise ValueError(f"cannot average traces of different kinds: {sorted(kinds)}")
    L = results[0].n_layers
    pooled = [[] for _ in BUCKETS]
    counts = np.zeros(len(BUCKETS), dtype=int)
    for result in results:
        for b, rows in enumerate(bucket_rows(result)):
            if len(rows):
                pooled[b].append(rows)
                counts[b] += 1
    mean = np.full((len(BUCKETS), L), np.nan)
    std = np.full((len(BUCKETS), L), np.nan)
    for b, rows in enumerate(pooled):
        if rows:
            stacked = np.concatenate(rows)
            mean[b], std[b] = stacked.mean(0), stacked.std(0)
    return AverageEffect(kind=kind or results[0].kind, mean=mean, std=std, count=counts,
                         low_score=float(np.mean([r.low_score for r in results])),
                         high_score=float(np.mean([r.high_score for r in results])),
                         results=results, skipped=list(skipped))

