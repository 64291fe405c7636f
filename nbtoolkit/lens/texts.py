"""Text for the lenses to train and be measured on, and its residual streams.

    lens_texts("train")      # the package's own text: its instruction prompts and its known facts
    residual_rows(lm, texts, layers)    # [len(layers), tokens, d_model]: every token of every text

The bundled text is ``data/instructions`` (218 instruction prompts) and ``data/facts`` (589 facts
written out as sentences, "The capital of France is Paris."), shuffled with a fixed seed and
split 80 / 20 into ``"train"`` and ``"test"``; any list of strings can replace it.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

import torch

from ..core.anatomy import check_layers, hf_model
from ..core.hooks import capture
from ..core.lm import LAST_POSITION
from ..data.facts import load_facts
from ..data.instructions import load_instruction_prompts
from .logit_lens import layer_site

SPLITS = ("train", "test")


def lens_texts(split: str = "train") -> list[str]:
    """The bundled instruction prompts and fact sentences, one 80 / 20 split of them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    texts = [r["prompt"] for r in load_instruction_prompts()]
    texts += [f"{f['prompt']} {f['attribute']}." for f in load_facts()]
    random.Random(0).shuffle(texts)
    cut = int(0.8 * len(texts))
    return texts[:cut] if split == "train" else texts[cut:]


def check_texts(texts) -> list[str]:
    """``texts`` as a list of non-empty strings; ``ValueError``/``TypeError`` otherwise."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is an empty list; give at least one text")
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"texts must be non-empty strings, got {bad[:3]!r}")
    return texts


@torch.no_grad()
def residual_rows(lm, texts: Sequence[str], layers: Sequence[int], batch_size: int = 16
                  ) -> torch.Tensor:
    """The residual stream of every token of ``texts`` at ``layers`` (−1: entering block 0),
    ``[len(layers), tokens, d_model]`` in the model's dtype (padding dropped)."""
    return torch.cat(list(residual_batches(lm, texts, layers, batch_size)), dim=1)


def residual_batches(lm, texts: Sequence[str], layers: Sequence[int], batch_size: int
                     ) -> Iterator[torch.Tensor]:
    """:func:`residual_rows` of ``batch_size`` texts at a time, ``[len(layers), tokens, d_model]``."""
    layers = check_layers(hf_model(lm), list(layers))
    sites = [layer_site(layer) for layer in layers]
    for start in range(0, len(texts), batch_size):
        batch = lm.encode(list(texts[start:start + batch_size]))
        with torch.no_grad(), capture(lm, sites) as acts:
            hf_model(lm)(**batch, logits_to_keep=LAST_POSITION)
        keep = batch["attention_mask"].bool()
        yield torch.stack([acts[site][keep] for site in sites])
