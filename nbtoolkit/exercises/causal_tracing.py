"""Checks for notebook 02 (ROME causal tracing): the noise level, the corrupted run, and one
restoration cell, each against :mod:`nbtoolkit.tracing` on a tiny model."""

from __future__ import annotations

import numpy as np
import torch

from ..core.anatomy import site_name
from ..core.hooks import capture, patch
from ..core.interventions import Set
from ..tracing import causal_trace
from ..tracing.noise import noise_level
from .feedback import Feedback, call, expect, number, run_check, tiny_lm

SUBJECTS = ["Eiffel Tower", "PlayStation", "Danielle Darrieux"]
PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "Eiffel Tower"
SAMPLES, SEED, ANSWER = 3, 1, "P"
# a restoration moves p(answer) ~3e-3 of this random model by as little as 1e-6; rounding: ~1e-9
TOLERANCE = 1e-5


def _embeddings(lm, text: str) -> torch.Tensor:
    """Token embeddings of ``text`` alone (no special tokens), ``[tokens, d_model]``."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return lm.model.get_input_embeddings()(torch.tensor(ids))


# ---------------------------------------------------------------- 02.1

def check_noise_level(noise_level_fn) -> Feedback | None:
    """Exercise 02.1: ``noise_level(lm, subjects)`` is ROME's noise std, 3σ of the subject
    tokens' embeddings."""
    return run_check("02.1", noise_level_fn, _noise_level)


def _uneven(lm):
    """``lm`` with embeddings of uneven scale per token and per dimension, as a trained model's
    are (a random model's rows all share one std, which would hide a σ taken over the wrong rows)."""
    weight = lm.model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight.mul_(1 + 2 * torch.rand(weight.shape[0], 1, generator=g))
        weight.mul_(1 + torch.rand(1, weight.shape[1], generator=g))
        weight.add_(0.05 * torch.randn(1, weight.shape[1], generator=g))
    return lm


def _noise_level(student) -> str:
    lm = _uneven(tiny_lm())
    want = noise_level(lm, SUBJECTS)
    got = number(call(student, lm, SUBJECTS), "your noise level")
    subject_rows = torch.cat([_embeddings(lm, s) for s in SUBJECTS])  # [tokens, d]
    sigma = float(subject_rows.std())
    # biased or unbiased std: both are ROME's σ up to 1/(2n), so compare to 0.1%
    expect(got, want, [
        (lambda: sigma, "your noise is 3x too small: ROME uses 3 standard deviations of the "
                        "subject embeddings (noise='s3'); 1σ gives too small effects"),
        (lambda: sigma ** 2, "you took the variance; ROME's σ is the standard deviation (its "
                             "square root), and the noise is 3σ"),
        (lambda: 3 * sigma ** 2, "3 × the variance: ROME's σ is the standard deviation, the "
                                 "square root of the variance"),
        (lambda: 3 * float(lm.model.get_input_embeddings().weight.detach().std()),
         "you measured σ over the whole embedding matrix; ROME measures it over the embeddings "
         "of the subjects' tokens only"),
        (lambda: 3 * float(subject_rows.std(0).mean()),
         "you averaged a per-dimension std; ROME's σ is ONE standard deviation over all elements "
         "of the subject-token embeddings (every token, every dimension)"),
        (lambda: 3 * float(_embeddings(lm, " ".join(SUBJECTS)).std()),
         "you embedded the subjects joined into one text; ROME embeds each subject alone"),
    ], "your noise level is not 3σ of the subject-token embeddings", rtol=1e-3, atol=0)
    return ("ROME's noise: ε ~ N(0, (3σ)²) with σ the std of the subject-token embeddings "
            "(resolve_noise(lm, 's3', subjects) in nbtoolkit.tracing).")


# ---------------------------------------------------------------- the corrupted runs

def _case(lm):
    """The traced prompt's token ids ``[1, T]``, its subject range, a seeded noise draw
    ``[samples, subject tokens, d_model]`` (float32, 3σ) and the reference trace. The answer
    scored is "P" (Paris), not the random model's top token, which the noise never displaces:
    scoring each copy's own top token must not pass by chance."""
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    reference = causal_trace(lm, PROMPT, SUBJECT, samples=SAMPLES, noise=noise_level(lm, SUBJECTS),
                             seed=SEED, target=ANSWER, positions="last")
    start, end = reference.subject_range
    draw = np.random.RandomState(SEED).randn(SAMPLES, end - start, lm.d_model) * reference.noise
    return ids, (start, end), torch.from_numpy(draw).float(), reference


def _adding(noise: torch.Tensor, start: int, end: int, replace: bool = False):
    """An intervention for site ``embed`` that adds (or writes) ``noise`` at tokens start..end-1."""
    def corrupt(act, ctx):
        out = act.clone()
        out[:, start:end] = noise if replace else act[:, start:end] + noise
        return out
    return corrupt


def _answer_prob(lm, ids, answer_id: int, rows: int, interventions: dict) -> float:
    """Mean over ``rows`` copies of p(answer) at the last position, under ``interventions``."""
    with torch.no_grad(), patch(lm, interventions):
        logits = lm.model(input_ids=ids.expand(rows, -1)).logits[:, -1]
    return float(logits.softmax(-1)[:, answer_id].mean())


