"""The bad-input catalogue: one row per bad input or fault, each asserting the exact error type,
that the message names the bad value, and that nothing is left behind (hooks counted, run
folders intact, no temporary folders). Then one test per defect of issue 19 (parts 2, 3, 7-10),
each failing before its fix. The README's "What nbtoolkit guarantees" is what this file checks.
Tiny models only, except the subject-span test, which reads the default model's tokenizer."""

import json
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

import nbtoolkit
from conftest import hook_count
from nbtoolkit import Add, Noise, Overlay, Set, Zero, capture, das, patch, probes, tiny_model
from nbtoolkit.ccs import runs
from nbtoolkit.cli import ccs as cli
from nbtoolkit.core.lm import token_indices
from nbtoolkit import circuits
from nbtoolkit.core.sweeps import logit_difference
from nbtoolkit.tasks import ioi
from nbtoolkit.tracing import causal_trace
from nbtoolkit.tracing.tracer import subject_span
from nbtoolkit.viz.widgets import TrainingMonitor, token_view

D = 64  # tiny models' width
NAN = float("nan")


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama", n_layers=2)


def _forward(lm, prompts=("abcdef", "abcdef")):
    with torch.no_grad():
        return lm.model(**lm.encode(list(prompts))).logits


def _raises(call, error, fragment: str, *args):
    """``call(*args)`` raises exactly ``error`` (or a subclass) with ``fragment`` in its message."""
    with pytest.raises(error) as caught:
        call(*args)
    assert fragment in str(caught.value), str(caught.value)


# ------------------------------------------------------------ interventions, at construction

BAD_INTERVENTIONS = {
    "Set nan value": (lambda: Set(torch.full((D,), NAN)), ValueError, "NaN or infinite"),
    "Set inf value": (lambda: Set(torch.full((D,), math.inf)), ValueError, "NaN or infinite"),
    "Set string value": (lambda: Set("zeros"), TypeError, "got str"),
    "Set int tensor": (lambda: Set(torch.zeros(D, dtype=torch.long)), TypeError, "torch.int64"),
    "Set list value": (lambda: Set([0.0] * D), TypeError, "got list"),
    "Add nan vector": (lambda: Add(torch.full((D,), NAN)), ValueError, "NaN or infinite"),
    "Add nan scale": (lambda: Add(torch.ones(D), scale=NAN), ValueError, "got nan"),
    "Add inf scale": (lambda: Add(torch.ones(D), scale=math.inf), ValueError, "got inf"),
    "Add string scale": (lambda: Add(torch.ones(D), scale="2"), ValueError, "got '2'"),
    "Add bool scale": (lambda: Add(torch.ones(D), scale=True), ValueError, "got True"),
    "Add tensor scale": (lambda: Add(torch.ones(D), scale=torch.tensor(2.0)), ValueError,
                         "got tensor"),
    "Noise negative std": (lambda: Noise(-1.0), ValueError, "got -1.0"),
    "Noise nan std": (lambda: Noise(NAN), ValueError, "got nan"),
    "Noise string std": (lambda: Noise("big"), ValueError, "got 'big'"),
    "Noise float seed": (lambda: Noise(1.0, seed=1.5), TypeError, "got 1.5"),
    "Noise None seed": (lambda: Noise(1.0, seed=None), TypeError, "got None"),
    "Overlay strength 5 normalized": (lambda: Overlay(torch.ones(D), strength=5), ValueError,
                                      "strength 5 is outside [0, 1]"),
    "Overlay negative strength": (lambda: Overlay(torch.ones(D), strength=-0.1), ValueError,
                                  "strength -0.1"),
    "Overlay nan strength": (lambda: Overlay(torch.ones(D), strength=NAN), ValueError, "got nan"),
    "Overlay unknown mode": (lambda: Overlay(torch.ones(D), mode="mix"), ValueError, "'mix'"),
    "Overlay nan value": (lambda: Overlay(torch.full((D,), NAN)), ValueError, "NaN"),
    "at True": (lambda: Zero(at=True), TypeError, "got True"),
    "at False": (lambda: Zero(at=False), TypeError, "got False"),
    "heads empty list": (lambda: Zero(heads=[]), ValueError, "got []"),
    "heads empty tuple": (lambda: Zero(heads=()), ValueError, "got ()"),
    "heads string": (lambda: Zero(heads="0"), TypeError, "got '0'"),
    "heads floats": (lambda: Zero(heads=[1.5]), TypeError, "got [1.5]"),
    "heads bool": (lambda: Zero(heads=True), TypeError, "got True"),
    "Interchange non-subspace": (lambda: das.Interchange("rot", torch.zeros(1, 1, D)), TypeError,
                                 "got str"),
    "Interchange source width": (lambda: das.Interchange(das.RotatedSubspace(D, 2),
                                                         torch.zeros(1, 1, D + 1)), ValueError,
                                 f"width {D + 1}"),
    "Interchange source list": (lambda: das.Interchange(das.RotatedSubspace(D, 2), [0.0]),
                                TypeError, "got list"),
}


@pytest.mark.parametrize("name", BAD_INTERVENTIONS)
def test_bad_intervention_is_refused_when_built(name):
    _raises(*BAD_INTERVENTIONS[name])


# ------------------------------------------------------------ interventions, during a forward

def _double(act, ctx):
    return act.double()


