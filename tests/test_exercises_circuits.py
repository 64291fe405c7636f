"""The checks for notebooks 10 and 11 (written before the notebooks): a solution written with the
core's capture/patch passes, the untouched stub is "not done yet", and each anticipated mistake
gets its teaching message."""

import numpy as np
import pytest
import torch

from nbtoolkit import Set, capture, patch
from nbtoolkit.exercises import circuits as checks
from nbtoolkit.exercises.feedback import FAILED, NOT_DONE

# ---------------------------------------------------------------- solutions


def logit_difference(lm, prompts, correct, wrong):
    logits = lm.model(**lm.encode(prompts)).logits[:, -1].detach()
    rows = torch.arange(len(prompts))
    ids = lambda answers: torch.tensor([lm.token_id(a) for a in answers])  # noqa: E731
    return logits[rows, ids(correct)] - logits[rows, ids(wrong)]


def _pairs(lm, base, source):
    from nbtoolkit.core.sweeps import encode_pairs
    return encode_pairs(lm, base, source)


def patch_head(lm, base, source, layer, head, metric, site="attn.heads", at=None):
    pairs = _pairs(lm, base, source)
    name = f"layer.{layer}.{site}"
    with torch.no_grad(), capture(lm, name) as src:
        lm.model(**pairs.source)
    with torch.no_grad(), patch(lm, {name: Set(src[name], heads=[head], at=at)}):
        return metric(lm.model(**pairs.base).logits[:, -1])


def direct_effect(lm, base, source, layer, head, metric, freeze_to_source=False):
    pairs = _pairs(lm, base, source)
    sites = [f"layer.{i}.attn.heads" for i in range(lm.n_layers)]
    with torch.no_grad(), capture(lm, sites) as b:
        lm.model(**pairs.base)
    with torch.no_grad(), capture(lm, sites) as s:
        lm.model(**pairs.source)
    frozen = s if freeze_to_source else b
    chain = {site: [Set(frozen[site])] for site in sites}
    chain[sites[layer]].append(Set(s[sites[layer]], heads=[head]))
    with torch.no_grad(), patch(lm, chain):
        return metric(lm.model(**pairs.base).logits[:, -1])


def false_negative_rate(estimate, exact, k):
    top = lambda x: set(np.argsort(-np.abs(x).ravel())[:k].tolist())  # noqa: E731
    return len(top(exact) - top(estimate)) / k


def _grad(lm, inputs, site, metric):
    with capture(lm, [site], grad=True) as acts:
        logits = lm.model(**inputs).logits[:, -1]
    return acts[site].detach(), torch.autograd.grad(metric(logits).sum(), acts[site])[0]


def atp_estimate(lm, base, source, site, metric, last_only=False):
    pairs = _pairs(lm, base, source)
    a, g = _grad(lm, pairs.base, site, metric)
    with torch.no_grad(), capture(lm, site) as src:
        lm.model(**pairs.source)
    terms = ((src[site] - a) * g).sum(-1)
    return terms[:, -1] if last_only else terms.sum(1)


def qk_fixed(lm, base, source, layer, head, metric):
    pairs = _pairs(lm, base, source)
    out, q = f"layer.{layer}.attn.heads", f"layer.{layer}.attn.q"
    z, g = _grad(lm, pairs.base, out, metric)
    with torch.no_grad(), capture(lm, q) as src:
        lm.model(**pairs.source)
    with torch.no_grad(), patch(lm, {q: Set(src[q], heads=[head])}), capture(lm, out) as new:
        lm.model(**pairs.base)
    return ((new[out] - z) * g).sum((1, 2, 3))


SOLUTIONS = {
    "check_logit_difference": logit_difference, "check_patch_head": patch_head,
    "check_direct_effect": direct_effect, "check_false_negatives": false_negative_rate,
    "check_atp_estimate": atp_estimate, "check_qk_fixed": qk_fixed,
}


@pytest.mark.parametrize("check", SOLUTIONS)
def test_the_solution_passes_and_the_stub_is_not_done(check):
    feedback = getattr(checks, check)(SOLUTIONS[check])
    assert feedback.passed, str(feedback)

    def stub(*args):
        raise NotImplementedError()
    assert getattr(checks, check)(stub).status == NOT_DONE


# ---------------------------------------------------------------- anticipated mistakes

WRONG = [
    ("check_logit_difference", lambda lm, p, c, w: -logit_difference(lm, p, c, w), "sign is flipped"),
    ("check_logit_difference",
     lambda lm, p, c, w: logit_difference(lm, p, [c[0]] * 2, [w[0]] * 2), "first prompt's answers"),
    ("check_logit_difference", lambda lm, p, c, w: logit_difference(lm, p, c, w).mean(),
     "shape []"),
    ("check_patch_head", lambda lm, b, s, l, h, m: patch_head(lm, b, s, l, h, m, at=-1),
     "last position only"),
    ("check_patch_head", lambda lm, b, s, l, h, m: patch_head(lm, b, s, l, h, m, site="attn.q"),
     "patched the head's queries"),
    ("check_patch_head", lambda lm, b, s, l, h, m: patch_head(lm, b, s, l + 1, h, m),
     "you patched layer 2"),
    ("check_direct_effect", lambda lm, b, s, l, h, m: patch_head(lm, b, s, l, h, m),
     "total effect"),
    ("check_direct_effect",
     lambda lm, b, s, l, h, m: direct_effect(lm, b, s, l, h, m, freeze_to_source=True),
     "frozen to the source run"),
    ("check_false_negatives",
     lambda e, x, k: len(set(np.argsort(-x.ravel())[:k]) - set(np.argsort(-e.ravel())[:k])) / k,
     "signed effect"),
    ("check_false_negatives", lambda e, x, k: false_negative_rate(e, x, k) * k, "a count"),
    ("check_atp_estimate", lambda lm, b, s, site, m: -atp_estimate(lm, b, s, site, m),
     "sign is flipped"),
    ("check_atp_estimate",
     lambda lm, b, s, site, m: atp_estimate(lm, b, s, site, m, last_only=True),
     "last position"),
    ("check_qk_fixed", lambda *args: _plain_q(*args), "plain AtP"),
]


def _plain_q(lm, base, source, layer, head, metric):
    pairs = _pairs(lm, base, source)
    site = f"layer.{layer}.attn.q"
    q, g = _grad(lm, pairs.base, site, metric)
    with torch.no_grad(), capture(lm, site) as src:
        lm.model(**pairs.source)
    return ((src[site] - q) * g)[:, :, head].sum((1, 2))


@pytest.mark.parametrize("check, wrong, message", WRONG,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_a_mistake_gets_its_message(check, wrong, message):
    feedback = getattr(checks, check)(wrong)
    assert feedback.status == FAILED and message in feedback.message, str(feedback)
