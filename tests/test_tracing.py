"""Causal tracing: the fast path against a literal ROME reference (one forward per cell,
row 0 clean + `samples` corrupted rows), on every family's tiny model and the default model."""

import re

import matplotlib
import numpy as np
import pytest
import torch

from conftest import hook_count
from nbtoolkit import patch, tiny_model
from nbtoolkit.core.anatomy import resolve_site
from nbtoolkit.core.modes import frozen
from nbtoolkit.tracing import (BUCKETS, TraceResult, average_results, causal_trace,
                               find_token_range, noise_level, resolve_noise, trace_kinds,
                               window_layers)
from nbtoolkit.viz.tracing import plot_average, plot_average_lines, plot_trace

TOL = 1e-5


# ---------------------------------------------------------------- the reference (ROME, literally)

def reference_trace(lm, prompt, subject, kind, samples, level, window=10, seed=1, layers=None,
                    positions=None):
    """ROME's calculate_hidden_flow: for every cell one forward of ``samples + 1`` copies of the
    prompt; row 0 clean, rows 1.. get ``RandomState(seed).randn(samples, n_subj, d) * level``
    added (float64, in place) to the subject embeddings; the restored sites copy row 0 at token t.
    Returns (scores [T, L] (NaN outside ``layers`` and ``positions``), low, high, answer id,
    subject range)."""
    ids = lm.tokenizer([prompt] * (samples + 1), return_tensors="pt")["input_ids"].to(lm.device)
    tokens = [lm.tokenizer.decode([i]) for i in ids[0].tolist()]
    b, e = find_token_range(tokens, subject)
    T, L = ids.shape[1], lm.n_layers

    def run(states):
        rs = np.random.RandomState(seed)

        def corrupt(act, ctx):
            act = act.clone()
            act[1:, b:e] += torch.from_numpy(rs.randn(act.shape[0] - 1, e - b, act.shape[2]) * level)
            return act

        def restore(t):
            def copy_row0(act, ctx):
                act = act.clone()
                act[1:, t] = act[0, t]
                return act
            return copy_row0
        interventions = {"embed": corrupt, **{site: restore(t) for t, site in states}}
        with torch.no_grad(), patch(lm, interventions):
            return lm.model(input_ids=ids).logits

    base = run([])
    answer = int(base[0, -1].softmax(-1).argmax())
    high = float(base[0, -1].softmax(-1)[answer])
    score = lambda logits: float(logits[1:, -1].softmax(-1).mean(0)[answer])
    scores = np.full((T, L), np.nan)
    for t in (range(T) if positions is None else positions):
        for layer in (range(L) if layers is None else layers):
            if kind == "hidden":
                states = [(t, f"layer.{layer}")]
            else:
                states = [(t, f"layer.{j}.{kind}") for j in window_layers(layer, L, window)]
            scores[t, layer] = score(run(states))
    return scores, score(base), high, answer, (b, e)


def peaked(family):
    """A tiny model whose LM head is scaled up, so p(answer) is far from uniform and restorations
    move it by much more than the tolerance (a test that cannot fail proves nothing)."""
    lm = tiny_model(family, seed=3)
    head, embed = lm.model.get_output_embeddings(), lm.model.get_input_embeddings()
    with torch.no_grad():
        if head.weight is embed.weight:  # tied (gpt2): scale the final norm instead
            resolve_site(lm.model, "final_norm").module.weight.mul_(8.0)
        else:
            head.weight.mul_(8.0)
    return lm


PROMPT, SUBJECT = "Big Ben is in Lo", "Ben"  # 16 byte tokens: longer than gemma3's window of 8


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma3"])
def test_fast_equals_reference_on_every_family(family):
    lm = peaked(family)
    # max_tokens=100: two blocks of 3 rows × 16 positions per forward, so several forwards per token
    level = noise_level(lm, ["Big Ben", "London"], factor=5)
    results = trace_kinds(lm, PROMPT, SUBJECT, samples=3, noise=level, window=2, max_tokens=100)
    for kind, result in results.items():
        scores, low, high, answer, span = reference_trace(lm, PROMPT, SUBJECT, kind, 3, level,
                                                          window=2)
        assert result.answer_id == answer and result.subject_range == span == (4, 7)
        assert abs(result.low_score - low) < TOL and abs(result.high_score - high) < TOL
        np.testing.assert_allclose(result.scores, scores, atol=TOL, rtol=0)
        # the grid really varies: a misplaced restoration would break the tolerance
        assert np.nanmax(np.abs(scores - low)) > 30 * TOL, (family, kind)
    # one forward per token (every restoration joins the same batch) gives the same numbers
    for kind, result in trace_kinds(lm, PROMPT, SUBJECT, samples=3, noise=level, window=2).items():
        np.testing.assert_allclose(result.scores, results[kind].scores, atol=1e-6, rtol=0)