BAD_PATCHES = {
    "position past the end": (lambda: Zero(at=[40]), ValueError, "position 40 is out of range"),
    "negative position past the start": (lambda: Zero(at=-40), ValueError, "position -40"),
    "slice past the end": (lambda: Zero(at=slice(30, 40)), ValueError, "slice(30, 40, None)"),
    "slice with step 0": (lambda: Zero(at=slice(None, None, 0)), TypeError, "slice(None, None, 0)"),
    "slice of floats": (lambda: Zero(at=slice(1.5, 3)), TypeError, "slice(1.5, 3, None)"),
    "at string": (lambda: Zero(at="first"), TypeError, "'first'"),
    "at float": (lambda: Zero(at=3.0), TypeError, "3.0"),
    "at set": (lambda: Zero(at={1, 2}), TypeError, "{1, 2}"),
    "at list of floats": (lambda: Zero(at=[1.5]), TypeError, "[1.5]"),
    "at list of bools": (lambda: Zero(at=[True]), TypeError, "[True]"),
    "at ragged rows": (lambda: Zero(at=[[1], [2, 3]]), ValueError, "lengths [1, 2]"),
    "at rows for another batch": (lambda: Zero(at=[[1]]), ValueError, "1 per-row lists"),
    "at row of floats": (lambda: Zero(at=[[1.0], [2.0]]), TypeError, "[1.0]"),
    "value too wide": (lambda: Set(torch.zeros(1, 6, D + 1)), ValueError, f"{(1, 6, D + 1)}"),
    "value of 3 dims wrong": (lambda: Set(torch.zeros(6, D)), ValueError, f"{(6, D)}"),
    "value float64": (lambda: Set(torch.zeros(D, dtype=torch.float64)), ValueError,
                      "dtype torch.float64"),
    "value on meta": (lambda: Set(torch.zeros(D, device="meta")), ValueError, "is on meta"),
    "value batch 3": (lambda: Set(torch.zeros(3, 6, D)), ValueError, "value has batch 3"),
    "value of another length": (lambda: Set(torch.zeros(1, 9, D), at=-1), ValueError,
                                "value covers 9 positions"),
    "value shorter than the forward": (lambda: Set(torch.zeros(1, 4, D), at=[0, 1]), ValueError,
                                       "value covers 4 positions"),
    "Add vector too wide": (lambda: Add(torch.ones(D + 2)), ValueError, f"{(D + 2,)}"),
    "Overlay value too wide": (lambda: Overlay(torch.ones(D + 2)), ValueError, f"{(D + 2,)}"),
    "heads on a residual site": (lambda: Zero(heads=[0]), ValueError, "has no heads"),
    "callable returns a slice": (lambda: (lambda act, ctx: act[:, :1]), ValueError,
                                 "a tensor of shape (2, 1"),
    "callable returns float64": (lambda: _double, ValueError, "dtype torch.float64"),
    "callable returns None": (lambda: (lambda act, ctx: None), ValueError, "returned NoneType"),
    "callable returns a list": (lambda: (lambda act, ctx: [act]), ValueError, "returned list"),
    "callable raises": (lambda: (lambda act, ctx: 1 / 0), ZeroDivisionError, "division by zero"),
}


@pytest.mark.parametrize("name", BAD_PATCHES)
def test_bad_patch_fails_in_the_forward_and_leaves_no_hooks(lm, name):
    make, error, fragment = BAD_PATCHES[name]
    before = hook_count(lm.model)

    def run():
        with patch(lm, {"layer.0": make()}):
            _forward(lm)
    _raises(run, error, fragment)
    assert hook_count(lm.model) == before


BAD_HEAD_PATCHES = {
    "head out of range": (lambda: Zero(heads=[9]), ValueError, "heads [9] out of range"),
    "negative head out of range": (lambda: Zero(heads=-9), ValueError, "heads [-9] out of range"),
}


@pytest.mark.parametrize("name", BAD_HEAD_PATCHES)
def test_bad_heads_fail_on_a_head_site(lm, name):
    make, error, fragment = BAD_HEAD_PATCHES[name]
    before = hook_count(lm.model)
    with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        with patch(lm, {"layer.0.attn.heads": make()}):
            _forward(lm)
    assert hook_count(lm.model) == before


BAD_CONTEXTS = {
    "misspelled site": (lambda m: patch(m, {"layer.0.mpl": Zero()}), ValueError, "layer.0.mlp"),
    "layer past the last": (lambda m: patch(m, {"layer.7": Zero()}), ValueError,
                            "layer 7 does not exist"),
    "unknown capture site": (lambda m: capture(m, ["layer.0", "nope"]), ValueError, "'nope'"),
    "site as an int": (lambda m: capture(m, [3]), TypeError, "got int: 3"),
    "site as None": (lambda m: capture(m, [None]), TypeError, "got NoneType"),
    "not an intervention": (lambda m: patch(m, {"layer.0": "zero"}), TypeError, "'zero'"),
    "patch of a list": (lambda m: patch(m, [("layer.0", Zero())]), TypeError, "got list"),
    "one bad in a chain": (lambda m: patch(m, {"layer.0": [Zero(), 3]}), TypeError, "3 is not"),
    "stack prefix on a decoder": (lambda m: patch(m, {"decoder.layer.0": Zero()}), ValueError,
                                  "unknown site 'decoder.layer.0'"),
    "logits of no stack": (lambda m: capture(m, "layer.0.attn.heads.0"), ValueError,
                           "layer.0.attn.heads.0"),
    "a string for a model": (lambda m: capture("llama", "layer.0"), TypeError, "got str"),
    "None for a model": (lambda m: patch(None, {"layer.0": Zero()}), TypeError, "got NoneType"),
    "compiled model": (lambda m: capture(torch.compile(m.model), "layer.0"), TypeError,
                       "OptimizedModule is a torch.compile()d model"),
}


@pytest.mark.parametrize("name", BAD_CONTEXTS)
def test_bad_context_fails_before_registering(lm, name):
    make, error, fragment = BAD_CONTEXTS[name]
    before = hook_count(lm.model)

    def enter():
        with make(lm):
            pass
    _raises(enter, error, fragment)
    assert hook_count(lm.model) == before


def test_position_of_a_short_row_in_a_padded_batch_names_the_row(lm):
    before = hook_count(lm.model)
    with pytest.raises(ValueError, match="position 4 is out of range for row 0, a prompt of 2"):
        with patch(lm, {"layer.0": Zero(at=[4])}):
            _forward(lm, ["ab", "abcdef"])
    with pytest.raises(ValueError, match="position -3 is out of range for row 0"):
        with patch(lm, {"layer.0": Zero(at=-3)}):
            _forward(lm, ["ab", "abcdef"])
    assert hook_count(lm.model) == before


