"""ROME severing: the fast path against a literal reference (per cell a record pass and a
restoration pass of row 0 clean + `samples` corrupted rows), on every family's tiny model and the
default model."""

import re

import matplotlib
import numpy as np
import pytest
import torch

from conftest import hook_count
from nbtoolkit import patch
from nbtoolkit.tracing import (SEVERED, SeveringResult, average_severed, causal_trace,
                               find_token_range, noise_level, severed_trace)
from nbtoolkit.viz.tracing import plot_severed
from test_tracing import PROMPT, SUBJECT, TOL, peaked


def reference_severed(lm, prompt, subject, sever, samples, level, token=None, seed=1,
                      layers=None):
    """ROME's trace_with_repatch for every layer, one cell at a time, both passes with the same
    noise draw: a record pass keeps every ``sever`` output of the corrupted rows; the restoration
    pass copies row 0's block output at (t, l) into rows 1.. and writes the recorded outputs back
    at t in EVERY layer, as ROME does (at or below l that changes nothing).
    Returns (scores [L] (NaN outside ``layers``), low score, restored token)."""
    ids = lm.tokenizer([prompt] * (samples + 1), return_tensors="pt")["input_ids"]
    tokens = [lm.tokenizer.decode([i]) for i in ids[0].tolist()]
    b, e = find_token_range(tokens, subject)
    T, L = ids.shape[1], lm.n_layers
    t = e - 1 if token is None else token % T

    def corrupt(act, ctx):
        rs = np.random.RandomState(seed)  # re-seeded per forward: the same draw in both passes
        act = act.clone()
        act[1:, b:e] += torch.from_numpy(rs.randn(samples, e - b, act.shape[2]) * level)
        return act

    def run(edits):
        with torch.no_grad(), patch(lm, {"embed": corrupt, **edits}):
            return lm.model(input_ids=ids).logits[:, -1].softmax(-1)

    def record(store, site):
        def keep(act, ctx):
            store[site] = act[1:, t].clone()
            return act
        return keep

    def write(values):
        def put(act, ctx):
            act = act.clone()
            act[1:, t] = values
            return act
        return put

    def restore(act, ctx):
        act = act.clone()
        act[1:, t] = act[0, t]
        return act

    base = run({})
    answer = int(base[0].argmax())
    score = lambda probs: float(probs[1:, answer].mean())
    scores = np.full(L, np.nan)
    for layer in (range(L) if layers is None else layers):
        severed = {}
        if sever != "none":
            recorded = {}
            run({f"layer.{j}.{sever}": record(recorded, f"layer.{j}.{sever}") for j in range(L)})
            severed = {site: write(values) for site, values in recorded.items()}
        scores[layer] = score(run({**severed, f"layer.{layer}": restore}))
    return scores, score(base), t


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma3"])
def test_fast_equals_reference_on_every_family(family):
    lm = peaked(family)
    level = noise_level(lm, ["Big Ben", "London"], factor=5)
    # max_tokens=100: two blocks of 3 rows × 16 positions per forward, so several forwards
    chunked = severed_trace(lm, PROMPT, SUBJECT, samples=3, noise=level, max_tokens=100)
    whole = severed_trace(lm, PROMPT, SUBJECT, samples=3, noise=level)
    last = severed_trace(lm, PROMPT, SUBJECT, samples=3, noise=level, token=-1)
    assert chunked.token_index == [6] and last.token_index == [15]  # last subject token, last token
    for sever in SEVERED:
        scores, low, _ = reference_severed(lm, PROMPT, SUBJECT, sever, 3, level)
        assert abs(chunked.low_scores[0] - low) < TOL
        np.testing.assert_allclose(chunked.scores[sever][0], scores, atol=TOL, rtol=0)
        np.testing.assert_allclose(whole.scores[sever][0], scores, atol=TOL, rtol=0)
        scores, _, _ = reference_severed(lm, PROMPT, SUBJECT, sever, 3, level, token=-1)
        np.testing.assert_allclose(last.scores[sever][0], scores, atol=TOL, rtol=0)
    # severing really changes the scores (a misplaced one would show); gemma3's sliding window
    # (8 tokens) hides the subject from the last token in most layers, so check both tokens
    for sever in ("mlp", "attn"):
        change = [np.abs(r.scores[sever] - r.scores["none"]).max() for r in (chunked, last)]
        assert max(change) > 10 * TOL, (family, sever, change)


