"""ROME's noise: a multiple of the standard deviation of the subject tokens' embeddings."""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch

from ..data.facts import load_facts

def noise_level(lm, subjects: Sequence[str], factor: float = 3.0) -> float:
    """ROME's noise level: ``factor`` × σ, σ = ONE std (unbiased) over all elements of the
    embeddings of all subject tokens, each subject embedded alone (no special tokens)."""
    subjects = [s for s in subjects]
    if not subjects or any(not isinstance(s, str) or not s for s in subjects):
        raise ValueError("noise_level needs a non-empty list of non-empty subject strings")
    embed = lm.model.get_input_embeddings()
    device = lm.device
    with torch.no_grad():
        rows = []
        for subject in subjects:
            ids = lm.tokenizer(subject, add_special_tokens=False)["input_ids"]
            rows.append(embed(torch.tensor([ids], device=device))[0].float())
        return factor * float(torch.cat(rows).std())


def resolve_noise(lm, noise: str | float, subjects: Sequence[str] | None = None) -> float:
    """A noise spec as a float std: ``"s<f>"`` = f × σ over ``subjects`` (default: the subjects
    of the project's known facts, :func:`nbtoolkit.data.load_facts`); a number is used as is."""
    if isinstance(noise, bool):
        raise TypeError(f"noise must be 's<factor>' (e.g. 's3') or a float, got {noise!r}")
    if isinstance(noise, (int, float)):
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise level must be a finite number >= 0, got {noise!r}")
        return float(noise)
    match = re.fullmatch(r"s(\d+(?:\.\d*)?)", str(noise))
    if not match:
        raise ValueError(f"noise must be 's<factor>' (e.g. 's3': 3 × the std of subject "
                         f"embeddings) or a float, got {noise!r}")
    if subjects is None:
        subjects = [f["subject"] for f in load_facts()]
    return noise_level(lm, subjects, factor=float(match.group(1)))