def check_corrupted_score(corrupted_score) -> Feedback | None:
    """Exercise 02.2: ``corrupted_score(lm, prompt, subject_range, noise, answer_id)`` is
    p(answer) averaged over the subject-corrupted copies of the prompt."""
    return run_check("02.2", corrupted_score, _corrupted_score)


def _corrupted_score(student) -> str:
    lm = tiny_lm()
    ids, (start, end), noise, reference = _case(lm)
    answer = reference.answer_id
    got = number(call(student, lm, PROMPT, (start, end), noise, answer), "your corrupted score")
    prob = lambda edit, rows=SAMPLES: _answer_prob(lm, ids, answer, rows, edit)  # noqa: E731
    with torch.no_grad(), patch(lm, {"embed": _adding(noise, start, end)}):
        corrupted = lm.model(input_ids=ids.expand(SAMPLES, -1)).logits[:, -1].softmax(-1)
    expect(got, reference.low_score, [
        (lambda: reference.high_score,
         "this is the clean run's p(answer): add the noise to the subject's token embeddings "
         "(site embed) in every copy"),
        (lambda: prob({"embed": _adding(noise, start + 1, end + 1)}),
         f"your noise sits one token to the right; the subject occupies tokens {start}..{end - 1} "
         f"(subject_range is (start, end), end exclusive)"),
        (lambda: prob({"embed": _adding(noise[:1], start, end)}),
         "every copy got the same draw (noise[0]); ROME gives each corrupted copy its own: row r "
         "gets noise[r]"),
        (lambda: prob({"embed": _adding(noise, start, end, replace=True)}),
         "you replaced the subject's embeddings by the noise; ROME adds it: embedding + ε"),
        (lambda: float(corrupted.max(-1).values.mean()),
         "you scored each copy's own top token; the score is p of the answer (answer_id, "
         "the clean run's top token in ROME) in the corrupted copies"),
    ], "your score is not the mean p(answer) over the corrupted copies", rtol=TOLERANCE, atol=0)
    return ("ROME's corruption, exactly: every copy gets its own draw on the subject's "
            "embeddings, and every restoration reuses the same draws (common random numbers).")


# ---------------------------------------------------------------- 02.3

def check_restored_score(restored_score) -> Feedback | None:
    """Exercise 02.3: ``restored_score(lm, prompt, subject_range, noise, answer_id, token,
    layer)`` is p(answer) with the clean hidden state at (token, layer) restored in the
    corrupted copies: one cell of ROME's heatmap."""
    return run_check("02.3", restored_score, _restored_score)


def _restored_score(student) -> str:
    lm = tiny_lm()
    ids, (start, end), noise, reference = _case(lm)
    answer, last = reference.answer_id, ids.shape[1] - 1
    corrupt = {"embed": _adding(noise, start, end)}
    prob = lambda edit: _answer_prob(lm, ids, answer, SAMPLES, edit)  # noqa: E731

    def clean(site: str) -> torch.Tensor:
        with torch.no_grad(), capture(lm, site) as acts:
            lm.model(input_ids=ids)
        return acts[site]

    def restored(site: str, at) -> float:
        return prob({**corrupt, site: Set(clean(site), at=at)})

    def reversed_restoration(site: str, token: int) -> float:  # corrupted state into clean copies
        with torch.no_grad(), patch(lm, corrupt), capture(lm, site) as acts:
            lm.model(input_ids=ids.expand(SAMPLES, -1))
        return prob({site: Set(acts[site], at=[token])})

    for token, layer in ((last, 1), (end - 1, 0)):
        site = site_name(layer)
        want = causal_trace(lm, PROMPT, SUBJECT, samples=SAMPLES, noise=reference.noise, seed=SEED,
                            target=ANSWER, positions=[token]).scores[token, layer]
        got = number(call(student, lm, PROMPT, (start, end), noise, answer, token, layer),
                     "your restored score")
        expect(got, want, [
            (lambda: reference.high_score,
             "this is the clean run's p(answer): either the subject noise is missing, or you "
             "restored every token of the layer (which gives the clean run back); keep the "
             "noise and restore one token"),
            (lambda: reference.low_score,
             "this is the corrupted run's p(answer): nothing was restored (restore the clean "
             "run's activation at that token, inside the same patch as the noise)"),
            (lambda: restored(site_name(layer, "in"), [token]),
             f"you restored the stream entering block {layer} (site {site_name(layer, 'in')}); "
             f"the hidden state at layer {layer} is the block's output, site {site}"),
            (lambda: restored(site_name(layer, "mlp"), [token]),
             f"you restored the MLP output (site {site_name(layer, 'mlp')}); this exercise "
             f"restores the hidden state, the block's output {site}"),
            (lambda: reversed_restoration(site, token),
             "you put the corrupted state into the clean run; restoring is the other way: the "
             "clean state goes into every corrupted copy"),
        ], f"your score is not p(answer) with the clean state at (token {token}, layer {layer}) "
           f"restored", rtol=TOLERANCE, atol=0)
    return ("one cell of ROME's hidden-state heatmap: the clean state at (token, layer) copied "
            "into every corrupted copy, later layers recomputed from it. causal_trace fills every "
            "cell, reusing the corrupted run before the restored token.")


__all__ = ["check_corrupted_score", "check_noise_level", "check_restored_score"]
