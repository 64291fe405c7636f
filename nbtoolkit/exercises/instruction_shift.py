"""Checks for notebook 06 (Wu et al., instruction-tuning shift): quantised attribution levels,
importance density, and gradient × input attribution, against
:mod:`nbtoolkit.instruction_shift.attribution`."""

from __future__ import annotations

import numpy as np
import torch

from ..core.hooks import capture
from ..instruction_shift.attribution import (importance_density, input_output_attribution,
                                             quantize_attribution)
from .feedback import Feedback, Wrong, call, expect, run_check, tensor, tiny_lm


def _has_nan(value) -> bool:
    try:
        return bool(np.isnan(np.asarray(value.detach() if torch.is_tensor(value) else value,
                                        dtype=np.float64)).any())
    except (TypeError, ValueError):
        return False  # not numbers: tensor() says so


# ---------------------------------------------------------------- 06.1

def check_quantize(quantize) -> Feedback | None:
    """Exercise 06.1: ``quantize(scores)`` turns attribution scores ``[prompt tokens, response
    tokens]`` into levels 0…10: ReLU, divide each column by its max, ceil(10 × value)."""
    return run_check("06.1", quantize, _quantize)


def _quantize(student) -> str:
    g = np.random.default_rng(0)
    scores = g.normal(size=(6, 4)) * 1e-3
    scores[:, 3] = -np.abs(scores[:, 3])  # a response token no prompt token pushed up
    got = call(student, scores.copy())
    if _has_nan(got):
        raise Wrong("your levels contain NaN: response token 3 has no positive score, so its "
                    "column max is 0 and 0/0 appears; give such a column level 0 everywhere")
    got = tensor(got, "your levels", scores.shape)
    if float(got.min()) < 0:
        raise Wrong("some of your levels are negative: apply the ReLU first (negative "
                    "attributions become 0)")
    want = quantize_attribution(scores)
    relu = np.maximum(scores, 0)
    column_max = relu.max(0, keepdims=True)
    scaled = np.divide(relu, column_max, out=np.zeros_like(relu), where=column_max > 0)
    expect(got, want, [
        (lambda: np.ceil(10 * relu / relu.max()),
         "you divided by the largest score of the whole matrix; each response token (column) is "
         "divided by its own maximum over the prompt tokens"),
        (lambda: np.ceil(10 * np.divide(relu, relu.max(1, keepdims=True),
                                        out=np.zeros_like(relu),
                                        where=relu.max(1, keepdims=True) > 0)),
         "you divided each prompt token (row) by its maximum; the paper normalises each response "
         "token (column) by its maximum over the prompt"),
        (lambda: np.round(10 * scaled), "levels use the ceiling, ceil(10 × value): any positive "
                                        "score gets at least level 1"),
        (lambda: np.floor(10 * scaled), "levels use the ceiling, ceil(10 × value), not floor"),
        (lambda: np.ceil(scaled), "levels run from 0 to 10: ceil(10 × value)"),
    ], "your levels differ from the paper's quantisation", atol=0.5)
    return ("levels 0…10 per response token: the paper's step 3 (quantize_attribution), which "
            "makes samples of any length comparable.")


# ---------------------------------------------------------------- 06.2

def check_importance_density(importance_density_fn) -> Feedback | None:
    """Exercise 06.2: ``importance_density(levels)`` gives each prompt token S_n = ‖I′_n‖₁ /
    ‖I′_n‖₄ over the response tokens, levels ≤ 7 dropped, divided by the max over n: ``[n]``."""
    return run_check("06.2", importance_density_fn, _importance_density)


