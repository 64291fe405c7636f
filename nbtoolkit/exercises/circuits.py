"""Checks for notebooks 10 (IOI circuits) and 11 (attribution patching): the logit difference, one
head's patch, one head's direct effect; the false negatives of a ranking, one site's AtP
estimate, AtP*'s QK fix for one head. Each runs the student's function on a tiny model (byte
tokens, a left-padded batch of two prompt pairs) against ``nbtoolkit.circuits``."""

from __future__ import annotations

import numpy as np
import torch

from ..circuits import attribution_patching, head_patching, path_patching
from ..circuits.agreement import false_negative_rate, top_k
from ..core.anatomy import site_name
from ..core.hooks import capture, patch
from ..core.interventions import Set
from ..core.lm import LAST_POSITION
from ..core.sweeps import encode_pairs
from .feedback import Feedback, call, expect, number, run_check, tensor, tiny_lm

# a pair's prompts have the same byte length, the two pairs do not (left padding)
BASE = ["When Mary and John went out, John gave it to", "Then Ann and Bob ate. Bob gave a to"]
SOURCE = ["When Lucy and Paul went out, Kate gave it to", "Then Tim and Eve ate. Joe gave a to"]
CORRECT, WRONG = ["M", "A"], ["J", "B"]  # first (byte) tokens of the indirect object and subject
LAYER, HEAD = 1, 2


def _ids(lm, answers):
    return torch.tensor([lm.token_id(a) for a in answers])


def _metric(lm):
    """logit(correct) − logit(wrong) per pair: the reference's metric ``[n_pairs]``."""
    correct, wrong = _ids(lm, CORRECT), _ids(lm, WRONG)
    return lambda logits: logits[torch.arange(len(logits)), correct] - \
        logits[torch.arange(len(logits)), wrong]


def _logits(lm, inputs, interventions=None) -> torch.Tensor:
    with torch.no_grad(), patch(lm, interventions or {}):
        return lm.model(**inputs).logits[:, -1]


def _source(lm, site: str) -> torch.Tensor:
    with torch.no_grad(), capture(lm, site) as acts:
        lm.model(**encode_pairs(lm, BASE, SOURCE).source)
    return acts[site]


# ---------------------------------------------------------------- 10.1

def check_logit_difference(logit_difference) -> Feedback | None:
    """Exercise 10.1: ``logit_difference(lm, prompts, correct, wrong)`` is logit(correct answer)
    − logit(wrong answer) after each prompt, ``[n_prompts]``."""
    return run_check("10.1", logit_difference, _logit_difference)


def _logit_difference(student) -> str:
    lm = tiny_lm()
    inputs = lm.encode(BASE)
    logits = _logits(lm, inputs)
    rows, correct, wrong = torch.arange(2), _ids(lm, CORRECT), _ids(lm, WRONG)
    want = logits[rows, correct] - logits[rows, wrong]
    got = tensor(call(student, lm, BASE, CORRECT, WRONG), "your logit differences", [2])
    probs = logits.softmax(-1)
    side = lm.tokenizer.padding_side
    lm.tokenizer.padding_side = "right"
    try:
        right = lm.tokenizer(BASE, return_tensors="pt", padding=True)
    finally:
        lm.tokenizer.padding_side = side
    with torch.no_grad():
        right_logits = lm.model(**right).logits[:, -1]
        first = lm.model(**inputs).logits[:, 0]
    expect(got, want, [
        (lambda: -want, "the sign is flipped: the metric is logit(correct) − logit(wrong), "
                        "positive when the model prefers the indirect object"),
        (lambda: probs[rows, correct] - probs[rows, wrong],
         "these are probabilities; the logit difference subtracts the logits (before the "
         "softmax), which a patch moves more evenly"),
        (lambda: right_logits[rows, correct] - right_logits[rows, wrong],
         "with right padding the shorter prompt's last column is padding: pad on the left "
         "(lm.encode does) so that column -1 is every prompt's last token"),
        (lambda: first[rows, correct] - first[rows, wrong],
         "you read the first position; the next token after a prompt is predicted at its last"),
        (lambda: logits[rows, correct[0]] - logits[rows, wrong[0]],
         "every prompt was scored with the first prompt's answers; each prompt has its own"),
    ], "your logit differences differ from logit(correct) − logit(wrong) at the last token")
    return ("the logit difference: positive when the model prefers the indirect object; "
            "nbtoolkit.core.sweeps.logit_difference builds it for any batch of pairs.")