# ------------------------------------------------------------ the LM and loading

BAD_LM_CALLS = {
    "encode empty list": (lambda m: m.encode([]), ValueError, "got []"),
    "encode empty string": (lambda m: m.encode(""), ValueError, "got ['']"),
    "encode a number": (lambda m: m.encode([3]), ValueError, "got [3]"),
    "encode pairs mismatch": (lambda m: m.encode(["a", "b"], pairs=["x"]), ValueError,
                              "1 for 2 prompts"),
    "prompt past the context": (lambda m: m.encode("x" * 300), ValueError,
                                "300 prompt tokens exceed"),
    "generation past the context": (lambda m: m.generate("x" * 250, max_new_tokens=10), ValueError,
                                    "250 prompt tokens plus 10 new tokens exceed"),
    "next_token_probs past the context": (lambda m: m.next_token_probs(["a", "y" * 257]),
                                          ValueError, "257 prompt tokens"),
    "token_id of empty text": (lambda m: m.token_id(""), ValueError, "''"),
    "token_indices of absent text": (lambda m: token_indices(m, "abc", "z"), ValueError, "'z'"),
    "tiny model of no family": (lambda m: tiny_model("gpt5"), ValueError, "'gpt5'"),
    "tiny model of a model type": (lambda m: tiny_model("bert-large"), ValueError, "'bert-large'"),
    "load_model of an unknown head": (lambda m: nbtoolkit.load_model("smollm2-135m-instruct",
                                                                      head="lm-head"),
                                      ValueError, "'lm-head'"),
}


@pytest.mark.parametrize("name", BAD_LM_CALLS)
def test_bad_lm_call(lm, name):
    before = hook_count(lm.model)
    _raises(*BAD_LM_CALLS[name], lm)
    assert hook_count(lm.model) == before


# ------------------------------------------------------------ tracing

PROMPT = "The Eiffel Tower is in Paris"
BAD_TRACES = {
    "subject absent": (dict(subject="Big Ben"), ValueError, "'Big Ben' does not occur"),
    "subject empty": (dict(subject=""), ValueError, "got ''"),
    "subject blank": (dict(subject="  "), ValueError, "got '  '"),
    "subject not a string": (dict(subject=3), ValueError, "got 3"),
    "prompt empty": (dict(prompt=""), ValueError, "got ''"),
    "subject at the end": (dict(subject="Paris"), ValueError, "'Paris' ends at the last token"),
    "samples zero": (dict(samples=0), ValueError, "got 0"),
    "samples float": (dict(samples=2.5), ValueError, "got 2.5"),
    "max_tokens zero": (dict(max_tokens=0), ValueError, "got 0"),
    "unknown kind": (dict(kind="heads"), ValueError, "'heads'"),
    "target of a list": (dict(target=[1]), TypeError, "got [1]"),
    "target id outside the vocabulary": (dict(target=10 ** 6), ValueError, "1000000"),
    "prompt past the context": (dict(prompt="Eiffel Tower " * 30 + "is"), ValueError,
                                "longer than the model's context"),
    "noise negative": (dict(noise=-1.0), ValueError, "-1.0"),
    "noise unknown name": (dict(noise="loud"), ValueError, "'loud'"),
}


@pytest.mark.parametrize("name", BAD_TRACES)
def test_bad_trace(lm, name):
    options, error, fragment = BAD_TRACES[name]
    args = dict(prompt=PROMPT, subject="Eiffel Tower", samples=2, kind="hidden") | options
    before = hook_count(lm.model)
    _raises(lambda: causal_trace(lm, args.pop("prompt"), args.pop("subject"), **args), error,
            fragment)
    assert hook_count(lm.model) == before and not lm.model.training


# ------------------------------------------------------------ circuits (prompt-pair sweeps)

def _ld(logits):
    return logits[:, 65] - logits[:, 66]