def _importance_density(student) -> str:
    levels = np.random.default_rng(1).integers(0, 11, size=(7, 5))
    levels[4] = np.minimum(levels[4], 7)  # a prompt token that never reaches level 8
    got = call(student, levels.copy())
    if _has_nan(got):
        raise Wrong("your density contains NaN: prompt token 4 has no level above 7, so both "
                    "norms are 0 and 0/0 appears; its density is 0")
    got = tensor(got, "your density", (levels.shape[0],))
    want = importance_density(levels)

    def density(kept, p=4, normalise=True):
        a = kept.astype(np.float64)
        l1, lp = a.sum(1), (a ** p).sum(1) ** (1 / p)
        s = np.divide(l1, lp, out=np.zeros_like(l1), where=lp > 0)
        return s / s.max() if normalise else s

    kept = np.where(levels <= 7, 0, levels)
    expect(got, want, [
        (lambda: density(kept, p=2), "the paper divides by the L4 norm (p = 4), not L2"),
        (lambda: density(levels), "drop the levels ≤ 7 first (b = 7: only 8, 9 and 10 count)"),
        (lambda: density(np.where(levels < 7, 0, levels)),
         "levels ≤ 7 are dropped, 7 included: keep only 8, 9 and 10"),
        (lambda: density(kept, normalise=False),
         "divide by the largest density over the prompt tokens, so the top token has 1"),
    ], "your density differs from ‖I′_n‖₁ / ‖I′_n‖₄, normalised by its maximum")
    return ("importance density (the paper's steps 4-5): high when a prompt token matters to "
            "many response tokens, not to one.")


# ---------------------------------------------------------------- 06.3

PROMPT, RESPONSE = "Name the capital of France.", "Paris"


def _gradient_x_input(lm, ids: list[int], n_prompt: int, objective: str, reduce: str) -> torch.Tensor:
    """Attribution variants ``[n_prompt, n_response]``: d objective(y_m) / d embedding of each
    prompt token, reduced over the hidden dimension."""
    input_ids = torch.tensor([ids])
    with capture(lm, "embed", grad=True) as acts:
        logits = lm.model(input_ids=input_ids).logits[0]
    embed = acts["embed"]
    columns = []
    for position in range(n_prompt, len(ids)):
        row = logits[position - 1]
        value = {"prob": row.softmax(-1), "logprob": row.log_softmax(-1), "logit": row}[objective]
        grad, = torch.autograd.grad(value[ids[position]], embed, retain_graph=True)
        g, e = grad[0, :n_prompt], embed[0, :n_prompt]
        columns.append({"gxi": (g * e).sum(-1), "grad": g.sum(-1),
                        "abs": (g * e).sum(-1).abs()}[reduce].detach())
    return torch.stack(columns, 1)


def check_attribution(attribution) -> Feedback | None:
    """Exercise 06.3: ``attribution(lm, prompt_ids, response_ids)`` is I[n, m] = Σ_d ∂p(y_m |
    prefix)/∂E[x_n]_d · E[x_n]_d, ``[prompt tokens, response tokens]``."""
    return run_check("06.3", attribution, _attribution)


def _attribution(student) -> str:
    lm = tiny_lm()
    reference = input_output_attribution(lm, PROMPT, RESPONSE)
    n, m = reference.shape
    ids = lm.tokenizer(PROMPT + " " + RESPONSE, add_special_tokens=False)["input_ids"]
    got = call(student, lm, list(ids[:n]), list(ids[n:]))
    if torch.is_tensor(got) and tuple(got.shape) == (n + m, m):
        raise Wrong(f"your matrix has a row for every token ({n + m}); keep the {n} prompt "
                    f"tokens' rows: the response is what is explained, the prompt explains it")
    got = tensor(got, "your attribution", (n, m))
    want = reference.scores
    variant = lambda objective, reduce: _gradient_x_input(lm, ids, n, objective, reduce)  # noqa: E731
    expect(got, want, [
        (lambda: variant("logprob", "gxi"),
         "you differentiated log p(y_m); the paper differentiates the probability p(y_m | "
         "prefix) itself (the softmax, not its log)"),
        (lambda: variant("logit", "gxi"),
         "you differentiated the logit of y_m; the paper differentiates its probability, the "
         "softmax of the logits"),
        (lambda: variant("prob", "grad"),
         "this is the gradient summed over dimensions; the attribution is gradient × input: "
         "multiply by the embedding, then sum over the hidden dimension"),
        (lambda: variant("prob", "abs"),
         "you took the absolute value; the attribution keeps its sign (the quantisation's ReLU "
         "drops the negative part later)"),
    ], "your attribution differs from gradient × input of p(y_m | prefix)")
    return ("gradient × input of each response token's probability, the paper's I[n, m]. "
            "input_output_attribution computes all columns with one vectorised backward.")


__all__ = ["check_attribution", "check_importance_density", "check_quantize"]