# ---------------------------------------------------------------- 10.2

def check_patch_head(patch_head) -> Feedback | None:
    """Exercise 10.2: ``patch_head(lm, base, source, layer, head, metric)`` is the metric per
    pair with one head's output patched from the source at every position, ``[n_pairs]``."""
    return run_check("10.2", patch_head, _patch_head)


def _patch_head(student) -> str:
    lm = tiny_lm()
    metric = _metric(lm)
    want = head_patching(lm, BASE, SOURCE, metric, layers=[LAYER],
                         heads=[HEAD]).per_pair[:, LAYER, HEAD]
    got = tensor(call(student, lm, BASE, SOURCE, LAYER, HEAD, metric), "your patched metric", [2])
    pairs = encode_pairs(lm, BASE, SOURCE)
    heads = site_name(LAYER, "attn.heads")

    def with_(site, inputs=pairs.base, source=None, **options):
        value = _source(lm, site) if source is None else source
        return metric(_logits(lm, inputs, {site: Set(value, **options)}))

    def reversed_():
        with torch.no_grad(), capture(lm, heads) as base_acts:
            lm.model(**pairs.base)
        return with_(heads, pairs.source, base_acts[heads], heads=[HEAD])

    expect(got, torch.as_tensor(want), [
        (lambda: with_(heads), "you patched every head of the layer (the whole attention); "
                               "select one head: Set(..., heads=[head])"),
        (lambda: with_(heads, heads=[HEAD], at=-1),
         "you patched the last position only; the head's output at every position is patched"),
        (lambda: with_(site_name(LAYER, "attn.q"), heads=[HEAD]),
         f"you patched the head's queries (site {site_name(LAYER, 'attn.q')}); its output is "
         f"site {heads}"),
        (lambda: with_(site_name(LAYER + 1, "attn.heads"), heads=[HEAD]),
         f"you patched layer {LAYER + 1}: layer i is block i, site layer.{{i}}.attn.heads"),
        (reversed_, "the patch goes the other way: the source's activation into the base run"),
    ], "your metric differs from the base run with one head's output patched from the source")
    return ("one cell of head patching; head_patching fills every cell in a few batched "
            "forwards, each joining at its head's block.")


# ---------------------------------------------------------------- 10.3

def check_direct_effect(direct_effect) -> Feedback | None:
    """Exercise 10.3: ``direct_effect(lm, base, source, layer, head, metric)`` is the metric per
    pair with the path from one head to the logits patched: the head from the source, every
    other head frozen to the base run, MLPs recomputed (Wang et al.'s path patching)."""
    return run_check("10.3", direct_effect, _direct_effect)


def _direct_effect(student) -> str:
    lm = tiny_lm()
    metric = _metric(lm)
    layer = 0  # paths from block 0 pass through later heads, which must be frozen

    def paths(**options):
        return path_patching(lm, BASE, SOURCE, [(layer, HEAD)], "logits", metric,
                             **options).per_pair[:, 0]

    want = paths()
    got = tensor(call(student, lm, BASE, SOURCE, layer, HEAD, metric), "your direct effect", [2])
    pairs = encode_pairs(lm, BASE, SOURCE)
    sites = [site_name(i, "attn.heads") for i in range(lm.n_layers)]
    with torch.no_grad(), capture(lm, sites) as base_acts:
        lm.model(**pairs.base)
    source_acts = {s: _source(lm, s) for s in sites}

    def frozen_to(values, sender=True):
        chain = {s: [Set(values[s])] for s in sites}
        if sender:
            chain[sites[layer]].append(Set(source_acts[sites[layer]], heads=[HEAD]))
        return metric(_logits(lm, pairs.base, chain))

    expect(got, torch.as_tensor(want), [
        (lambda: head_patching(lm, BASE, SOURCE, metric, layers=[layer],
                               heads=[HEAD]).per_pair[:, layer, HEAD],
         "this is the head's total effect (head patching): freeze every other head to its base "
         "run so only the direct path (through the residual stream and MLPs) carries the source"),
        (lambda: paths(freeze_mlps=True),
         "you froze the MLPs too; in Wang et al.'s path patching MLPs and norms are recomputed"),
        (lambda: frozen_to(base_acts, sender=False),
         "the sender is frozen too: patch it from the source after freezing the others"),
        (lambda: frozen_to(source_acts),
         "the other heads are frozen to the source run; freeze them to the base run"),
    ], "your direct effect differs from path patching the head to the logits")
    return ("the direct effect of one head: path_patching(lm, base, source, 'heads', 'logits', "
            "metric) does every head at once; name movers stand out.")


