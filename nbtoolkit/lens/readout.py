"""Reading the residual stream as logits: the model's own read-out, and its linearisation.

    unembed(lm, h)                      # [..., d_model] -> [..., vocab], as the model reads its last layer
    frozen = frozen_norm(norm, x, centred)   # norm(x) == frozen(x) + frozen.bias, linear in its input

The read-out is the family's (:func:`nbtoolkit.core.anatomy.readout`): final norm, OPT-350m's
projection out of the stream, the LM head (tied or not, with its bias where it has one) and
Gemma-2's final soft-cap, in the model's order, so ``unembed`` of the last layer is the model's
logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.anatomy import hf_model, readout


def unembed(lm, hidden: torch.Tensor) -> torch.Tensor:
    """Logits ``[..., vocab]`` that the model's read-out gives a residual stream ``[..., d_model]``
    (in the model's dtype)."""
    parts = readout(hf_model(lm))
    x = hidden
    if parts.final_norm is not None:
        x = parts.final_norm(x)
    if parts.project_out is not None:
        x = parts.project_out(x)
    logits = parts.unembed(x)
    if parts.softcap is not None:  # the model's own order of operations, for equal rounding
        logits = logits / parts.softcap
        logits = torch.tanh(logits)
        logits = logits * parts.softcap
    return logits


@dataclass
class FrozenNorm:
    """A norm frozen at the scale it had on one run: ``y ↦ centre(y) · gain`` is linear, and the
    norm's output on that run is ``self(x) + bias``. ``gain`` ``[..., d]`` (one row per row of
    ``x``), ``bias`` ``[d]``; float32."""

    gain: torch.Tensor
    bias: torch.Tensor
    centred: bool

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        if self.centred:
            y = y - y.mean(-1, keepdim=True)
        return y * self.gain


@torch.no_grad()
def frozen_norm(norm: torch.nn.Module, x: torch.Tensor, centred: bool) -> FrozenNorm:
    """``norm``'s linear map at the scale of ``x`` ``[..., d]`` (the standard frozen-scale
    approximation of direct logit attribution: each term is divided by the scale of the whole).

    Read from the module's outputs, so it holds for every norm of the form
    ``centre(x) · s(x) · w + b`` with one scalar ``s(x)`` per row (LayerNorm, RMSNorm, Gemma's
    ``1 + w`` RMSNorm) without naming their weights or epsilons: ``b = norm(0)``, ``w`` up to a
    constant from a ±1 probe, ``s(x)`` fitted per row by least squares (exact for these forms, up
    to rounding)."""
    d = x.shape[-1]
    like = dict(dtype=x.dtype, device=x.device)
    bias = norm(torch.zeros(1, d, **like))[0].float()
    probe = (torch.arange(d, device=x.device) % 2 * 2 - 1).to(x.dtype)[None]  # ±1, rms 1
    centre = (lambda v: v - v.mean(-1, keepdim=True)) if centred else (lambda v: v)
    weight = (norm(probe)[0].float() - bias) / centre(probe.float())[0]
    direction = centre(x.float()) * weight
    energy = (direction * direction).sum(-1, keepdim=True)
    scale = ((norm(x).float() - bias) * direction).sum(-1, keepdim=True) / energy.clamp_min(1e-30)
    return FrozenNorm(scale * weight, bias, centred)
