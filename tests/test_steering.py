"""Tests for nbtoolkit.selfie.steering: directions from contrasting prompts, steered generation."""

import pytest
import torch

import nbtoolkit as nb
from nbtoolkit.selfie import steering

POSITIVE = ["a lovely day", "I love it so much", "wonderful"]
NEGATIVE = ["a dreadful night", "I hate this", "awful, just awful"]
SITE = "layer.1"


@pytest.fixture(scope="module")
def lm():
    return nb.tiny_model("llama", seed=3)


@pytest.fixture(scope="module")
def vector(lm):
    return torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0)) * 4


@torch.no_grad()
def _one(lm, prompt, site):
    """One prompt, no padding: its activation at ``site`` ``[seq, d]``."""
    with nb.capture(lm, site) as acts:
        lm.model(**lm.tokenizer(prompt, return_tensors="pt"))
    return acts[site][0]


@torch.no_grad()
def _hand_greedy(lm, prompt, vector, scale, positions, steps):
    """Greedy decoding by full forwards (no cache); ``scale * vector`` added at ``positions``
    of every forward (``None``: all positions)."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    for _ in range(steps):
        def add(act, ctx):
            out = act.clone()
            cols = slice(None) if positions is None else positions
            out[:, cols] = out[:, cols] + scale * vector
            return out
        with nb.patch(lm, {SITE: add}):
            token = lm.model(input_ids=ids).logits[0, -1].argmax()
        ids = torch.cat([ids, token.view(1, 1)], 1)
        if int(token) == lm.tokenizer.eos_token_id:
            break
    prompt_len = len(lm.tokenizer(prompt)["input_ids"])
    return lm.tokenizer.decode(ids[0, prompt_len:], skip_special_tokens=True)


@pytest.mark.parametrize("reduce", ["mean", "last"])
def test_mean_activation_matches_one_prompt_at_a_time(lm, reduce):
    # batch_size 2 over three prompts of different lengths: left padding and a ragged last batch
    got = steering.mean_activation(lm, POSITIVE, SITE, reduce=reduce, batch_size=2)
    per = [_one(lm, p, SITE) for p in POSITIVE]
    per = [a.mean(0) if reduce == "mean" else a[-1] for a in per]
    torch.testing.assert_close(got, torch.stack(per).mean(0), rtol=1e-5, atol=1e-5)


def test_direction_is_difference_of_means(lm):
    got = steering.direction(lm, POSITIVE, NEGATIVE, SITE)
    pos = torch.stack([_one(lm, p, SITE).mean(0) for p in POSITIVE]).mean(0)
    neg = torch.stack([_one(lm, p, SITE).mean(0) for p in NEGATIVE]).mean(0)
    torch.testing.assert_close(got, pos - neg, rtol=1e-5, atol=1e-5)
    assert got.dtype == lm.model.dtype


def test_every_step_adds_to_every_forward(lm, vector):
    prompt = "hello world"
    got = steering.steer(lm, prompt, vector, SITE, scale=2.0, max_new_tokens=6)
    assert got == [_hand_greedy(lm, prompt, vector, 2.0, None, 6)]


def test_prompt_only_adds_to_prompt_positions_only(lm, vector):
    prompt = "hello world"
    prompt_len = len(lm.tokenizer(prompt)["input_ids"])
    got = steering.steer(lm, prompt, vector, SITE, scale=2.0, prompt_only=True, max_new_tokens=6)
    assert got == [_hand_greedy(lm, prompt, vector, 2.0, list(range(prompt_len)), 6)]


def test_schedules_differ_and_scale_zero_is_unsteered(lm, vector):
    prompt = "hello world"
    every = steering.steer(lm, prompt, vector, SITE, scale=2.0, max_new_tokens=6)
    prompt_only = steering.steer(lm, prompt, vector, SITE, scale=2.0, prompt_only=True,
                                 max_new_tokens=6)
    plain = lm.generate(prompt, max_new_tokens=6)
    assert every != prompt_only
    assert every != plain and prompt_only != plain
    assert steering.steer(lm, prompt, vector, SITE, scale=0.0, max_new_tokens=6) == plain


def test_newest_token_only_with_negative_at(lm, vector):
    prompt = "hello world"
    got = steering.steer(lm, prompt, vector, SITE, scale=2.0, at=-1, max_new_tokens=4)
    # at=-1 on the prompt pass is the last prompt token, on each step the new token
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(4):
            marks = list(range(len(lm.tokenizer(prompt)["input_ids"]) - 1, ids.shape[1]))
            def add(act, ctx, marks=marks):
                act = act.clone()
                act[:, marks] += 2.0 * vector
                return act
            with nb.patch(lm, {SITE: add}):
                token = lm.model(input_ids=ids).logits[0, -1].argmax()
            ids = torch.cat([ids, token.view(1, 1)], 1)
            out.append(int(token))
            if out[-1] == lm.tokenizer.eos_token_id:
                break
    assert got == [lm.tokenizer.decode(out, skip_special_tokens=True)]


def test_batched_steering_agrees_with_one_by_one(lm, vector):
    prompts = ["hi", "hello there, world"]  # different lengths: left padding
    batched = steering.steer(lm, prompts, vector, SITE, scale=1.5, max_new_tokens=5)
    single = [steering.steer(lm, p, vector, SITE, scale=1.5, max_new_tokens=5)[0] for p in prompts]
    assert batched == single


def test_word_probs(lm, vector):
    prompts = ["hello", "good morning"]
    words = {"a": ["a", "b"], "z": ["z"]}
    result = steering.word_probs(lm, prompts, words, vector, SITE, scales=[0.0, 3.0])
    assert isinstance(result, steering.WordProbs) and result.probs.shape == (2, 2, 2)
    assert (result.scales, result.groups, result.prompts) == ([0.0, 3.0], ["a", "z"], prompts)
    frame = result.to_frame()
    assert list(frame.columns) == ["prompt", "scale", "group", "prob"]
    assert len(frame) == 2 * 2 * 2
    ids = [lm.token_id("a"), lm.token_id("b")]
    plain = lm.next_token_probs(prompts)[:, ids].sum(-1)
    with nb.patch(lm, {SITE: nb.Add(vector, scale=3.0)}):
        steered = lm.next_token_probs(prompts)[:, ids].sum(-1)
    a = frame[frame.group == "a"].set_index(["scale", "prompt"]).prob
    for i, prompt in enumerate(prompts):
        assert a[(0.0, prompt)] == pytest.approx(float(plain[i]), rel=1e-5)
        assert a[(3.0, prompt)] == pytest.approx(float(steered[i]), rel=1e-5)
    assert float(steered[0]) != pytest.approx(float(plain[0]), rel=1e-3)


def test_generations_table(lm, vector):
    result = steering.generations(lm, ["hello"], vector, SITE, scales=[0, 2.0], max_new_tokens=3)
    assert list(result.texts) == [(0, "none"), (2.0, "every step"), (2.0, "prompt only")]
    frame = result.to_frame()
    assert list(frame.columns) == ["prompt", "scale", "schedule", "text"]
    assert list(frame.schedule) == ["none", "every step", "prompt only"]
    assert frame.text.iloc[0] == lm.generate("hello", max_new_tokens=3)[0]
    assert frame.text.iloc[1] == steering.steer(lm, "hello", vector, SITE, scale=2.0,
                                                max_new_tokens=3)[0]


@pytest.mark.parametrize("call,error,match", [
    (lambda lm, v: steering.steer(lm, "hi", v[:5], SITE), ValueError, "shape"),
    (lambda lm, v: steering.steer(lm, "hi", v.tolist(), SITE), TypeError, "torch.Tensor"),
    (lambda lm, v: steering.steer(lm, [], v, SITE), ValueError, "non-empty"),
    (lambda lm, v: steering.mean_activation(lm, ["hi"], SITE, reduce="max"), ValueError, "reduce"),
    (lambda lm, v: steering.mean_activation(lm, ["hi"], "layer.1.attn.heads"), ValueError,
     r"\[batch, seq, d\]"),
    (lambda lm, v: steering.direction(lm, ["hi"], [], SITE), ValueError, "non-empty"),
    (lambda lm, v: steering.steer(lm, "hi", v, "layer.9"), ValueError, "does not exist"),
    (lambda lm, v: steering.word_probs(lm, ["hi"], {}, v, SITE, [1.0]), ValueError, "words"),
])
def test_bad_input_raises(lm, vector, call, error, match):
    with pytest.raises(error, match=match):
        call(lm, vector)
