"""The forwards DAS needs: a model's class or next-token logits, source activations, and the
intervened forward. ``model`` is an :class:`~nbtoolkit.core.lm.LM`, a Hugging Face model (the
prediction is the last position's logits) or any ``torch.nn.Module`` mapping inputs to class
logits ``[N, classes]``. Text models: decoders (a causal LM's next token) and encoders with a
sequence-classification head (BERT on MoNLI, as the DAS paper)."""

from __future__ import annotations

import torch

from ..core.anatomy import hf_model, require
from ..core.hooks import capture, patch
from ..core.lm import forward_inputs, prediction_logits
from .rotations import Interchange, Subspace


SUPPORTED_KINDS = ("decoder", "encoder")


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters live (CPU for a module without parameters)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def predict_logits(model, inputs: torch.Tensor, mask: torch.Tensor | None = None,
                   every_position: bool = False) -> torch.Tensor:
    """Class / next-token logits ``[N, classes]``: an LM's last position, or a module's output;
    ``[N, seq, classes]`` at every position with ``every_position``."""
    module = hf_model(model)
    inputs = inputs.to(device_of(module))
    if hasattr(module, "config") and hasattr(module, "get_input_embeddings"):  # a text model
        require(module, "DAS", SUPPORTED_KINDS, raw_paths=True)
        batch = forward_inputs(module, inputs, None if mask is None else mask.to(inputs.device))
        return prediction_logits(module, batch, every_position=every_position, purpose="DAS")
    out = module(inputs)
    return out[:, -1] if out.dim() == 3 and not every_position else out


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


def interchange_for(intervention: Subspace, batch: dict, source_acts: torch.Tensor, at,
                    device) -> Interchange:
    """The :class:`Interchange` of one batch: its source activations and block ids, on ``device``."""
    block = batch["block"].to(device) if "block" in batch else None
    return Interchange(intervention, source_acts.to(device), at=at, block=block)


def intervened_logits(model, intervention: Subspace, site: str, batch: dict,
                      source_acts: torch.Tensor, at=None) -> torch.Tensor:
    """Logits ``[n, classes]`` of the base inputs with ``intervention`` fed ``source_acts``."""
    device = device_of(hf_model(model))
    with patch(model, {site: interchange_for(intervention, batch, source_acts, at, device)}):
        return predict_logits(model, batch["base"], batch.get("mask"))
