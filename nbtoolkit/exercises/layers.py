"""The layer-numbering mistakes the checks anticipate, in one catalogue: exercises 00.1 (the
residual stream at a layer) and 07.1 (SelfIE's hidden state by layer number) say the same thing
about nbtoolkit's one numbering (layer ℓ leaves block ℓ, layer −1 is the embeddings)."""

from __future__ import annotations

from typing import Callable

import torch

from ..core.anatomy import site_name
from .feedback import captured


def layer_mistakes(lm, prompt: str, layer: int,
                   token: int | None = None) -> list[tuple[Callable[[], torch.Tensor], str]]:
    """Wrong answers for "the hidden state at ``layer``" of ``prompt`` (``[seq, d_model]``, or
    ``[d_model]`` at one ``token``), as ``(make_value, message)`` pairs for
    :func:`~nbtoolkit.exercises.feedback.expect`."""
    def at(site: str) -> torch.Tensor:
        value = captured(lm, prompt, site)
        return value if token is None else value[token]

    last = lm.n_layers - 1
    final_norm = (lambda: at("final_norm"),
                  "this is after the final norm (Hugging Face's hidden_states[-1]); layer "
                  f"{last} is the last block's output before it, site {site_name(last)}")
    if layer == -1:
        return [(lambda: at(site_name(last)),
                 f"layer −1 is the token embeddings (site embed) in nbtoolkit's numbering, not the "
                 f"last layer (that is layer {last})"),
                (final_norm[0], "this is Hugging Face's hidden_states[-1], the last layer after the "
                                "final norm; nbtoolkit's layer −1 is the token embeddings "
                                "(hidden_states[0], site embed)")]
    site = site_name(layer)
    mistakes = [(lambda: at(site_name(layer, "in")),
                 f"this is the residual stream entering block {layer} (site "
                 f"{site_name(layer, 'in')}, the output of block {layer - 1}: Hugging Face's "
                 f"hidden_states[{layer}]); nbtoolkit's layer {layer} is hidden_states[{layer + 1}], "
                 f"the stream leaving block {layer}: site {site}"),
                (lambda: at(site_name(layer, "mlp")),
                 f"this is what the MLP of block {layer} wrote (site {site_name(layer, 'mlp')}); "
                 f"the residual stream leaving the block also holds its input and the attention "
                 f"output: site {site}"),
                (lambda: at(site_name(layer, "attn")),
                 f"this is what the attention of block {layer} wrote (site "
                 f"{site_name(layer, 'attn')}); the residual stream is site {site}")]
    return mistakes + [final_norm] * (layer == last)
