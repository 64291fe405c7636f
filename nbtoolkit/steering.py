"""Intervened generation: steer a model with a direction added to its residual stream.

    v = direction(lm, positive_texts, negative_texts, "layer.15")      # [d_model]
    steer(lm, ["I watched the film and"], v, "layer.15", scale=4.0)     # every step
    steer(lm, ["I watched the film and"], v, "layer.15", scale=4.0, prompt_only=True)

Schedules (the patching core's ``prompt_only``): by default ``Add`` changes every forward of
``generate`` — all prompt positions on the prompt pass and the newest token on each decoding
step; ``prompt_only=True`` changes the prompt pass only, so generated tokens are steered only
through what they read from the prompt's (steered) keys and values. ``at`` restricts the
positions (absolute; negative from the end of each forward, so ``at=-1`` is the newest token).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from .core.anatomy import require
from .core.hooks import capture, patch
from .core.interventions import Add
from .core.lm import masked_mean

SUPPORTED_KINDS = ("decoder",)  # steered generation; directions are read from encoders too


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
                scales: Sequence[float], *, max_new_tokens: int = 20) -> pd.DataFrame:
    """Generations for every scale under both schedules (scale 0 once, as the unsteered one).

    Columns ``prompt, scale, schedule ("none", "every step", "prompt only"), text``.
    """
    prompts = _prompts(prompts)
    rows = []
    for scale in scales:
        schedules = [("none", False)] if scale == 0 else [("every step", False),
                                                          ("prompt only", True)]
        for name, prompt_only in schedules:
            texts = steer(lm, prompts, vector, site, scale=scale, prompt_only=prompt_only,
                          max_new_tokens=max_new_tokens)
            rows += [dict(prompt=p, scale=scale, schedule=name, text=t)
                     for p, t in zip(prompts, texts)]
    return pd.DataFrame(rows, columns=["prompt", "scale", "schedule", "text"])


def word_probs(lm, prompts: Sequence[str], words: Mapping[str, Sequence[str]],
               vector: torch.Tensor, site: str, scales: Sequence[float]) -> pd.DataFrame:
    """Next-token probability of each word group after each prompt, per steering scale.

    ``words`` maps a group name to words (each word's first token counts, e.g. ``" great"``).
    Columns ``prompt, scale, group, prob`` (the summed probability of the group's tokens).
    """
    require(lm.model, "steering", SUPPORTED_KINDS, raw_paths=True)
    prompts = _prompts(prompts)
    _check_vector(lm, vector)
    if not words:
        raise ValueError("words must name at least one group of words")
    ids = {group: sorted({lm.token_id(w) for w in ws}) for group, ws in words.items()}
    rows = []
    for scale in scales:
        with patch(lm, {site: Add(vector, scale=scale)}):
            probs = lm.next_token_probs(prompts)
        for group, group_ids in ids.items():
            total = probs[:, group_ids].sum(-1).cpu()
            rows += [dict(prompt=p, scale=scale, group=group, prob=float(x))
                     for p, x in zip(prompts, total)]
    return pd.DataFrame(rows, columns=["prompt", "scale", "group", "prob"])


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
