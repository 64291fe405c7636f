"""Checks for notebook 00: the residual stream (capture), an interchange (patch), and a whole row
of interchanges in one batched forward."""

from __future__ import annotations

import numpy as np
import torch

from ..core.anatomy import site_name
from ..core.hooks import patch
from ..core.interventions import Set
from ..interchange import interchange_sweep
from .feedback import Feedback, Wrong, call, captured, expect, run_check, tensor, tiny_lm
from .layers import layer_mistakes

# Same number of (byte) tokens; they differ at positions 15-19, the country.
BASE, SOURCE = "The capital of Spain is", "The capital of Italy is"
COUNTRY = 16  # a position inside the country's tokens


def interchanged(lm, base: str, source: str, site: str, at) -> torch.Tensor:
    """Next-token probabilities ``[vocab]`` of ``base`` with ``source``'s activation at ``site``
    set at positions ``at`` (None: every position)."""
    value = captured(lm, source, site)[None]
    with torch.no_grad(), patch(lm, {site: Set(value, at=at)}):
        return lm.next_token_probs(base)[0]


# ---------------------------------------------------------------- 00.1

def check_residual_at(residual_at) -> Feedback | None:
    """Exercise 00.1: ``residual_at(lm, prompt, layer)`` is the residual stream leaving block
    ``layer``, ``[seq, d_model]``."""
    return run_check("00.1", residual_at, _residual_at)


def _residual_at(student) -> str:
    lm = tiny_lm()
    last = lm.n_layers - 1
    for layer in (1, last):  # the last: Hugging Face's hidden_states[-1] is after the final norm
        want = captured(lm, SOURCE, site_name(layer))
        got = tensor(call(student, lm, SOURCE, layer), "your residual stream", want.shape)
        expect(got, want, layer_mistakes(lm, SOURCE, layer),
               f"your residual stream at layer {layer} differs from site {site_name(layer)}")
    return ("site layer.{i} holds the residual stream leaving block i: the block's input plus "
            "what its attention and MLP wrote. Every method in nbtoolkit numbers layers this way.")


# ---------------------------------------------------------------- 00.2

def check_interchange(interchange) -> Feedback | None:
    """Exercise 00.2: ``interchange(lm, base, source, layer, position)`` gives the next-token
    probabilities ``[vocab]`` of ``base`` with ``source``'s residual stream at (layer, position)."""
    return run_check("00.2", interchange, _interchange)


def _interchange(student) -> str:
    lm = tiny_lm()
    vocab = len(lm.tokenizer)
    for layer, position in ((1, COUNTRY), (0, COUNTRY + 2)):
        site = site_name(layer)
        want = interchanged(lm, BASE, SOURCE, site, [position])
        got = tensor(call(student, lm, BASE, SOURCE, layer, position), "your probabilities",
                     (vocab,))
        total = float(got.sum())
        if abs(total - 1) > 1e-3:
            raise Wrong(f"your numbers sum to {total:.4g}, not 1: return probabilities, the "
                        f"softmax of the last position's logits")
        expect(got, want, [
            (lambda: lm.next_token_probs(SOURCE)[0],
             "these are the source run's own probabilities: you ran the source prompt, or copied "
             "its state at every position of the layer (which reproduces the source run); an "
             "interchange copies one (layer, position): nb.Set(value, at=[position])"),
            (lambda: lm.next_token_probs(BASE)[0],
             "these are the base run's own probabilities: nothing was patched (was the base "
             "forward inside `with nb.patch(...)`, at the site you captured?)"),
            (lambda: interchanged(lm, SOURCE, BASE, site, [position]),
             "you ran the source prompt with the base's state; it is the other way round: the "
             "base run receives the source's activation"),
            (lambda: interchanged(lm, BASE, SOURCE, site_name(layer, "in"), [position]),
             f"you patched the stream entering block {layer} (site {site_name(layer, 'in')}); "
             f"the residual stream at layer {layer} is the block's output, site {site}"),
        ], f"your distribution differs from the interchange at (layer {layer}, position "
           f"{position})")
    return ("the source run's state at one (layer, position) now drives the base run's next "
            "token: an interchange intervention (pyvene's name), also called activation patching.")


# ---------------------------------------------------------------- 00.3

def check_interchange_row(interchange_row) -> Feedback | None:
    """Exercise 00.3: ``interchange_row(lm, base, source, layer, metric)`` gives the metric after
    patching each position of one layer, ``[n_tokens]``, from one batched forward."""
    return run_check("00.3", interchange_row, _interchange_row)


def _interchange_row(student) -> str:
    lm = tiny_lm()
    a, b = lm.token_id("R"), lm.token_id("M")
    metric = lambda probs: probs[:, a] - probs[:, b]  # noqa: E731  [batch, vocab] -> [batch]
    layer, n = 1, len(lm.tokens(BASE))
    forwards = []

    def count(act, ctx):  # every forward embeds its tokens once
        forwards.append(act.shape[0])
        return act

    with patch(lm, {"embed": count}):
        got = call(student, lm, BASE, SOURCE, layer, metric)
    got = tensor(got, "your row of metrics", (n,))
    on_logits = lambda logits: metric(logits.softmax(-1))  # noqa: E731  interchange_sweep's metrics read logits
    want = interchange_sweep(lm, BASE, SOURCE, on_logits, layers=[layer]).scores[layer]
    site = site_name(layer)
    everywhere = lambda: np.full(n, metric(interchanged(lm, BASE, SOURCE, site, None)[None]).item())  # noqa: E731
    expect(got, want, [
        (everywhere, "every row got the source's state at every position; row p should get it at "
                     "position p only: one list per row, at=[[0], [1], ...]"),
        (lambda: np.full(n, metric(lm.next_token_probs(BASE)).item()),
         "every entry is the unpatched base run's metric: the batched base forward must run "
         "inside `with nb.patch(...)`"),
        (lambda: want[::-1].copy(), "your row is reversed: entry p is the metric after patching "
                                    "position p, counted from the start"),
        (lambda: interchange_sweep(lm, SOURCE, BASE, on_logits, layers=[layer]).scores[layer],
         "you patched the base's states into the source run; the base run receives the source's"),
    ], f"your metrics differ from the interchanges at layer {layer}")
    if len(forwards) > 3:
        raise Wrong(f"right numbers, but from {len(forwards)} forward passes; put one row per "
                    f"position in one batch (the base prompt repeated {n} times) and patch row p "
                    f"at position p, so the row costs one forward, as interchange_sweep does")
    return (f"{n} interchanges in one batched forward: row p got the source's state at position "
            f"p. interchange_sweep does this once per layer.")


__all__ = ["check_interchange", "check_interchange_row", "check_residual_at"]