# ---------------------------------------------------------------- 11.1

def check_false_negatives(false_negative_rate) -> Feedback | None:
    """Exercise 11.1: ``false_negative_rate(estimate, exact, k)``: the fraction of the exact top
    k sites (largest absolute effect) that are not among the estimate's top k."""
    return run_check("11.1", false_negative_rate, _false_negatives)


def _false_negatives(student) -> str:
    rng = np.random.default_rng(3)
    exact = rng.normal(size=(6, 5))
    exact[0, :3] = [-4.0, -3.5, -3.0]  # the largest effects lower the metric
    estimate = exact + rng.normal(scale=0.8, size=exact.shape)
    estimate[0, 1] = 0.01  # a false negative: AtP misses it
    k = 5
    want = false_negative_rate(estimate, exact, k)
    got = number(call(student, estimate.copy(), exact.copy(), k), "your false-negative rate")
    signed = lambda x: set(np.argsort(-x.ravel(), kind="stable")[:k].tolist())  # noqa: E731
    missed = top_k(exact.ravel(), k) - top_k(estimate.ravel(), k)
    expect(got, want, [
        (lambda: len(signed(exact) - signed(estimate)) / k,
         "you ranked by signed effect; rank by |effect|: a patch that lowers the metric a lot "
         "matters as much as one that raises it"),
        (lambda: float(len(missed)), "this is a count; divide by k for the rate"),
        (lambda: 1 - len(missed) / k,
         "this is the fraction found (the recall); false negatives are the ones missed"),
    ], "your rate is not the share of the exact top k missing from the estimate's top k",
        rtol=0, atol=1e-9)
    return "false negatives: important sites an approximation ranks too low to be checked."


# ---------------------------------------------------------------- 11.2

def check_atp_estimate(atp_estimate) -> Feedback | None:
    """Exercise 11.2: ``atp_estimate(lm, base, source, site, metric)`` is AtP's estimate of
    patching ``site`` (every position) per pair: Σ_t (a_source − a_base)[t] · ∂metric/∂a[t] in
    the base run, ``[n_pairs]``."""
    return run_check("11.2", atp_estimate, _atp_estimate)


def _gradient(lm, inputs, site, metric):
    """(activation, ∂Σmetric/∂activation) at ``site`` in a forward of ``inputs``."""
    with capture(lm, [site], grad=True) as acts:
        logits = lm.model(**inputs, logits_to_keep=LAST_POSITION).logits[:, -1]
    grad = torch.autograd.grad(metric(logits).sum(), acts[site])[0]
    return acts[site].detach(), grad