def test_plain_curve_is_the_causal_trace(tiny_llama):
    result = severed_trace(tiny_llama, PROMPT, SUBJECT, samples=2, noise=0.3)
    trace = causal_trace(tiny_llama, PROMPT, SUBJECT, samples=2, noise=0.3, positions="subject_last")
    np.testing.assert_allclose(result.scores["none"][0], trace.scores[6], atol=1e-6, rtol=0)
    # before the subject nothing can be restored: every score is the corrupted one
    before = severed_trace(tiny_llama, PROMPT, SUBJECT, samples=2, noise=0.3, token=1)
    for sever in SEVERED:
        np.testing.assert_array_equal(before.scores[sever][0], before.low_scores[0])


def test_average_stacks_facts_and_aie_by_hand(tiny_llama):
    facts = [dict(prompt=PROMPT, subject=SUBJECT, attribute="x"),
             dict(prompt="Big Ben is in London", subject="Big Ben", attribute="y")]
    average = average_severed(tiny_llama, facts, samples=2, noise=0.3, only_correct=False,
                              progress=False)
    single = severed_trace(tiny_llama, facts[1]["prompt"], "Big Ben", samples=2, noise=0.3)
    assert average.n_facts == 2 and average.prompts == [PROMPT, facts[1]["prompt"]]
    np.testing.assert_array_equal(average.scores["mlp"][1], single.scores["mlp"][0])
    effects = average.scores["attn"] - average.low_scores[:, None]
    np.testing.assert_allclose(average.aie["attn"], effects.mean(0))
    np.testing.assert_allclose(average.ci95["attn"], 1.96 * effects.std(0) / np.sqrt(2))
    frame = average.to_frame()
    assert len(frame) == 3 * tiny_llama.n_layers and set(frame.sever) == set(SEVERED)
    assert isinstance(plot_severed(average), matplotlib.figure.Figure)
    # the tiny model answers neither fact's attribute: nothing left to average
    with pytest.raises(ValueError, match="none of the 2 facts is answered correctly"):
        average_severed(tiny_llama, facts, samples=2, noise=0.3, progress=False)


@pytest.mark.slow
def test_default_model_fast_equals_reference(default_lm):
    prompt, subject = "The capital of France is", "France"
    layers = [0, 9, 18, 28, 29]  # the reference is two forwards per cell: a subset of layers
    result = severed_trace(default_lm, prompt, subject, samples=3, noise=0.35)
    assert result.answers[0].strip() == "Paris"
    for sever in SEVERED:
        scores, _, _ = reference_severed(default_lm, prompt, subject, sever, 3, 0.35,
                                           layers=layers)
        np.testing.assert_allclose(result.scores[sever][0, layers], scores[layers], atol=TOL,
                                   rtol=0)
    assert result.high_scores[0] - result.low_scores[0] > 0.1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"token": 40}, ValueError, "outside the prompt's 16 tokens"),
    ({"token": "last"}, TypeError, "token must be None (the last subject token) or a token index"),
    ({"samples": 0}, ValueError, "samples must be an int >= 1"),
    ({"noise": "x3"}, ValueError, "noise must be 's<factor>'"),
])
def test_bad_input_raises_and_leaves_no_hooks(tiny_llama, kwargs, error, message):
    options = dict(noise=0.3, samples=2) | kwargs
    with pytest.raises(error, match=re.escape(message)):
        severed_trace(tiny_llama, PROMPT, SUBJECT, **options)
    with pytest.raises(ValueError, match="at least one fact"):
        average_severed(tiny_llama, [], noise=0.3)
    assert hook_count(tiny_llama.model) == 0 and not tiny_llama.model.training
