"""Checks for notebook 05 (CCS, Burns et al. 2022): per-class normalisation, the CCS loss, and
training a CCS probe, against :mod:`nbtoolkit.probes`."""

from __future__ import annotations

import torch

from ..probes import CCS, PairNormalizer, ccs_loss, optimistic_accuracy
from .feedback import Feedback, Wrong, call, expect, number, run_check, tensor


def contrast_pairs(n: int, seed: int, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Planted contrast pairs ``x_pos, x_neg`` ``[n, d]`` and labels ``[n]``: a truth feature
    along e₀ whose sign says which half is true, a large offset along e₁ that only says which
    answer was appended (+ for x⁺), a distractor along e₂ on which the halves differ by a random
    amount unrelated to the truth, and each example's own content (shared by both halves) on the
    other axes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(n, generator=g) % 2
    content = 3 * torch.randn(n, d, generator=g)
    content[:, :3] = 0
    truth = torch.zeros(d)
    truth[0] = 1.5
    answer = torch.zeros(d)
    answer[1] = 8.0
    sign = (2 * labels - 1).float()[:, None]
    noise = lambda: 0.5 * torch.randn(n, d, generator=g)  # noqa: E731
    distractor = torch.zeros(n, d)
    distractor[:, 2] = 1.5 * torch.randn(n, generator=g)
    x_pos = content + sign * truth + answer + distractor + noise()
    x_neg = content - sign * truth - answer - distractor + noise()
    return x_pos, x_neg, labels


def _pair_answer(value, what: str, shape) -> torch.Tensor:
    """A student's ``(x̃⁺, x̃⁻)`` as one tensor ``[2, *shape]``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Wrong(f"{what} should be the pair (x_pos normalised, x_neg normalised), got a "
                    f"{type(value).__name__}")
    return torch.stack([tensor(v, f"{what}[{i}]", shape) for i, v in enumerate(value)])


# ---------------------------------------------------------------- 05.1

def check_normalize(normalize) -> Feedback | None:
    """Exercise 05.1: ``normalize(x_pos, x_neg)`` returns ``(x_pos − μ⁺, x_neg − μ⁻)``, each
    class centred on its own mean over the examples."""
    return run_check("05.1", normalize, _normalize)


def _normalize(student) -> str:
    x_pos, x_neg, _ = contrast_pairs(12, seed=1, d=5)
    got = _pair_answer(call(student, x_pos.clone(), x_neg.clone()), "your normalised pair",
                       x_pos.shape)
    want = torch.stack(PairNormalizer(scale=None).fit(x_pos, x_neg).transform(x_pos, x_neg))
    mu_pos, mu_neg = x_pos.mean(0), x_neg.mean(0)
    shared = torch.cat([x_pos, x_neg]).mean(0)
    expect(got, want, [
        (lambda: torch.stack([x_pos, x_neg]),
         "nothing was subtracted: centre each class on its own mean"),
        (lambda: torch.stack([x_pos - shared, x_neg - shared]),
         "you subtracted one mean shared by both halves; Burns normalises each class on its own "
         "(x⁺ − μ⁺, x⁻ − μ⁻), which removes the direction that only says which answer was "
         "appended"),
        (lambda: torch.stack([x_pos - mu_neg, x_neg - mu_pos]),
         "the means are swapped: x⁺ − μ⁺ and x⁻ − μ⁻"),
        (lambda: torch.stack([(x_pos - mu_pos) / x_pos.std(0), (x_neg - mu_neg) / x_neg.std(0)]),
         "you also divided by each dimension's std; Burns' code only subtracts the class means "
         "(its var_normalize option is off), and so does this exercise"),
        (lambda: torch.stack([x_pos - x_pos.mean(1, keepdim=True),
                              x_neg - x_neg.mean(1, keepdim=True)]),
         "you averaged over the features of each example; μ⁺ is the mean over the examples "
         "(axis 0), one vector per class"),
    ], "your normalised pairs differ from x⁺ − μ⁺, x⁻ − μ⁻")
    return ("per-class mean normalisation (Burns §2.2): what is left cannot say which answer was "
            "appended, only how the two halves differ beyond that.")


# ---------------------------------------------------------------- 05.2

def check_ccs_loss(ccs_loss_fn) -> Feedback | None:
    """Exercise 05.2: ``ccs_loss(p_pos, p_neg)`` is the mean over pairs of
    [p⁺ − (1 − p⁻)]² + min(p⁺, p⁻)²."""
    return run_check("05.2", ccs_loss_fn, _ccs_loss)


def _ccs_loss(student) -> str:
    g = torch.Generator().manual_seed(2)
    p_pos, p_neg = torch.rand(7, generator=g), torch.rand(7, generator=g)
    want = float(ccs_loss(p_pos, p_neg))
    got = number(call(student, p_pos.clone(), p_neg.clone()), "your loss")
    consistency = (p_pos - (1 - p_neg)) ** 2
    confidence = torch.minimum(p_pos, p_neg) ** 2
    expect(got, want, [
        (lambda: ((p_pos - p_neg) ** 2 + confidence).mean(),
         "the CCS loss should be symmetric in p(x⁺) and 1 − p(x⁻): consistency is "
         "(p(x⁺) − (1 − p(x⁻)))², since the two halves are opposite answers"),
        (lambda: consistency.mean(),
         "the confidence term min(p⁺, p⁻)² is missing: without it p = 0.5 on every half is a "
         "perfect score"),
        (lambda: confidence.mean(), "the consistency term (p⁺ − (1 − p⁻))² is missing"),
        (lambda: (consistency + torch.maximum(p_pos, p_neg) ** 2).mean(),
         "confidence is min(p⁺, p⁻)²: it penalises the smaller of the two probabilities, "
         "pushing one half to 0"),
        (lambda: (consistency + torch.minimum(p_pos, p_neg)).mean(),
         "the confidence term is squared: min(p⁺, p⁻)²"),
        (lambda: ((p_pos - (1 - p_neg)).abs() + confidence).mean(),
         "the consistency term is squared: (p⁺ − (1 − p⁻))²"),
        (lambda: (consistency + confidence).sum(), "average over the pairs, not sum"),
    ], "your loss differs from Burns' L_CCS", rtol=1e-5)
    return ("L_CCS = consistency + confidence, averaged over the pairs: a direction where the two "
            "halves get opposite, confident probabilities.")


# ---------------------------------------------------------------- 05.3

def check_fit_ccs(fit_ccs) -> Feedback | None:
    """Exercise 05.3: ``fit_ccs(x_pos, x_neg)`` returns ``(theta [d], bias)`` of a CCS probe
    p(x) = σ(θ·x̃ + b) on states normalised with the training pairs' class means."""
    return run_check("05.3", fit_ccs, _fit_ccs)


def _fit_ccs(student) -> str:
    train_pos, train_neg, _ = contrast_pairs(200, seed=3)
    test_pos, test_neg, labels = contrast_pairs(200, seed=4)
    d = train_pos.shape[1]
    answer = call(student, train_pos.clone(), train_neg.clone())
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(f"return the pair (theta, bias), got a {type(answer).__name__}")
    theta = tensor(answer[0], "your theta", (d,)).float()
    bias = number(answer[1], "your bias")
    a, b = PairNormalizer(scale=None).fit(train_pos, train_neg).transform(test_pos, test_neg)
    p_pos, p_neg = torch.sigmoid(a @ theta + bias), torch.sigmoid(b @ theta + bias)
    accuracy = optimistic_accuracy((0.5 * (p_pos + 1 - p_neg)).numpy(), labels.numpy())
    loss = float(ccs_loss(p_pos, p_neg))
    reference = CCS(n_tries=1, epochs=600, scale=None).fit(train_pos, train_neg)
    ours = optimistic_accuracy(reference.predict_proba(test_pos, test_neg), labels.numpy())
    # a trained probe: right on nearly every pair, and confident (random directions: loss ≥ 0.24)
    if accuracy >= 0.95 and loss <= 0.1:
        return (f"your probe reads the truth of {accuracy:.0%} of the held-out pairs (nbtoolkit's "
                f"CCS: {ours:.0%}), without a single label; its sign is arbitrary, as CCS's is.")
    raw_pos, raw_neg = test_pos @ theta + bias, test_neg @ theta + bias  # logits on raw states
    if max(float(((raw_pos > 0) & (raw_neg < 0)).float().mean()),
           float(((raw_pos < 0) & (raw_neg > 0)).float().mean())) > 0.95:
        raise Wrong("your probe reads which answer was appended, not which one is true: on raw "
                    "states x⁺ and x⁻ differ by the answer token, a direction that is perfectly "
                    "consistent and confident. Normalise each class (subtract its mean) before "
                    "training")
    if float(torch.cat([p_pos, p_neg]).sub(0.5).abs().mean()) < 0.05:
        raise Wrong("your probe says about 0.5 for everything: without the confidence term "
                    "min(p⁺, p⁻)², p = 0.5 is a perfect score. Train on consistency + confidence")
    raise Wrong(f"your probe reads the truth of {accuracy:.0%} of held-out pairs with CCS loss "
                f"{loss:.3f} (nbtoolkit's CCS: {ours:.0%}, loss "
                f"{reference.loss(test_pos, test_neg):.3f}): train longer (AdamW, lr 1e-2, ~1000 "
                f"steps) or keep the best of several starts")


__all__ = ["check_ccs_loss", "check_fit_ccs", "check_normalize", "contrast_pairs"]
