"""Notebook 09's exercise checks (nbtoolkit.exercises.lens): a correct answer, written as a
student would with the model's own modules, passes. The anticipated mistakes (WRONG) are run by
tests/test_exercises.py, with notebook 09's own solutions."""

import pytest
import torch

import nbtoolkit as nb
from nbtoolkit.exercises.feedback import NOT_DONE
from nbtoolkit.exercises.lens import (check_head_attribution, check_induction_score,
                                      check_lens_of_layer)


def stream(lm, prompt, site):
    with torch.no_grad(), nb.capture(lm, site) as acts:
        lm.model(**lm.encode(prompt))
    return acts[site][0]


# ---------------------------------------------------------------- 09.1

def lens_of_layer(lm, prompt, layer):
    h = stream(lm, prompt, nb.site_name(layer))
    with torch.no_grad():
        return lm.model.lm_head(lm.model.model.norm(h)).log_softmax(-1)


def no_norm(lm, prompt, layer):
    with torch.no_grad():
        return lm.model.lm_head(stream(lm, prompt, nb.site_name(layer))).log_softmax(-1)


def hugging_face_index(lm, prompt, layer):
    with torch.no_grad():
        h = lm.model(**lm.encode(prompt), output_hidden_states=True).hidden_states[layer][0]
        return lm.model.lm_head(lm.model.model.norm(h)).log_softmax(-1)


def probabilities(lm, prompt, layer):
    return lens_of_layer(lm, prompt, layer).exp()


def logits(lm, prompt, layer):
    h = stream(lm, prompt, nb.site_name(layer))
    with torch.no_grad():
        return lm.model.lm_head(lm.model.model.norm(h))


def mlp_only(lm, prompt, layer):
    h = stream(lm, prompt, nb.site_name(layer, "mlp"))
    with torch.no_grad():
        return lm.model.lm_head(lm.model.model.norm(h)).log_softmax(-1)


def normed_twice(lm, prompt, layer):
    with torch.no_grad():
        h = lm.model(**lm.encode(prompt), output_hidden_states=True).hidden_states[layer + 1][0]
        return lm.model.lm_head(lm.model.model.norm(h)).log_softmax(-1)


# ---------------------------------------------------------------- 09.2

def head_attribution(lm, prompt, layer, head, answer_id, distractor_id, *, own_scale=False,
                     whole_layer=False, no_scale=False, answer_only=False):
    m = lm.model
    z = stream(lm, prompt, nb.site_name(layer, "attn.heads"))[-1]   # [heads, d_head]
    d_head = z.shape[-1]
    w_o = m.model.layers[layer].self_attn.o_proj.weight
    if whole_layer:
        out = w_o @ z.reshape(-1)
    else:
        out = w_o[:, head * d_head:(head + 1) * d_head] @ z[head]
    final = stream(lm, prompt, nb.site_name(lm.n_layers - 1))[-1]
    scale_of = out if own_scale else final
    norm = m.model.norm
    scale = norm.weight / torch.sqrt(scale_of.pow(2).mean() + norm.variance_epsilon)
    if no_scale:
        scale = torch.ones_like(scale)
    w_u = m.lm_head.weight
    direction = w_u[answer_id] - (0 if answer_only else w_u[distractor_id])
    with torch.no_grad():
        return float((out * scale) @ direction)


def hf(**options):
    def wrong(*args):
        return head_attribution(*args, **options)
    wrong.__name__ = "_".join(options)
    return wrong


def swapped(lm, prompt, layer, head, a, d):
    return head_attribution(lm, prompt, layer, head, d, a)


def next_head(lm, prompt, layer, head, a, d):
    return head_attribution(lm, prompt, layer, (head + 1) % 4, a, d)


# ---------------------------------------------------------------- 09.3

def score_heads(weights, seq_len):
    q = torch.arange(weights.shape[-1] - seq_len, weights.shape[-1])
    return weights[:, q, q - seq_len + 1].mean(-1)


def duplicate(weights, seq_len):
    q = torch.arange(weights.shape[-1] - seq_len, weights.shape[-1])
    return weights[:, q, q - seq_len].mean(-1)


def previous(weights, seq_len):
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def arena_diagonal(weights, seq_len):
    return weights.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1).mean(-1)


def maximum(weights, seq_len):
    q = torch.arange(weights.shape[-1] - seq_len, weights.shape[-1])
    return weights[:, q, q - seq_len + 1].max(-1).values


def summed(weights, seq_len):
    q = torch.arange(weights.shape[-1] - seq_len, weights.shape[-1])
    return weights[:, q, q - seq_len + 1].sum(-1)


CHECKS = {"09.1": (check_lens_of_layer, lens_of_layer), "09.2": (check_head_attribution, head_attribution),
          "09.3": (check_induction_score, score_heads)}


@pytest.mark.parametrize("number", CHECKS)
def test_a_correct_answer_passes(number):
    check, solution = CHECKS[number]
    feedback = check(solution)
    assert feedback.passed, str(feedback)


@pytest.mark.parametrize("number", CHECKS)
def test_the_stub_is_not_done_yet(number):
    def stub(*args):
        raise NotImplementedError()
    assert CHECKS[number][0](stub).status == NOT_DONE


WRONG = [
    ("09.1", no_norm, "you unembedded the raw stream"),
    ("09.1", hugging_face_index, "this is the stream entering block 1"),
    ("09.1", probabilities, "these are probabilities"),
    ("09.1", logits, "these are logits"),
    ("09.1", mlp_only, "only what the MLP of block 1 wrote"),
    ("09.1", normed_twice, "you normalised twice"),
    ("09.2", hf(no_scale=True), "dotted the head's output with the logit direction directly"),
    ("09.2", hf(own_scale=True), "normalised the head's output by its own RMS"),
    ("09.2", hf(whole_layer=True), "the whole attention layer 1"),
    ("09.2", hf(answer_only=True), "contribution to logit(answer) alone"),
    ("09.2", swapped, "the sign is flipped"),
    ("09.2", next_head, "this is head 3's contribution"),
    ("09.3", duplicate, "attention to the previous occurrence itself"),
    ("09.3", previous, "this is the previous-token score"),
    ("09.3", arena_diagonal, "starts two rows early"),
    ("09.3", maximum, "you took the maximum"),
    ("09.3", summed, "you summed"),
]