def test_single_kind_and_positions_match_the_shared_tracer(tiny_llama):
    both = trace_kinds(tiny_llama, PROMPT, SUBJECT, kinds=("hidden", "attn"), samples=2,
                       noise=0.3, window=3)
    alone = causal_trace(tiny_llama, PROMPT, SUBJECT, kind="attn", samples=2, noise=0.3, window=3)
    np.testing.assert_array_equal(both["attn"].scores, alone.scores)
    last = causal_trace(tiny_llama, PROMPT, SUBJECT, kind="hidden", samples=2, noise=0.3,
                        positions="subject_last")
    assert np.isnan(last.scores[:6]).all() and np.isnan(last.scores[7:]).all()
    np.testing.assert_allclose(last.scores[6], both["hidden"].scores[6], atol=1e-7)
    key = causal_trace(tiny_llama, PROMPT, SUBJECT, kind="attn", samples=2, noise=0.3, window=3,
                       positions="key")
    assert np.isnan(key.scores[:6]).all() and np.isnan(key.scores[7:15]).all()
    np.testing.assert_allclose(key.scores[[6, 15]], both["attn"].scores[[6, 15]], atol=1e-7)


def test_forwards_stay_below_max_tokens(tiny_llama):
    shapes = []

    def record(act, ctx):
        shapes.append(tuple(act.shape[:2]))
        return act
    with patch(tiny_llama, {"final_norm": record}):  # every forward reaches the final norm
        causal_trace(tiny_llama, PROMPT, SUBJECT, kind="mlp", window=4, samples=4, noise=0.3,
                     max_tokens=150)
    grid_forwards = shapes[2:]  # after the clean and the corrupted run
    # at most 150 // (4 rows × 16 positions) = 2 blocks of 4 rows per forward, cache included
    assert grid_forwards and max(rows for rows, _ in grid_forwards) == 8
    assert max(seq for _, seq in grid_forwards) < len(PROMPT)  # prefixes come from the cache


def test_model_left_as_found(tiny_llama):
    before = hook_count(tiny_llama.model)
    tiny_llama.model.train()
    try:
        tiny_llama.model.model.layers[0].eval()  # a mixed state comes back as it was
        result = causal_trace(tiny_llama, PROMPT, SUBJECT, samples=2, noise=0.3, positions=[6])
        assert tiny_llama.model.training and not tiny_llama.model.model.layers[0].training
        assert hook_count(tiny_llama.model) == before and not np.isnan(result.scores[6]).any()
    finally:
        tiny_llama.model.eval()


def test_frozen_model_traces_alike_and_its_head_reads_contiguous_rows(tiny_llama):
    # ``logits_to_keep=1`` would hand the LM head a strided [rows, 1, d] view, which torch multiplies
    # row by row when the weight needs no gradient: tracing a frozen model was 1.7x slower.
    contiguous = []
    head = tiny_llama.model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda m, args: contiguous.append(args[0].is_contiguous()))
    try:
        trainable = causal_trace(tiny_llama, PROMPT, SUBJECT, samples=3, noise=0.3)
        with frozen(tiny_llama.model):
            still = causal_trace(tiny_llama, PROMPT, SUBJECT, samples=3, noise=0.3)
            tiny_llama.next_token_probs(["a prompt", "and another one"])
    finally:
        handle.remove()
    assert len(contiguous) > 3 and all(contiguous)
    np.testing.assert_array_equal(still.scores, trainable.scores)


@pytest.mark.slow
def test_default_model_fast_equals_reference(default_lm):
    prompt, subject = "The capital of France is", "France"
    layers = [0, 11, 22, 28, 29]  # the reference is one forward per cell: a subset of layers
    results = trace_kinds(default_lm, prompt, subject, kinds=("hidden", "mlp"), samples=4,
                          noise=0.35)
    assert results["hidden"].answer.strip() == "Paris"
    for kind, result in results.items():
        scores, low, high, answer, span = reference_trace(default_lm, prompt, subject, kind, 4,
                                                          0.35, layers=layers)
        assert result.answer_id == answer and result.subject_range == span
        assert abs(result.low_score - low) < TOL and abs(result.high_score - high) < TOL
        np.testing.assert_allclose(result.scores[:, layers], scores[:, layers], atol=TOL, rtol=0)
    assert results["hidden"].high_score - results["hidden"].low_score > 0.1


# ---------------------------------------------------------------- pieces

def test_window_is_romes_code_convention():
    assert window_layers(15, 30, 10) == list(range(10, 20))  # l-5 .. l+4
    assert window_layers(0, 30, 10) == list(range(0, 5))
    assert window_layers(29, 30, 10) == list(range(24, 30))
    assert window_layers(10, 30, 5) == [8, 9, 10, 11, 12]
    assert window_layers(4, 30, 1) == [4]


def test_find_token_range_matches_characters():
    tokens = ["The", " E", "iffel", " Tower", " is", " in"]
    assert find_token_range(tokens, "Eiffel Tower") == (1, 4)
    assert find_token_range(tokens, "iffel") == (2, 3)
    assert find_token_range(["<bos>", "Big", " Ben"], "Ben") == (2, 3)
    assert find_token_range(tokens, "Paris") == (-1, -1)


