"""Contrast pairs as reporters take them: checked float32 tensors, 0/1 labels, and the per-class
mean normalisation (Burns §2.2) fitted on training pairs."""

from __future__ import annotations

import math

import numpy as np
import torch


def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise TypeError(f"{name} must hold floats, got dtype {x.dtype}")
    return x.detach().to("cpu", torch.float32)


def check_pairs(x_pos, x_neg, y=None, *, need_y: bool = False, batched: bool = False):
    """Validate a set of contrast pairs; returns float32 tensors and ``y`` as an int64 array (or None).

    ``x_pos``, ``x_neg``: ``[n, d]``, or ``[n, v, d]`` for ``v`` prompt templates of the same ``n``
    examples (``[B, n, d]`` / ``[B, n, v, d]`` when ``batched``); same shape, finite.
    ``y``: ``[n]`` of 0/1 (one label per example, whatever the template). The tensors come back
    with a template axis always: ``[n, v, d]`` (``[B, n, v, d]``), ``v = 1`` for ``[n, d]`` input.
    """
    xp, xn = _tensor(x_pos, "x_pos"), _tensor(x_neg, "x_neg")
    dims = (3, 4) if batched else (2, 3)
    shape = "[B, n, d] or [B, n, v, d]" if batched else "[n, d] or [n, v, d]"
    for x, name in ((xp, "x_pos"), (xn, "x_neg")):
        if x.dim() not in dims:
            raise ValueError(f"{name} must be {shape}, got shape {tuple(x.shape)}")
    if xp.shape != xn.shape:
        raise ValueError(f"the two halves of the contrast pairs differ in shape: x_pos "
                         f"{tuple(xp.shape)} vs x_neg {tuple(xn.shape)}; each example needs "
                         f"one x_pos and one x_neg")
    if xp.dim() == dims[0]:
        xp, xn = xp.unsqueeze(-2), xn.unsqueeze(-2)
    if xp.shape[-3] < 2:
        raise ValueError(f"need at least 2 contrast pairs, got {xp.shape[-3]}")
    for x, name in ((xp, "x_pos"), (xn, "x_neg")):
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).any(-1).sum())
            raise ValueError(f"{name} holds NaN or infinite values ({bad} rows); check the extraction "
                             f"(fp16 overflow?) before fitting")
    if y is None:
        if need_y:
            raise ValueError("labels y are required")
        return xp, xn, None
    y = check_labels(y, xp.shape[-3])
    return xp, xn, y


def check_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y.cpu() if torch.is_tensor(y) else y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be [n] = [{n}] labels, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold 0/1 labels, got values {sorted(set(np.unique(y).tolist()))[:5]}")
    return y.astype(np.int64)


class PairNormalizer:
    """Per-class mean normalisation (Burns §2.2): x⁺ − μ⁺ and x⁻ − μ⁻, with μ fitted once, per
    prompt template (Burns: "per prompt template when pooling prompts").

    ``scale``: ``None`` (mean only, Burns code and elk/ccs), ``"norm"`` (also divide by the mean
    norm of the centred states / √d, one scalar per template, the paper's App. G; a scalar rescale
    changes no decision, only the optimiser's conditioning) or ``"std"`` (per-dimension std, Burns'
    ``var_normalize``). Works on ``[n, v, d]`` or ``[B, n, v, d]`` (statistics per leading index
    and per template ``v``, over the ``n`` examples); ``[n, d]`` is one template.
    """

    def __init__(self, scale: str | None = "norm"):
        if scale not in (None, "norm", "std"):
            raise ValueError(f"scale must be None, 'norm' or 'std', got {scale!r}")
        self.scale = scale

    def fit(self, x_pos: torch.Tensor, x_neg: torch.Tensor) -> "PairNormalizer":
        if x_pos.dim() == 2:
            x_pos, x_neg = x_pos[:, None], x_neg[:, None]
        self.mean_pos_ = x_pos.mean(-3, keepdim=True)
        self.mean_neg_ = x_neg.mean(-3, keepdim=True)
        centred = torch.cat([x_pos - self.mean_pos_, x_neg - self.mean_neg_], -3)
        if self.scale == "norm":
            d = x_pos.shape[-1]
            s = centred.norm(dim=-1, keepdim=True).mean(-3, keepdim=True) / math.sqrt(d)
        elif self.scale == "std":
            s = centred.std(-3, keepdim=True)
        else:
            s = torch.ones_like(self.mean_pos_[..., :1])
        self.scale_ = s.clamp_min(1e-8)
        return self

    def transform(self, x_pos: torch.Tensor, x_neg: torch.Tensor):
        """``(x̃⁺, x̃⁻)`` with the training statistics, whatever set is passed (``[.., n, v, d]``)."""
        if not hasattr(self, "mean_pos_"):
            raise RuntimeError("PairNormalizer is not fitted; call fit() on the training pairs")
        if x_pos.dim() == 2:
            return tuple(t[:, 0] for t in self.transform(x_pos[:, None], x_neg[:, None]))
        if x_pos.shape[-2:] != self.mean_pos_.shape[-2:]:
            raise ValueError(f"states have (templates, d) = {tuple(x_pos.shape[-2:])}, the "
                             f"normaliser was fitted on {tuple(self.mean_pos_.shape[-2:])}")
        return (x_pos - self.mean_pos_) / self.scale_, (x_neg - self.mean_neg_) / self.scale_

    def select(self, i: int) -> "PairNormalizer":
        """The normaliser of problem ``i`` of a batched fit."""
        out = PairNormalizer(self.scale)
        out.mean_pos_, out.mean_neg_, out.scale_ = (self.mean_pos_[i], self.mean_neg_[i], self.scale_[i])
        return out

    def state(self, prefix: str = "norm.") -> dict[str, torch.Tensor]:
        return {prefix + "mean_pos": self.mean_pos_, prefix + "mean_neg": self.mean_neg_,
                prefix + "scale": self.scale_}

    @classmethod
    def from_state(cls, scale, tensors, prefix: str = "norm.") -> "PairNormalizer":
        out = cls(scale)
        # files written before templates had an axis hold [1, d]: one template
        fix = lambda t: t.unsqueeze(-2) if t.dim() == 2 else t
        out.mean_pos_ = fix(tensors[prefix + "mean_pos"])
        out.mean_neg_ = fix(tensors[prefix + "mean_neg"])
        out.scale_ = fix(tensors[prefix + "scale"])
        return out