PAIR = (["in Spain", "Hi Bob to"], ["in Italy", "Hi Ann to"])
BAD_CIRCUITS = {
    "pair lengths differ": (lambda m: circuits.head_patching(m, ["abc"], ["abcd"], _ld),
                            ValueError, "pair 0: base has 3 tokens but source has 4"),
    "more bases than sources": (lambda m: circuits.head_patching(m, ["ab", "cd"], ["ab"], _ld),
                                ValueError, "base has 2 prompts but source has 1"),
    "empty batch": (lambda m: circuits.head_patching(m, [], [], _ld), ValueError,
                    "base is empty"),
    "empty prompt": (lambda m: circuits.head_patching(m, [""], ["a"], _ld), ValueError,
                     "base[0] is an empty string"),
    "ids outside the vocabulary": (lambda m: circuits.head_patching(m, [[99999]], [[1]], _ld),
                                   ValueError, "outside the vocabulary"),
    "prompt of floats": (lambda m: circuits.head_patching(m, [[1.5]], [[1.5]], _ld), TypeError,
                         "[1.5]"),
    "heads out of range": (lambda m: circuits.head_patching(m, *PAIR, _ld, heads=[9]),
                           ValueError, "heads must be ints in 0..3"),
    "key heads out of range": (lambda m: circuits.head_patching(m, *PAIR, _ld, kind="k",
                                                                heads=[3]),
                               ValueError, "2 key/value heads per layer"),
    "layers out of range": (lambda m: circuits.head_patching(m, *PAIR, _ld, layers=[5]),
                            ValueError, "got [5]"),
    "unknown head kind": (lambda m: circuits.head_patching(m, *PAIR, _ld, kind="z"),
                          ValueError, "'z'"),
    "max_rows zero": (lambda m: circuits.head_patching(m, *PAIR, _ld, max_rows=0), ValueError,
                      "got 0"),
    "metric returns a scalar": (lambda m: circuits.head_patching(m, *PAIR,
                                                                 lambda l: _ld(l).mean()),
                                ValueError, "returned a scalar"),
    "metric returns a matrix": (lambda m: circuits.head_patching(m, *PAIR, lambda l: l[:, :2]),
                                ValueError, "returned shape (2, 2)"),
    "metric returns a float": (lambda m: circuits.head_patching(m, *PAIR, lambda l: 1.0),
                               TypeError, "returned float"),
    "metric not callable": (lambda m: circuits.head_patching(m, *PAIR, "logit diff"),
                            TypeError, "got str"),
    "unknown positions": (lambda m: circuits.head_patching(m, *PAIR, _ld, positions="first"),
                          ValueError, "'first'"),
    "position past a prompt": (lambda m: circuits.head_patching(m, *PAIR, _ld, positions=[9]),
                               ValueError, "position 9 (9) is out of range for pair 0"),
    "each on prompts of two lengths": (lambda m: circuits.head_patching(m, *PAIR, _ld,
                                                                        positions="each"),
                                       ValueError, "needs prompts of one length, got lengths [8, 9]"),
    "named positions of another batch": (lambda m: circuits.head_patching(
        m, *PAIR, _ld, positions={"S2": [1, 2, 3]}), ValueError, "one int per pair (2)"),
    "sender equals receiver": (lambda m: circuits.path_patching(m, *PAIR, [(1, 0)],
                                                                [(1, 0, "q")], _ld),
                               ValueError, "sender (1, 0) starts at layer 1, at or above"),
    "receiver below the sender": (lambda m: circuits.path_patching(m, *PAIR, [(1, 2)],
                                                                   [(0, 1, "q")], _ld),
                                  ValueError, "sender (1, 2) starts at layer 1"),
    "receiver part unknown": (lambda m: circuits.path_patching(m, *PAIR, "heads",
                                                               [(1, 0, "z")], _ld),
                              ValueError, "got (1, 0, 'z')"),
    "receiver key head out of range": (lambda m: circuits.path_patching(
        m, *PAIR, "heads", [(1, 3, "k")], _ld), ValueError, "key/value heads 0..1"),
    "sender of no kind": (lambda m: circuits.path_patching(m, *PAIR, ["mlp.0"], "logits", _ld),
                          ValueError, "unknown sender 'mlp.0'"),
    "sender head out of range": (lambda m: circuits.path_patching(m, *PAIR, [(0, 7)], "logits",
                                                                  _ld),
                                 ValueError, "sender head (0, 7) is out of range"),
    "empty sender list": (lambda m: circuits.path_patching(m, *PAIR, [], "logits", _ld),
                          ValueError, "got []"),
    "sender layers of a listed sweep": (lambda m: circuits.path_patching(
        m, *PAIR, [(0, 1)], "logits", _ld, layers=[0]), ValueError, "list the senders instead"),
    "sender layer out of range": (lambda m: circuits.path_patching(
        m, *PAIR, "heads", "logits", _ld, layers=[9]), ValueError, "layers must be ints in 0 .."),
    "two receiver position sets": (lambda m: circuits.path_patching(
        m, *PAIR, "heads", "logits", _ld, receiver_positions={"a": 1, "b": 2}), ValueError,
        "receiver_positions takes one set"),
    "attribution of no kind": (lambda m: circuits.attribution_patching(m, *PAIR, _ld,
                                                                       kind="heads"),
                               ValueError, "'heads'"),
    "qk_fix not a bool": (lambda m: circuits.attribution_patching(m, *PAIR, _ld, qk_fix="yes"),
                          TypeError, "got 'yes'"),
    "faithfulness head out of range": (lambda m: circuits.circuit_faithfulness(
        m, *PAIR, [(0, 9)], _ld), ValueError, "heads [(0, 9)] are out of range"),
    "faithfulness group of two lengths": (lambda m: circuits.circuit_faithfulness(
        m, *PAIR, [(0, 1)], _ld), ValueError, "group 0 mixes prompts of [8, 9] tokens"),
    "ioi of no pairs": (lambda m: ioi.ioi_prompts(0), ValueError, "got 0"),
    "ioi of an unknown corruption": (lambda m: ioi.ioi_prompts(2, corruption="shuffle"),
                                     ValueError, "'shuffle'"),
    "ioi of an unknown order": (lambda m: ioi.ioi_prompts(2, order="AABB"), ValueError,
                                "'AABB'"),
}


@pytest.mark.parametrize("name", BAD_CIRCUITS)
def test_bad_circuit_call(lm, name):
    call, error, fragment = BAD_CIRCUITS[name]
    before = hook_count(lm.model)
    _raises(call, error, fragment, lm)
    assert hook_count(lm.model) == before and not lm.model.training


def test_circuits_refuse_encoders_naming_the_decoders():
    bert = tiny_model("bert", n_layers=2)
    for method in (circuits.head_patching, circuits.attribution_patching):
        _raises(method, ValueError, "runs on decoder models (gpt2, gpt_neox", bert, *PAIR, _ld)
    _raises(circuits.path_patching, ValueError, "path patching runs on decoder models", bert,
            *PAIR, "heads", "logits", _ld)


def test_answers_sharing_a_first_token_warn(lm):
    """Byte-level tokens: "Ann" and "Anna" both start with "A" (and " Mary" with " ")."""
    with pytest.warns(UserWarning, match=r"pair\(s\) \[1\] share their first token \('A'"):
        metric = logit_difference(lm, ["Mary", "Ann"], ["John", "Anna"])
    assert metric(torch.randn(2, 300))[1] == 0


def test_circuits_run_in_bfloat16_and_match_float32():
    """bf16 weights and activations go through every sweep; the numbers agree with float32's
    to bf16's precision."""
    lm32 = tiny_model("llama", n_layers=2)
    lm16 = tiny_model("llama", n_layers=2)
    lm16.model.to(torch.bfloat16)
    for method in (circuits.head_patching, circuits.attribution_patching):
        a, b = (method(m, *PAIR, _ld).scores for m in (lm32, lm16))
        assert np.isfinite(b).all()
        np.testing.assert_allclose(b, a, atol=0.05)
    a, b = (circuits.path_patching(m, *PAIR, "heads", [(1, 0, "q")], _ld).scores
            for m in (lm32, lm16))
    np.testing.assert_allclose(b[0], a[0], atol=0.05)


