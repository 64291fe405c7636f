"""Intervened generation: steer a model with a direction added to its residual stream.

    v = direction(lm, positive_texts, negative_texts, "layer.15")      # [d_model]
    steer(lm, ["I watched the film and"], v, "layer.15", scale=4.0)     # every step
    steer(lm, ["I watched the film and"], v, "layer.15", scale=4.0, prompt_only=True)
    generations(lm, prompts, v, "layer.15", scales=[0, 4]).to_frame()    # both schedules per scale
    word_probs(lm, prompts, {"good": [" great"]}, v, "layer.15", [-2, 0, 2]).to_frame()

Schedules (the patching core's ``prompt_only``): by default ``Add`` changes every forward of
``generate`` — all prompt positions on the prompt pass and the newest token on each decoding
step; ``prompt_only=True`` changes the prompt pass only, so generated tokens are steered only
through what they read from the prompt's (steered) keys and values. ``at`` restricts the
positions (absolute; negative from the end of each forward, so ``at=-1`` is the newest token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import require
from ..core.hooks import capture, patch
from ..core.interventions import Add
from ..core.lm import masked_mean

SUPPORTED_KINDS = ("decoder",)  # steered generation; directions are read from encoders too
SCHEDULES = {"none": False, "every step": False, "prompt only": True}  # name -> prompt_only


@dataclass
class Generations:
    """Steered generations at ``site``: ``texts[(scale, schedule)]`` holds one text per prompt
    (schedule ``"none"`` at scale 0, else ``"every step"`` and ``"prompt only"``)."""

    prompts: list[str]
    site: str
    texts: dict[tuple[float, str], list[str]]

    def to_frame(self) -> pd.DataFrame:
        """One row per (scale, schedule, prompt): ``prompt, scale, schedule, text``."""
        rows = [dict(prompt=p, scale=scale, schedule=schedule, text=t)
                for (scale, schedule), texts in self.texts.items()
                for p, t in zip(self.prompts, texts)]
        return pd.DataFrame(rows, columns=["prompt", "scale", "schedule", "text"])


@dataclass
class WordProbs:
    """Next-token probability of each word group after each prompt, steered at ``site`` with
    each scale: ``probs[scale, group, prompt]`` (``[n_scales, n_groups, n_prompts]``)."""

    prompts: list[str]
    site: str
    scales: list[float]
    groups: list[str]
    probs: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per (scale, group, prompt): ``prompt, scale, group, prob``."""
        rows = [dict(prompt=p, scale=scale, group=group, prob=float(x))
                for scale, by_group in zip(self.scales, self.probs)
                for group, by_prompt in zip(self.groups, by_group)
                for p, x in zip(self.prompts, by_prompt)]
        return pd.DataFrame(rows, columns=["prompt", "scale", "group", "prob"])


def mean_activation(lm, prompts: Sequence[str], site: str, *, reduce: str = "mean",
                    batch_size: int = 16) -> torch.Tensor:
    """Mean activation at ``site`` over ``prompts``: ``[d_model]`` (float32).

    ``reduce="mean"`` averages each prompt over its tokens (padding excluded) first;
    ``reduce="last"`` takes each prompt's last token.
    """
    require(lm.model, "steering directions", ("decoder", "encoder"), raw_paths=True)
    prompts = _prompts(prompts)
    if reduce not in ("mean", "last"):
        raise ValueError(f"reduce must be 'mean' or 'last', got {reduce!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = None
    for start in range(0, len(prompts), batch_size):
        batch = lm.encode(prompts[start:start + batch_size])
        with torch.no_grad(), capture(lm, site) as acts:
            lm.model(**batch)
        act = acts[site].float()
        if act.dim() != 3:
            raise ValueError(f"site {site!r} gives activations of shape {tuple(act.shape)}; "
                             f"steering needs a [batch, seq, d] site such as 'layer.5'")
        # left padding: the last position is every prompt's last token
        per_prompt = act[:, -1] if reduce == "last" else masked_mean(act, batch["attention_mask"])
        part = per_prompt.sum(0)
        total = part if total is None else total + part
    return total / len(prompts)


def direction(lm, positive: Sequence[str], negative: Sequence[str], site: str, *,
              reduce: str = "mean", batch_size: int = 16) -> torch.Tensor:
    """Steering direction ``mean(positive) − mean(negative)`` at ``site``: ``[d_model]``,
    in the model's dtype (ready for ``Add``)."""
    diff = (mean_activation(lm, positive, site, reduce=reduce, batch_size=batch_size)
            - mean_activation(lm, negative, site, reduce=reduce, batch_size=batch_size))
    return diff.to(lm.model.dtype)


def steer(lm, prompts: str | Sequence[str], vector: torch.Tensor, site: str, *,
          scale: float = 1.0, prompt_only: bool = False, at=None,
          max_new_tokens: int = 20) -> list[str]:
    """Greedy generations with ``scale * vector`` added at ``site`` (see the module docstring
    for ``prompt_only`` and ``at``)."""
    require(lm.model, "steering", SUPPORTED_KINDS, raw_paths=True)
    _check_vector(lm, vector)
    with patch(lm, {site: Add(vector, at=at, scale=scale)}, prompt_only=prompt_only):
        return lm.generate(_prompts(prompts), max_new_tokens=max_new_tokens)


def generations(lm, prompts: Sequence[str], vector: torch.Tensor, site: str,
                scales: Sequence[float], *, max_new_tokens: int = 20) -> Generations:
    """Generations for every scale under both schedules (scale 0 once, as the unsteered one)."""
    prompts = _prompts(prompts)
    texts = {}
    for scale in scales:
        for name in ["none"] if scale == 0 else ["every step", "prompt only"]:
            texts[scale, name] = steer(lm, prompts, vector, site, scale=scale,
                                       prompt_only=SCHEDULES[name], max_new_tokens=max_new_tokens)
    return Generations(prompts, site, texts)


def word_probs(lm, prompts: Sequence[str], words: Mapping[str, Sequence[str]],
               vector: torch.Tensor, site: str, scales: Sequence[float]) -> WordProbs:
    """Next-token probability of each word group after each prompt, per steering scale.

    ``words`` maps a group name to words (each word's first token counts, e.g. ``" great"``);
    a group's probability is the summed probability of its tokens.
    """
    require(lm.model, "steering", SUPPORTED_KINDS, raw_paths=True)
    prompts = _prompts(prompts)
    _check_vector(lm, vector)
    if not words:
        raise ValueError("words must name at least one group of words")
    ids = {group: sorted({lm.token_id(w) for w in ws}) for group, ws in words.items()}
    probs = np.zeros((len(scales), len(ids), len(prompts)))
    for i, scale in enumerate(scales):
        with patch(lm, {site: Add(vector, scale=scale)}):
            next_token = lm.next_token_probs(prompts)
        for j, group_ids in enumerate(ids.values()):
            probs[i, j] = next_token[:, group_ids].sum(-1).cpu().double().numpy()
    return WordProbs(prompts, site, list(scales), list(ids), probs)


def _prompts(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or any(not isinstance(p, str) or not p for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of non-empty strings, got {prompts!r}")
    return prompts


def _check_vector(lm, vector) -> None:
    if not torch.is_tensor(vector):
        raise TypeError(f"vector must be a torch.Tensor of shape [{lm.d_model}], got "
                        f"{type(vector).__name__}")
    if vector.shape != (lm.d_model,):
        raise ValueError(f"vector has shape {tuple(vector.shape)}; steering adds one direction "
                         f"of shape [{lm.d_model}] (d_model)")