def test_noise_level_is_one_std_over_all_subject_token_embeddings(tiny_llama):
    subjects = ["Rome", "Big Ben"]
    weight = tiny_llama.model.get_input_embeddings().weight.detach()
    ids = [i for s in subjects for i in tiny_llama.tokenizer(s, add_special_tokens=False)["input_ids"]]
    expected = 3 * float(weight[ids].std())
    assert noise_level(tiny_llama, subjects) == pytest.approx(expected, rel=1e-6)
    assert resolve_noise(tiny_llama, "s2", subjects) == pytest.approx(expected * 2 / 3, rel=1e-6)
    assert resolve_noise(tiny_llama, 0.25) == 0.25


def test_noise_draw_is_romes(tiny_llama):
    level = 0.3
    draw = np.random.RandomState(7).randn(2, 3, tiny_llama.d_model) * level
    seen = []

    def record(act, ctx):
        seen.append(act.detach().clone())
        return act
    with patch(tiny_llama, {"embed": record}):
        causal_trace(tiny_llama, PROMPT, SUBJECT, samples=2, noise=level, seed=7, positions=[15])
    clean, corrupted = seen[0], seen[1]  # the clean run (1 row), then the corrupted run (2 rows)
    expected = (clean[0, 4:7].double() + torch.from_numpy(draw)).float()
    torch.testing.assert_close(corrupted[:, 4:7], expected, atol=0, rtol=0)
    torch.testing.assert_close(corrupted[:, :4], clean[:, :4].expand(2, 4, -1))


def _result(scores, low=0.1, high=0.9, span=(1, 4)):
    scores = np.asarray(scores, dtype=float)
    return TraceResult(scores=scores, low_score=low, high_score=high,
                       tokens=[f"t{i}" for i in range(len(scores))], subject_range=span,
                       kind="hidden", answer=" x", answer_id=0)


def test_average_buckets_by_hand():
    # 7 tokens: 0 before, 1-3 subject, 4 first after, 5 further, 6 last
    a = _result(np.arange(14).reshape(7, 2), low=0.0, high=1.0)
    # 5 tokens: subject 1 token (1), 2 first after, 3 further, 4 last
    b = _result(10 * np.ones((5, 2)), low=1.0, high=0.5, span=(1, 2))
    avg = average_results([a, b])
    assert avg.total_effect == pytest.approx((1.0 + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(avg.mean[BUCKETS.index("first subject token")], [(2 + 10) / 2, (3 + 10) / 2])
    np.testing.assert_allclose(avg.mean[BUCKETS.index("middle subject tokens")], [4, 5])  # a only
    np.testing.assert_allclose(avg.mean[BUCKETS.index("last subject token")], [(6 + 10) / 2, (7 + 10) / 2])
    np.testing.assert_allclose(avg.mean[BUCKETS.index("last token")], [(12 + 10) / 2, (13 + 10) / 2])
    np.testing.assert_allclose(avg.std[BUCKETS.index("last token")], [1, 1.5])
    assert list(avg.count) == [2, 1, 2, 2, 2, 2]
    layer, value = avg.peak("last token")
    assert layer == 1 and value == pytest.approx(11.5 - 0.5)
    frame = avg.to_frame()
    assert len(frame) == 6 * 2 and {"aie", "ci_low", "ci_high"} <= set(frame.columns)


def test_result_frame_and_figures(tiny_llama):
    result = causal_trace(tiny_llama, PROMPT, SUBJECT, kind="mlp", samples=2, noise=0.3, window=2)
    frame = result.to_frame()
    assert len(frame) == 16 * 3 and frame["is_subject"].sum() == 3 * 3
    assert isinstance(plot_trace(result), matplotlib.figure.Figure)
    avg = average_results([result, result])
    assert isinstance(plot_average(avg), matplotlib.figure.Figure)
    assert isinstance(plot_average_lines(avg), matplotlib.figure.Figure)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("prompt, subject, kwargs, message", [
    ("Big Ben is in Lo", "Eiffel", {}, "'Eiffel' does not occur in prompt 'Big Ben is in Lo'"),
    ("Big Ben is in Lo", "in Lo", {}, "ends at the last token"),
    ("", "Ben", {}, "prompt must be a non-empty string"),
    ("Big Ben is in Lo", "", {}, "subject must be a non-empty string"),
    ("Big Ben is in Lo" * 20, "Ben", {}, "longer than the model's context of 256"),
    ("Big Ben is in Lo", "Ben", {"samples": 0}, "samples must be an int >= 1"),
    ("Big Ben is in Lo", "Ben", {"kind": "mlps"}, "kind must be one of"),
    ("Big Ben is in Lo", "Ben", {"noise": "x3"}, "noise must be 's<factor>'"),
    ("Big Ben is in Lo", "Ben", {"window": 0}, "window must be an int >= 1"),
    ("Big Ben is in Lo", "Ben", {"target": 10**6}, "outside the vocabulary"),
    ("Big Ben is in Lo", "Ben", {"positions": [40]}, "outside the prompt"),
])
def test_bad_input_raises(tiny_llama, prompt, subject, kwargs, message):
    options = dict(noise=0.3, samples=2) | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        causal_trace(tiny_llama, prompt, subject, **options)
    assert hook_count(tiny_llama.model) == 0