# ------------------------------------------------------------ probes and reporters

def _pairs(n=20, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g), np.arange(n) % 2


@pytest.fixture(scope="module")
def saved_reporter(tmp_path_factory):
    xp, xn, y = _pairs()
    path = tmp_path_factory.mktemp("reporter") / "layer_0"
    probes.save_reporter(probes.make_reporter("lr").fit(xp, xn, y), path)
    return path


def _edited_copy(json_file: Path, tensor_file: Path, out: Path, edit) -> None:
    """Write the saved pair (JSON, safetensors) to ``out`` (a folder) under the same names,
    edited by ``edit(meta, tensors)``."""
    from safetensors.torch import load_file, save_file

    out.mkdir()
    meta, tensors = json.loads(json_file.read_text()), load_file(str(tensor_file))
    edit(meta, tensors)
    (out / json_file.name).write_text(json.dumps(meta))
    save_file(tensors, str(out / tensor_file.name))


def _edit_reporter(path: Path, edit) -> Path:
    """A copy of the saved reporter, edited by ``edit(meta, tensors)``."""
    out = path.parent / f"edited_{len(list(path.parent.iterdir()))}"
    _edited_copy(path.with_suffix(".json"), path.with_suffix(".safetensors"), out, edit)
    return out / path.name


def _set(mapping, key, value):
    mapping[key] = value


BAD_REPORTER_FILES = {
    "NaN coefficients": (lambda m, t: _set(t, "coef_", torch.full_like(t["coef_"], NAN)),
                         ValueError, "['coef_']"),
    "infinite mean": (lambda m, t: _set(t, "mean_", torch.full_like(t["mean_"], math.inf)),
                      ValueError, "['mean_']"),
    "NaN intercept": (lambda m, t: _set(m["fitted"], "intercept_", NAN), ValueError,
                      "['intercept_']"),
    "NaN Platt scale": (lambda m, t: _set(m["fitted"], "platt_scale_", NAN), ValueError,
                        "['platt_scale_']"),
    "wrong width": (lambda m, t: _set(t, "coef_", torch.ones(5)), ValueError, "'coef_': 5"),
    "no direction": (lambda m, t: t.pop("coef_"), ValueError, "no fitted direction 'coef_'"),
    "old format": (lambda m, t: _set(m, "format", 1), ValueError, "format 1"),
    "unknown kind": (lambda m, t: _set(m, "kind", "svm"), ValueError, "'svm'"),
    "bad attribute name": (lambda m, t: _set(m["fitted"], "__class__", 1), ValueError,
                           "'__class__'"),
    "no fitted numbers": (lambda m, t: m.pop("fitted"), ValueError, "no 'fitted' numbers"),
}


@pytest.mark.parametrize("name", BAD_REPORTER_FILES)
def test_bad_reporter_file_is_refused(saved_reporter, name):
    edit, error, fragment = BAD_REPORTER_FILES[name]
    _raises(probes.load_reporter, error, fragment, _edit_reporter(saved_reporter, edit))


def test_missing_reporter_file(saved_reporter, tmp_path):
    with pytest.raises(FileNotFoundError, match="layer_9.json is missing"):
        probes.load_reporter(saved_reporter.parent / "layer_9")


BAD_PROBE_CALLS = {
    "states of another width": (lambda r: r.score(*_pairs(d=5)), ValueError, "width 5"),
    "halves of different shapes": (lambda r: r.score(torch.ones(4, 8), torch.ones(5, 8), [0, 1] * 2),
                                   ValueError, "(4, 8) vs x_neg (5, 8)"),
    "one pair": (lambda r: probes.make_reporter("lr").fit(torch.ones(1, 8), torch.ones(1, 8), [1]),
                 ValueError, "got 1"),
    "NaN states": (lambda r: r.predict(torch.full((4, 8), NAN), torch.ones(4, 8)), ValueError,
                   "x_pos holds NaN"),
    "states of 4 dims": (lambda r: r.predict(torch.ones(2, 2, 2, 8), torch.ones(2, 2, 2, 8)),
                         ValueError, "(2, 2, 2, 8)"),
    "unknown reporter": (lambda r: probes.make_reporter("svm"), ValueError, "'svm'"),
    "unfitted reporter": (lambda r: probes.make_reporter("ccs").predict(*_pairs()[:2]),
                          NotFittedError, "CCS is not fitted"),
}


@pytest.mark.parametrize("name", BAD_PROBE_CALLS)
def test_bad_probe_call(saved_reporter, name):
    _raises(*BAD_PROBE_CALLS[name], probes.load_reporter(saved_reporter))


# ------------------------------------------------------------ rotations (DAS)

BAD_SUBSPACES = {
    "rotation of width 0": (lambda: das.RotatedSubspace(0, 1), ValueError, "got 0"),
    "rotation width float": (lambda: das.RotatedSubspace(8.0, 2), ValueError, "got 8.0"),
    "subspace larger than the width": (lambda: das.RotatedSubspace(8, 9), ValueError, "got 9"),
    "subspace of size 0": (lambda: das.RotatedSubspace(8, 0), ValueError, "got 0"),
    "low rank of size 0": (lambda: das.LowRankRotatedSubspace(8, 0), ValueError, "got 0"),
    "neuron outside the width": (lambda: das.NeuronSubspace(8, [9]), ValueError, "0..7"),
}


@pytest.mark.parametrize("name", BAD_SUBSPACES)
def test_bad_subspace(name):
    _raises(*BAD_SUBSPACES[name])


@pytest.fixture(scope="module")
def saved_rotation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rotation")
    das.save_intervention(das.RotatedSubspace(8, 2), folder)
    return folder


