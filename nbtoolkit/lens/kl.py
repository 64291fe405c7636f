"""How far each layer's lens is from the model's final distribution: KL(final ‖ lens), per layer.

    lens_kl(lm)                    # the logit lens on the bundled test text
    lens_kl(lm, tuned=tuned)       # and a tuned lens beside it (the tuned-lens paper's Fig. 3)

Belrose et al. (2023) measure a lens by this KL divergence, in nats per token, averaged over every
token of the text; the last layer's is 0 by construction (it is the model's own read-out).
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch

from ..core.anatomy import check_layers, hf_model, n_layers_of, require
from .logit_lens import SUPPORTED_KINDS
from .readout import unembed
from .texts import check_texts, lens_texts, residual_batches

CHUNK = 1 << 24  # logits per piece of the KL computation (64 MB in float32)


def kl_to_final(lm, hidden: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """KL(final ‖ lens) per token: ``hidden`` ``[..., tokens, d_model]`` read through the model's
    read-out against ``final`` log-probs ``[tokens, vocab]``; ``[..., tokens]`` float32 (keeps
    the graph: the tuned lens trains through it)."""
    logq = unembed(lm, hidden).float().log_softmax(-1)
    return (final.exp() * (final - logq)).sum(-1)


@torch.no_grad()
def lens_kl(lm, texts: Sequence[str] | None = None, *, tuned=None,
            layers: Sequence[int] | None = None, batch_size: int = 16) -> pd.DataFrame:
    """Mean KL(final ‖ lens) per layer over every token of ``texts`` (default the bundled test
    split): a row per layer (default −1 … n − 1; with a tuned lens, its layers and the last)
    with ``logit_lens`` and, given a fitted :class:`~nbtoolkit.lens.TunedLens`, ``tuned_lens``
    (NaN at a layer it has no translator for); ``tokens``, how many were averaged."""
    model = hf_model(lm)
    require(model, "lens_kl", SUPPORTED_KINDS)
    texts = lens_texts("test") if texts is None else check_texts(texts)
    n = n_layers_of(model)
    lenses: dict[str, Callable | None] = {"logit_lens": None}
    if tuned is not None:
        tuned.check_model(lm)
        lenses["tuned_lens"] = tuned.translate
        if layers is None:
            layers = [*tuned.layers_, n - 1]
    layers = sorted(set(check_layers(model, layers)) | {n - 1})  # the last: the target
    readable = {"logit_lens": set(layers),
                "tuned_lens": set(getattr(tuned, "layers_", [])) | {n - 1}}
    sums = {name: torch.zeros(len(layers), dtype=torch.float64) for name in lenses}
    tokens = 0
    for rows in residual_batches(lm, texts, layers, batch_size):  # [layers, tokens, d]
        step = max(1, CHUNK // unembed(lm, rows[-1, :1]).shape[-1])
        for start in range(0, rows.shape[1], step):
            piece = rows[:, start:start + step]
            final = unembed(lm, piece[-1]).float().log_softmax(-1)
            for name, translate in lenses.items():
                for i, layer in enumerate(layers):
                    if layer not in readable[name]:
                        sums[name][i] = float("nan")
                        continue
                    h = piece[i] if translate is None else translate(layer, piece[i])
                    sums[name][i] += kl_to_final(lm, h, final).double().sum().cpu()
        tokens += rows.shape[1]
    frame = pd.DataFrame({"layer": layers, **{k: (v / tokens).numpy() for k, v in sums.items()}})
    return frame.assign(tokens=tokens)
