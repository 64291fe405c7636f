"""Induction heads (Olsson et al. 2022) on repeated random tokens, found by their attention and
confirmed by ablation.

    scores = induction_scores(lm, seq_len=50, batch=4)     # [layers, heads] each
    scores.top(5)                                           # [(layer, head), ...]
    check = induction_ablation(lm, scores.top(5))           # the top heads vs as many random ones
    check.increase, check.control_increases                 # loss increase on the repeated half

The sequences are ``seq_len`` random ordinary tokens repeated twice, after the tokenizer's BOS
token where it has one. In the second repeat every token has occurred once before; an induction
head attends from it to the token that followed that occurrence (ARENA's induction score: the mean
attention from each token of the second repeat to the token after its previous occurrence, over
the batch). The previous-token score is the mean attention from each token to the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.anatomy import check_layers, config_value, hf_model, n_layers_of, require, site_name
from ..core.hooks import capture, patch
from ..core.interventions import Set, Zero
from .attention import SUPPORTED_KINDS, attention_weights

ABLATIONS = ("mean", "zero")


def repeated_tokens(lm, seq_len: int = 50, batch: int = 4, seed: int = 0) -> torch.Tensor:
    """``[batch, prefix + 2 · seq_len]`` token ids: ``seq_len`` ordinary tokens (no special or
    added tokens) drawn uniformly with ``seed``, repeated once, after the BOS token if the
    tokenizer has one (``prefix`` = 1, else 0)."""
    for name, value in (("seq_len", seq_len), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "seq_len" else 1):
            raise ValueError(f"{name} must be an int >= {2 if name == 'seq_len' else 1}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    tokenizer = lm.tokenizer
    vocab = min(len(tokenizer), hf_model(lm).get_output_embeddings().weight.shape[0])
    excluded = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    ordinary = torch.tensor([i for i in range(vocab) if i not in excluded])
    generator = torch.Generator().manual_seed(seed)
    half = ordinary[torch.randint(len(ordinary), (batch, seq_len), generator=generator)]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prefix = torch.tensor(bos, dtype=torch.long).expand(batch, len(bos))
    context = lm.context_length
    if context is not None and len(bos) + 2 * seq_len > context:
        raise ValueError(f"seq_len {seq_len} repeated twice ({len(bos) + 2 * seq_len} tokens) "
                         f"exceeds the model's context of {context} tokens")
    return torch.cat([prefix, half, half], dim=1).to(lm.device)


def induction_score(weights: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Mean attention from each token of the second repeat to the token after its previous
    occurrence: ``weights`` ``[..., batch, heads, query, key]`` of sequences ending in two repeats
    of ``seq_len`` tokens -> ``[..., heads]``."""
    length = weights.shape[-1]
    queries = torch.arange(length - seq_len, length)
    return weights[..., queries, queries - seq_len + 1].mean(-1).mean(-2)


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Mean attention from each token to the one before it: ``[..., batch, heads, query, key]``
    -> ``[..., heads]``."""
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1).mean(-2)


@dataclass
class InductionScores:
    """``induction`` and ``previous`` ``[n_layers, n_heads]`` (rows for ``layers``) on
    ``batch`` sequences of ``seq_len`` random tokens repeated twice (``seed``)."""

    layers: list[int]
    induction: np.ndarray
    previous: np.ndarray
    seq_len: int
    batch: int
    seed: int

    def top(self, n: int = 5, score: str = "induction") -> list[tuple[int, int]]:
        """The ``n`` heads ``(layer, head)`` with the highest ``score`` (``"induction"`` or
        ``"previous"``)."""
        if score not in ("induction", "previous"):
            raise ValueError(f"score must be 'induction' or 'previous', got {score!r}")
        values = getattr(self, score)
        order = np.argsort(-values, axis=None, kind="stable")[:n]
        return [(self.layers[i // values.shape[1]], int(i % values.shape[1])) for i in order]

    def to_frame(self) -> pd.DataFrame:
        heads = self.induction.shape[1]
        return pd.DataFrame({"layer": np.repeat(self.layers, heads),
                             "head": np.tile(np.arange(heads), len(self.layers)),
                             "induction": self.induction.reshape(-1),
                             "previous": self.previous.reshape(-1)})


def induction_scores(lm, *, seq_len: int = 50, batch: int = 4, seed: int = 0,
                     layers: Sequence[int] | int | None = None) -> InductionScores:
    """Induction and previous-token scores of every head at ``layers`` (default all) on
    :func:`repeated_tokens`."""
    model = hf_model(lm)
    require(model, "induction scores", SUPPORTED_KINDS)
    layers = check_layers(model, layers, embed=False)
    ids = repeated_tokens(lm, seq_len, batch, seed)
    weights = attention_weights(model, {"input_ids": ids}, layers)  # [layers, batch, heads, q, k]
    return InductionScores(layers, induction_score(weights, seq_len).numpy(),
                           previous_token_score(weights).numpy(), seq_len, batch, seed)


@dataclass
class InductionAblation:
    """Loss (nats per token) on the repeated half — the second repeat's tokens after its first,
    which only in-context copying can predict — with nothing ablated (``clean_loss``), with
    ``heads`` ablated (``loss``) and with each of ``controls`` draws of as many random other
    heads ablated (``control_losses``, the heads in ``control_heads``). ``first_half_losses``:
    the same conditions' loss on the first repeat (random tokens: no copying possible), which
    tells damage to copying from damage to everything."""

    heads: list[tuple[int, int]]
    how: str
    clean_loss: float
    loss: float
    control_heads: list[list[tuple[int, int]]]
    control_losses: list[float]
    first_half_losses: list[float]  # none, heads, then each control
    seq_len: int
    batch: int

    @property
    def increase(self) -> float:
        return self.loss - self.clean_loss

    @property
    def control_increases(self) -> list[float]:
        return [c - self.clean_loss for c in self.control_losses]

    def to_frame(self) -> pd.DataFrame:
        names = ["none", "top heads", *(f"random {i}" for i in range(len(self.control_heads)))]
        heads = [[], self.heads, *self.control_heads]
        losses = [self.clean_loss, self.loss, *self.control_losses]
        return pd.DataFrame({"ablated": names, "heads": [_names(h) for h in heads],
                             "loss": losses, "increase": [x - self.clean_loss for x in losses],
                             "first_half_loss": self.first_half_losses})


def _names(heads) -> str:
    return ", ".join(f"{layer}.{head}" for layer, head in heads)


def induction_ablation(lm, heads: Sequence[tuple[int, int]], *, how: str = "mean",
                       controls: int = 5, seq_len: int = 50, batch: int = 4, seed: int = 0
                       ) -> InductionAblation:
    """Ablate ``heads`` (``(layer, head)`` pairs) and, as controls, ``controls`` seeded draws of
    as many random other heads, on :func:`repeated_tokens`; the loss on the repeated half of each.
    ``how``: ``"mean"`` (a head's output, the input of the output projection, replaced by its
    mean over every position and sequence) or ``"zero"``."""
    model = hf_model(lm)
    require(model, "induction ablation", SUPPORTED_KINDS)
    heads = _check_heads(model, heads)
    if how not in ABLATIONS:
        raise ValueError(f"how must be one of {ABLATIONS}, got {how!r}")
    if isinstance(controls, bool) or not isinstance(controls, int) or controls < 0:
        raise ValueError(f"controls must be an int >= 0, got {controls!r}")
    ids = repeated_tokens(lm, seq_len, batch, seed)
    n_layers, n_heads = n_layers_of(model), config_value(model, "n_heads")
    others = [(l, h) for l in range(n_layers) for h in range(n_heads) if (l, h) not in heads]
    if controls and len(others) < len(heads):
        raise ValueError(f"{len(heads)} heads leave only {len(others)} others to draw controls from")
    generator = torch.Generator().manual_seed(seed)
    drawn = [sorted(others[i] for i in torch.randperm(len(others), generator=generator)[:len(heads)].tolist())
             for _ in range(controls)]
    means = _mean_outputs(lm, ids) if how == "mean" else None
    second, first = zip(*(_half_losses(lm, ids, seq_len, chosen, means)
                          for chosen in [[], heads, *drawn]))
    return InductionAblation(heads, how, second[0], second[1], drawn, list(second[2:]),
                             list(first), seq_len, batch)


def _check_heads(model, heads) -> list[tuple[int, int]]:
    n_layers, n_heads = n_layers_of(model), config_value(model, "n_heads")
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Sequence) or not heads:
        raise ValueError(f"heads must be a non-empty list of (layer, head) pairs, got {heads!r}")
    pairs = [tuple(h) if isinstance(h, (list, tuple)) else h for h in heads]
    bad = [h for h in pairs if not (isinstance(h, tuple) and len(h) == 2 and
                                   all(isinstance(x, int) and not isinstance(x, bool) for x in h)
                                   and 0 <= h[0] < n_layers and 0 <= h[1] < n_heads)]
    if bad:
        raise ValueError(f"heads must be (layer, head) pairs with layer in 0..{n_layers - 1} and "
                         f"head in 0..{n_heads - 1}, got {bad[:3]!r}")
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"heads repeat: {pairs!r}")
    return [(int(l), int(h)) for l, h in pairs]


@torch.no_grad()
def _mean_outputs(lm, ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """Each layer's mean per-head output ``[n_heads, d_head]`` over every position and sequence."""
    sites = [site_name(i, "attn.heads") for i in range(lm.n_layers)]
    with capture(lm, sites) as acts:
        hf_model(lm)(input_ids=ids)
    return {i: acts[site].mean((0, 1)) for i, site in enumerate(sites)}


@torch.no_grad()
def _half_losses(lm, ids: torch.Tensor, seq_len: int, heads: list[tuple[int, int]],
                 means: dict[int, torch.Tensor] | None) -> tuple[float, float]:
    """Mean next-token loss on the second repeat's tokens after its first, and on the first
    repeat's tokens after its first, with ``heads`` ablated."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    ablations = {site_name(layer, "attn.heads"):
                 Zero(heads=chosen) if means is None else Set(means[layer][chosen], heads=chosen)
                 for layer, chosen in by_layer.items()}
    with patch(lm, ablations):
        logits = hf_model(lm)(input_ids=ids).logits.float()
    loss = -logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # [batch, seq - 1]
    second = ids.shape[1] - seq_len + 1  # the second repeat's second token
    first = second - seq_len             # the first repeat's second token
    return (float(loss[:, second - 1:].mean()),
            float(loss[:, first - 1:first + seq_len - 2].mean()))