def _edited_rotation(folder: Path, tmp: Path, edit) -> Path:
    _edited_copy(folder / "intervention.json", folder / "intervention.safetensors",
                 tmp / "edited", edit)
    return tmp / "edited"


BAD_ROTATION_FILES = {
    "unknown kind": (lambda m, t: _set(m, "kind", "Shear"), "'Shear'"),
    "old format": (lambda m, t: _set(m, "format", 1), "unsupported format 1"),
    "bad config": (lambda m, t: _set(m["config"], "k", 99), "got 99"),
    "unknown dtype": (lambda m, t: _set(m, "dtype", "torch.int8"), "'torch.int8'"),
    "NaN rotation": (lambda m, t: [_set(t, k, torch.full_like(v, NAN)) for k, v in list(t.items())],
                     "non-finite"),
    "scaled rotation": (lambda m, t: [_set(t, k, 1.5 * v) for k, v in list(t.items())],
                        "not orthonormal"),
    "extra tensor": (lambda m, t: _set(t, "bias", torch.zeros(8)), "bias"),
}


@pytest.mark.parametrize("name", BAD_ROTATION_FILES)
def test_bad_rotation_file_is_refused(saved_rotation, tmp_path, name):
    edit, fragment = BAD_ROTATION_FILES[name]
    _raises(das.load_intervention, ValueError, fragment,
            _edited_rotation(saved_rotation, tmp_path, edit))


# ------------------------------------------------------------ SelfIE

BAD_SELFIE = {
    "vectors of another width": (lambda m: nbtoolkit.selfie.interpret_vectors(m, torch.ones(2, 5)),
                                 ValueError, "got (2, 5)"),
    "vectors as a list": (lambda m: nbtoolkit.selfie.interpret_vectors(m, [[1.0]]), ValueError,
                          "got list"),
    "insert layer past the last": (lambda m: nbtoolkit.selfie.interpret_vectors(
        m, torch.ones(1, D), insert_layer=5), ValueError, "insert_layer 5"),
    "strength outside [0, 1]": (lambda m: nbtoolkit.selfie.interpret_vectors(
        m, torch.ones(1, D), strength=3.0), ValueError, "strength 3.0"),
    "unknown mode": (lambda m: nbtoolkit.selfie.interpret_vectors(
        m, torch.ones(1, D), mode="replace"), ValueError, "'replace'"),
    "no new tokens": (lambda m: nbtoolkit.selfie.interpret_vectors(
        m, torch.ones(1, D), max_new_tokens=0), ValueError, "got 0"),
    "token index past the prompt": (lambda m: nbtoolkit.selfie.interpret(
        m, "abc", tokens=[7], layers=[0], max_new_tokens=1), ValueError, "token 7"),
    "layer past the last": (lambda m: nbtoolkit.selfie.interpret(
        m, "abc", tokens=[0], layers=[9], max_new_tokens=1), ValueError, "9"),
}


@pytest.mark.parametrize("name", BAD_SELFIE)
def test_bad_selfie_call(lm, name):
    before = hook_count(lm.model)
    _raises(*BAD_SELFIE[name], lm)
    assert hook_count(lm.model) == before


# ------------------------------------------------------------ widgets

BAD_WIDGETS = {
    "fewer scores than tokens": (lambda: token_view(["a", "b"], [1.0]), ValueError,
                                 "2 tokens but scores of shape (1,)"),
    "scores of 2 dims": (lambda: token_view(["a", "b"], [[1.0, 2.0]]), ValueError, "(1, 2)"),
    "scores of text": (lambda: token_view(["a"], ["high"]), ValueError, "'high'"),
    "monitor of an unknown metric": (lambda: TrainingMonitor(["loss"]).update(0, acc=1.0),
                                     ValueError, "['acc']"),
}


@pytest.mark.parametrize("name", BAD_WIDGETS)
def test_bad_widget_input(name):
    _raises(*BAD_WIDGETS[name])


# ------------------------------------------------------------ CCS runs and their command line