def _atp_estimate(student) -> str:
    lm = tiny_lm()
    metric = _metric(lm)
    site = site_name(LAYER, "mlp")
    result = attribution_patching(lm, BASE, SOURCE, metric, kind="mlp")
    want = torch.as_tensor(result.per_pair[:, LAYER] - result.base_scores)
    got = tensor(call(student, lm, BASE, SOURCE, site, metric), "your estimate", [2])
    pairs = encode_pairs(lm, BASE, SOURCE)
    base, grad = _gradient(lm, pairs.base, site, metric)
    source, source_grad = _gradient(lm, pairs.source, site, metric)
    expect(got, want, [
        (lambda: ((source - base) * source_grad).sum((1, 2)),
         "the gradient is the base run's: the estimate linearises the metric around the run "
         "that gets patched"),
        (lambda: ((base - source) * grad).sum((1, 2)),
         "the sign is flipped: the change is source − base (the source's activation goes in)"),
        (lambda: (source * grad).sum((1, 2)),
         "this is gradient × activation; AtP multiplies the gradient by the change, source − base"),
        (lambda: ((source - base) * grad)[:, -1].sum(-1),
         "you kept the last position only; the site is patched at every position: sum over them"),
        (lambda: want + torch.as_tensor(result.base_scores),
         "this is the estimated score (base score + estimate); return the estimate itself"),
    ], "your estimate differs from AtP's (source − base) · gradient, summed over positions")
    return ("AtP: every site's estimate from one forward per prompt set and one backward; "
            "attribution_patching(..., kind=...) returns base score + estimate for all at once.")


# ---------------------------------------------------------------- 11.3

def check_qk_fixed(qk_fixed) -> Feedback | None:
    """Exercise 11.3: ``qk_fixed(lm, base, source, layer, head, metric)`` is AtP*'s estimate of
    patching one head's queries per pair: the head's output recomputed with the source's
    queries (exactly, through the softmax), its change times ∂metric/∂(head output),
    ``[n_pairs]``."""
    return run_check("11.3", qk_fixed, _qk_fixed)


def _qk_fixed(student) -> str:
    lm = tiny_lm()
    metric = _metric(lm)
    fixed = attribution_patching(lm, BASE, SOURCE, metric, kind="q", qk_fix=True)
    want = torch.as_tensor(fixed.per_pair[:, LAYER, HEAD] - fixed.base_scores)
    got = tensor(call(student, lm, BASE, SOURCE, LAYER, HEAD, metric), "your estimate", [2])
    plain = attribution_patching(lm, BASE, SOURCE, metric, kind="q")
    exact = head_patching(lm, BASE, SOURCE, metric, kind="q", layers=[LAYER], heads=[HEAD])
    pairs = encode_pairs(lm, BASE, SOURCE)
    out, q = site_name(LAYER, "attn.heads"), site_name(LAYER, "attn.q")
    z, grad = _gradient(lm, pairs.base, out, metric)
    _, source_grad = _gradient(lm, pairs.source, out, metric)

    def recomputed(heads):
        with torch.no_grad(), patch(lm, {q: Set(_source(lm, q), heads=heads)}), \
                capture(lm, out) as acts:
            lm.model(**pairs.base)
        return acts[out]

    expect(got, want, [
        (lambda: torch.as_tensor(plain.per_pair[:, LAYER, HEAD] - plain.base_scores),
         "this is plain AtP, linear through the softmax (Δq · ∂metric/∂q); the QK fix "
         "recomputes the head's attention with the source's queries and linearises after it"),
        (lambda: torch.as_tensor(exact.per_pair[:, LAYER, HEAD] - exact.base_scores),
         "this is the exact effect of the patch (a full patched forward); the QK fix keeps the "
         "part after the head linear: (z_patched − z) · ∂metric/∂z"),
        (lambda: ((recomputed(None) - z) * grad).sum((1, 2, 3)),
         "you patched every head's queries; patch one head: Set(..., heads=[head])"),
        (lambda: ((recomputed([HEAD]) - z) * source_grad).sum((1, 2, 3)),
         "the gradient is the base run's (∂metric/∂z around the run being patched)"),
    ], "your estimate differs from AtP*'s QK fix for the head's queries")
    return ("AtP*'s QK fix: exact through the patched layer's softmax, first order after it; it "
            "recovers heads whose saturated attention hides them from plain AtP.")


__all__ = ["check_atp_estimate", "check_direct_effect", "check_false_negatives",
           "check_logit_difference", "check_patch_head", "check_qk_fixed"]