BAD_CLI = {
    "n of 1": (["--n", "1"], "--n must be at least 2, got 1"),
    "train fraction 0": (["--train-frac", "0"], "--train-frac must be between 0 and 1, got 0.0"),
    "train fraction 1.5": (["--train-frac", "1.5"], "got 1.5"),
    "negative bootstrap": (["--n-boot", "-1"], "--n-boot must be 0 or more, got -1"),
    "batch size 0": (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    "no CCS restarts": (["--n-tries", "0"], "--n-tries must be at least 1, got 0"),
    "no epochs": (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    "negative variance weight": (["--var-weight", "-1"], "got -1.0"),
    "covariance weight 2": (["--neg-cov-weight", "2"], "between 0 and 1, got 2.0"),
    "template past the last": (["--templates", "99"], "got 99"),
}


@pytest.fixture()
def no_model(monkeypatch):
    """The CLI must fail before it loads a model."""
    def refuse(name):
        raise AssertionError(f"load_model({name!r}) called before the options were checked")
    monkeypatch.setattr(cli, "load_model", refuse)


@pytest.mark.parametrize("name", BAD_CLI)
def test_bad_cli_option_fails_before_loading(no_model, tmp_path, name):
    options, fragment = BAD_CLI[name]
    with pytest.raises(SystemExit) as caught:
        cli.main(["elicit", "tiny", "capitals", "--out", str(tmp_path), *options])
    assert fragment in str(caught.value.code), caught.value.code
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, fragment", [
    (["elicit", "tiny", "capitols"], "'capitols'"),
    (["elicit", "tiny", "capitals+animls"], "'animls'"),
    (["sweep", "--models", "tiny", "--datasets", "capitals", "nope"], "'nope'"),
    (["eval", "RUN", "animls"], "'animls'"),
    (["eval", "RUN", "animals", "--templates", "42"], "got 42"),
])
def test_bad_cli_dataset_fails_before_loading(no_model, tmp_path, argv, fragment):
    argv = [str(tmp_path) if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as caught:
        cli.main(argv + (["--out", str(tmp_path)] if argv[0] != "eval" else []))
    assert fragment in str(caught.value.code), caught.value.code


# A run folder made by hand: what write_run writes, with a fitted reporter.
def _elicitation(templates=(0,), layers=(0,)):
    from nbtoolkit.ccs.elicit import Elicitation

    xp, xn, y = _pairs()
    rep = probes.make_reporter("lr").fit(xp, xn, y)
    frame = pd.DataFrame({"reporter": ["lr"], "layer": [0], "auroc": [0.5]})
    return Elicitation("tiny", "capitals", {"model": "tiny", "dataset": "capitals"}, frame,
                       frame, {(t, "lr"): {layer: rep for layer in layers} for t in templates}, {})


def _run_damage(folder: Path, how: str) -> None:
    if how == "no marker":
        (folder / runs.COMPLETE).unlink()
    elif how == "missing reporter":
        next((folder / "reporters").rglob("*.safetensors")).unlink()
    elif how == "no config":
        (folder / "config.json").unlink()


@pytest.mark.parametrize("how, fragment", [
    ("no marker", "no complete.json"),
    ("missing reporter", "1 of its files are missing"),
    ("no config", "no config.json"),
])
def test_incomplete_run_folder_is_refused(tmp_path, no_model, how, fragment):
    folder = runs.write_run(_elicitation(), tmp_path / "run")
    _run_damage(folder, how)
    with pytest.raises(ValueError, match=fragment):
        runs.load_run_reporters(folder)
    with pytest.raises(SystemExit) as caught:
        cli.main(["eval", str(folder), "animals"])
    assert fragment in str(caught.value.code) and str(folder) in str(caught.value.code)


# ------------------------------------------------------------ issue 19, part 2: positions

def test_padded_batch_patches_each_prompt_at_its_own_positions(lm):
    """at=[0] is each prompt's first token: a left-padded batch equals one prompt at a time
    (before the fix the short rows were patched in their padding)."""
    prompts = ["Hi", "The capital of France is", "A b"]
    steer = {"layer.0": Add(torch.ones(D), at=[0, 1], scale=4.0)}
    with patch(lm, steer):
        together = lm.next_token_probs(prompts)
        alone = torch.cat([lm.next_token_probs(p) for p in prompts])
        batch_text = lm.generate(prompts, max_new_tokens=3)
        one_text = [lm.generate(p, max_new_tokens=3)[0] for p in prompts]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert batch_text == one_text
    assert _changed(lm, Add(torch.ones(D), at=slice(-2, None)), ["ab", "abcdef"]) == [[4, 5], [4, 5]]
    assert _changed(lm, Add(torch.ones(D), at=slice(1, 3)), ["ab", "abcdef"]) == [[5], [1, 2]]
    assert _changed(lm, Add(torch.ones(D), at=[[0], [2]]), ["ab", "abcdef"]) == [[4], [2]]


def _changed(lm, intervention, prompts) -> list[list[int]]:
    """The columns of each row that ``intervention`` changes at layer.0."""
    with capture(lm, "layer.0") as clean:
        _forward(lm, prompts)
    with patch(lm, {"layer.0": intervention}), capture(lm, "layer.0") as acts:
        _forward(lm, prompts)
    diff = (acts["layer.0"] != clean["layer.0"]).any(-1)
    return [row.nonzero().flatten().tolist() for row in diff]


def test_source_of_another_length_is_refused_and_its_slice_is_its_last_token(lm):
    """The issue's reproduction: before the fix got[0, -1] was the source's column T_base - 1."""
    with capture(lm, "layer.1") as src:
        lm.model(**lm.encode("The capital of Spain is"))
    source = src["layer.1"]
    with pytest.raises(ValueError, match=r"value covers 23 positions.*source\[:, \[-1\]\]"):
        with patch(lm, {"layer.1": Set(source, at=-1)}):
            lm.model(**lm.encode("Hi there"))
    with patch(lm, {"layer.1": Set(source[:, [-1]], at=-1)}), capture(lm, "layer.1") as got:
        lm.model(**lm.encode("Hi there"))
    assert torch.equal(got["layer.1"][0, -1], source[0, -1])


def test_position_cache_follows_the_padding(lm):
    """Two batches of one shape but different padding get different cells (the cache is keyed
    on the padding)."""
    add = Add(torch.ones(D), at=[0])
    assert _changed(lm, add, ["abcd", "ab"]) == [[0], [2]]
    assert _changed(lm, add, ["ab", "abcd"]) == [[2], [0]]
    assert _changed(lm, add, ["ab", "ab"]) == [[0], [0]]


# ------------------------------------------------------------ part 3: bare and wrapped models

class PeftLike(torch.nn.Module):
    """The shape of a PEFT model: the transformers model inside, ``get_base_model()``."""

    def __init__(self, model):
        super().__init__()
        self.base_model = torch.nn.ModuleDict({"model": model})

    def get_base_model(self):
        return self.base_model["model"]

    def forward(self, **kwargs):
        return self.get_base_model()(**kwargs)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gemma3"])
def test_bare_and_wrapped_models_have_every_site(family):
    """Before the fix a bare ``...ForCausalLM`` resolved its ``.model`` body: no 'logits' site,
    and ``das.iia`` failed."""
    small = tiny_model(family, n_layers=2)
    ids = small.encode(["abc", "abcdef"])
    with capture(small, ["layer.1", "logits"]) as ref:
        small.model(**ids)
    for model in (small.model, PeftLike(small.model)):
        before = hook_count(small.model)
        with patch(model, {"layer.0": Zero(at=[0])}), capture(model, ["layer.1", "logits"]) as got:
            model(**ids)
        assert got["logits"].shape == ref["logits"].shape
        assert not torch.equal(got["layer.1"], ref["layer.1"])
        assert hook_count(small.model) == before
    with capture(small.model.base_model, "layer.1") as body:
        small.model.base_model(**ids)
    torch.testing.assert_close(body["layer.1"], ref["layer.1"], atol=0, rtol=0)


def test_das_iia_on_a_bare_model():
    small = tiny_model("llama", n_layers=2)
    g = torch.Generator().manual_seed(0)
    base, source = torch.randint(3, 50, (8, 4), generator=g), torch.randint(3, 50, (8, 4), generator=g)
    data = {"base": base, "source": source, "labels": torch.randint(0, 5, (8,), generator=g)}
    rot = das.RotatedSubspace(D, 4)
    with_lm = das.iia(small, rot, "layer.0", data, at=-1)
    bare = das.iia(small.model, rot, "layer.0", data, at=-1)
    assert bare == with_lm


# ------------------------------------------------------------ part 7: run folders

def test_rerun_replaces_the_whole_run_folder(tmp_path):
    folder = runs.write_run(_elicitation(templates=(0, 1), layers=(0, 1)), tmp_path / "run")
    assert set(runs.load_run_reporters(folder)) == {(0, "lr"), (1, "lr")}
    runs.write_run(_elicitation(templates=(0,), layers=(0,)), folder)
    reps = runs.load_run_reporters(folder)
    assert set(reps) == {(0, "lr")} and list(reps[(0, "lr")]) == [0]  # no stale reporters
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folders


def _write_then_hang(folder: Path, flag: Path, when: str) -> None:
    """The killed writer (a forked child): announces ``when`` in ``flag``, then hangs."""
    save = runs.save_reporter

    def slow(rep, path):  # the first reporter is written, the run is not yet published
        save(rep, path)
        flag.write_text("writing")
        time.sleep(60)

    if when == "writing":
        runs.save_reporter = slow
    runs.write_run(_elicitation(templates=(0,), layers=(0,)), folder)
    flag.write_text("published")
    time.sleep(60)


@pytest.mark.parametrize("when", ["writing", "published"])
def test_killed_run_leaves_the_old_or_the_new_complete_run(tmp_path, when):
    """Kill -9 a process while it writes a run over an older one: the folder is the old complete
    run (killed while writing) or the new one (killed after publishing), never a mix; the next
    write removes what the killed one left behind."""
    folder = runs.write_run(_elicitation(templates=(0, 1), layers=(0, 1)), tmp_path / "run")
    flag = tmp_path / "flag"
    child = multiprocessing.get_context("fork").Process(target=_write_then_hang,
                                                        args=(folder, flag, when))
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not (flag.exists() and flag.read_text() == when):
            assert child.is_alive(), "the writer died before the kill"
            assert time.monotonic() < deadline, "the writer never got there"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    expected = {(0, "lr"), (1, "lr")} if when == "writing" else {(0, "lr")}
    assert set(runs.load_run_reporters(folder)) == expected
    runs.write_run(_elicitation(), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flag", "run"]


# ------------------------------------------------------------ part 8: non-Latin subjects

@pytest.mark.parametrize("prompt, subject", [("Москва является столицей России", "Москва"),
                                             ("東京は日本の首都です", "東京"),
                                             ("The capital of Japan is 東京 ok", "東京")])
def test_non_latin_subject_span(default_lm, prompt, subject):
    """ROME's rule on decoded tokens cannot find a subject whose characters span several
    byte-level tokens (they decode to '�'); the tokenizer's offsets do."""
    start, end = subject_span(default_lm, prompt, subject, default_lm.tokens(prompt))
    text = default_lm.tokenizer.decode(default_lm.tokenizer(prompt)["input_ids"][start:end])
    assert text.strip() == subject


def test_non_latin_subject_traces(lm):
    result = causal_trace(lm, "Столица: Москва, да", "Москва", samples=2, kind="hidden")
    assert np.isfinite(result.scores).all()


# ------------------------------------------------------------ part 9: saved files

@pytest.mark.parametrize("kind", ["RotatedSubspace", "LowRankRotatedSubspace",
                                  "BoundlessRotatedSubspace", "NeuronSubspace"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_intervention_round_trips(tmp_path, kind, dtype):
    make = {"RotatedSubspace": lambda: das.RotatedSubspace(D, 4),
            "LowRankRotatedSubspace": lambda: das.LowRankRotatedSubspace(D, 4),
            "BoundlessRotatedSubspace": lambda: das.BoundlessRotatedSubspace(D),
            "NeuronSubspace": lambda: das.NeuronSubspace(D, [1, 2])}[kind]
    saved = make().to(dtype)
    das.save_intervention(saved, tmp_path)
    back = das.load_intervention(tmp_path)
    assert type(back) is type(saved)
    for (name, a), (_, b) in zip(saved.state_dict().items(), back.state_dict().items()):
        assert b.dtype == a.dtype and torch.equal(a, b), name


def test_nan_reporter_no_longer_scores_half(saved_reporter):
    """Before the fix a reporter with NaN coefficients loaded and scored 0.5."""
    path = _edit_reporter(saved_reporter, BAD_REPORTER_FILES["NaN coefficients"][0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        probes.load_reporter(path)


# ------------------------------------------------------------ part 10: the rest

def test_iia_keeps_mixed_train_and_eval_modes():
    small = tiny_model("llama", n_layers=2)
    small.model.eval()
    small.model.model.layers[1].train()  # a mixed state, as a user may leave it
    modes = [m.training for m in small.model.modules()]
    data = {"base": torch.randint(3, 50, (4, 3)), "source": torch.randint(3, 50, (4, 3)),
            "labels": torch.zeros(4, dtype=torch.long)}
    das.iia(small, das.RotatedSubspace(D, 2), "layer.0", data, at=-1)
    assert [m.training for m in small.model.modules()] == modes


def test_token_view_colours_the_finite_scores():
    """Before the fix one NaN made every token's colour NaN."""
    html = token_view(["a", "b", "c"], [1.0, NAN, 0.5]).value
    assert html.count("background:rgb(") == 2 and html.count("background:transparent") == 1
