"""The bad-input catalogue: one row per bad input or fault, each asserting the exact error type,
that the message names the bad value, and that nothing is left behind (hooks counted, run
folders intact, no temporary folders). Then one test per defect of issue 19 (parts 2, 3, 7-10),
each failing before its fix. The guide "What nbtoolkit guarantees" (docs/guides/guarantees.md) is what this file checks.
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
from nbtoolkit.viz.lens import lens_grid, plot_attention
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
    "at empty list": (lambda: Zero(at=[]), ValueError, "`at` [] selects no position"),
    "at empty rows": (lambda: Zero(at=[[], []]), ValueError, "`at` [[], []] selects no position"),
    "at empty tensor": (lambda: Zero(at=torch.tensor([], dtype=torch.long)), ValueError,
                        "selects no position"),
    "at empty tensor rows": (lambda: Add(torch.ones(D), at=torch.zeros(2, 0, dtype=torch.long)),
                             ValueError, "selects no position"),
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
    "value of 3 heads (of 4), head 0": (lambda: Set(torch.ones(3, D // 4), heads=[0]), ValueError,
                                        "has 3 heads; give all 4 heads or the 1 selected"),
    "value of 3 heads (of 4), head 3": (lambda: Set(torch.ones(3, D // 4), heads=[3]), ValueError,
                                        "has 3 heads; give all 4 heads"),
    "value of 6 heads (of 4)": (lambda: Add(torch.ones(6, D // 4), heads=[0, 1]), ValueError,
                                "has 6 heads"),
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


# ------------------------------------------------------------ reading the residual stream

def _lens_calls():
    from nbtoolkit import lens
    long = "abcdefghij"
    return {
        "lens layer past the last": (lambda m: lens.logit_lens(m, "abc", layers=[9]), ValueError,
                                     "got [9]"),
        "lens layers empty": (lambda m: lens.logit_lens(m, "abc", layers=[]), ValueError, "got []"),
        "lens no prompts": (lambda m: lens.logit_lens(m, []), ValueError, "empty list"),
        "lens prompts None": (lambda m: lens.logit_lens(m, None), TypeError, "NoneType: None"),
        "lens empty prompt": (lambda m: lens.logit_lens(m, ["abc", ""]), ValueError, "got ['']"),
        "lens position past a prompt": (lambda m: lens.logit_lens(m, [long, "abc"], positions=[9]),
                                        ValueError, "position 9 is outside prompt 1, which has 3"),
        "lens position string": (lambda m: lens.logit_lens(m, "abc", positions="last"), TypeError,
                                 "got 'last'"),
        "lens top_k 0": (lambda m: lens.logit_lens(m, "abc", top_k=0), ValueError, "got 0"),
        "lens empty target": (lambda m: lens.logit_lens(m, "abc", target=""), ValueError,
                              "target '' encodes to no tokens"),
        "lens target outside the vocabulary": (lambda m: lens.logit_lens(m, "abc", target=10 ** 6),
                                               ValueError, "target id 1000000"),
        "lens target float": (lambda m: lens.logit_lens(m, "abc", target=1.5), TypeError, "1.5"),
        "lens one target for two prompts": (lambda m: lens.logit_lens(m, ["a", "b"], target=["x"]),
                                            ValueError, "1 targets for 2 prompts"),
        "lens components not a bool": (lambda m: lens.logit_lens(m, "abc", components="yes"),
                                       TypeError, "got 'yes'"),
        "lens of an encoder": (lambda m: lens.logit_lens(tiny_model("bert"), "abc"), ValueError,
                               "'bert' is an encoder family"),
        "DLA answer == distractor": (lambda m: lens.direct_logit_attribution(m, "abc", "x", "x"),
                                     ValueError, "answer 'x' and distractor 'x' are the same token"),
        "DLA empty prompt": (lambda m: lens.direct_logit_attribution(m, "", "x", "y"), ValueError,
                             "got ''"),
        "DLA list of prompts": (lambda m: lens.direct_logit_attribution(m, ["abc"], "x", "y"),
                                ValueError, "got ['abc']"),
        "DLA position past the prompt": (lambda m: lens.direct_logit_attribution(
            m, "abc", "x", "y", position=5), ValueError, "position 5 is outside prompt 0"),
        "DLA answer None": (lambda m: lens.direct_logit_attribution(m, "abc", None, "y"), TypeError,
                            "answer must be a string or a token id, got NoneType"),
        "DLA of an encoder": (lambda m: lens.direct_logit_attribution(tiny_model("bert"), "a", "x"),
                              ValueError, "'bert' is an encoder family"),
        "attention of the embeddings": (lambda m: lens.attention_patterns(m, "abc", layers=[-1]),
                                        ValueError, "got [-1]"),
        "attention of no prompts": (lambda m: lens.attention_patterns(m, []), ValueError,
                                    "empty list"),
        "induction seq_len 1": (lambda m: lens.induction_scores(m, seq_len=1), ValueError, "got 1"),
        "induction batch 0": (lambda m: lens.induction_scores(m, batch=0), ValueError, "got 0"),
        "induction float seed": (lambda m: lens.induction_scores(m, seed=1.5), TypeError, "got 1.5"),
        "induction past the context": (lambda m: lens.induction_scores(m, seq_len=200), ValueError,
                                       "seq_len 200 repeated twice (401 tokens)"),
        "ablation of no heads": (lambda m: lens.induction_ablation(m, []), ValueError, "got []"),
        "ablation of a missing layer": (lambda m: lens.induction_ablation(m, [(9, 0)]), ValueError,
                                        "got [(9, 0)]"),
        "ablation of a head twice": (lambda m: lens.induction_ablation(m, [(0, 0), (0, 0)]),
                                     ValueError, "heads repeat"),
        "ablation how": (lambda m: lens.induction_ablation(m, [(0, 0)], how="half"), ValueError,
                         "got 'half'"),
        "ablation controls -1": (lambda m: lens.induction_ablation(m, [(0, 0)], controls=-1),
                                 ValueError, "got -1"),
        "tuned lens steps 0": (lambda m: lens.TunedLens(steps=0).fit(m), ValueError, "got 0"),
        "tuned lens lr nan": (lambda m: lens.TunedLens(lr=NAN).fit(m), ValueError, "got nan"),
        "tuned lens not fitted": (lambda m: lens.TunedLens()(m, "abc"), ValueError,
                                  "not fitted yet"),
        "tuned lens of no texts": (lambda m: lens.TunedLens().fit(m, []), ValueError, "empty list"),
        "tuned lens texts a string": (lambda m: lens.TunedLens().fit(m, "abc"), TypeError, "got str"),
        "tuned lens of the last layer": (lambda m: lens.TunedLens(layers=[1]).fit(m), ValueError,
                                         "layer 1 is the last"),
        "tuned lens components": (lambda m: lens.TunedLens(steps=1, tokens_per_step=4).fit(
            m, ["hello"])(m, "abc", components=True), ValueError, "components=True"),
        "tuned lens of an untrained layer": (lambda m: lens.TunedLens(
            layers=[0], steps=1, tokens_per_step=4).fit(m, ["hello"])(m, "abc", layers=[-1]),
            ValueError, "no translator for layers [-1]"),
        "lens_kl of an empty text": (lambda m: lens.lens_kl(m, [""]), ValueError, "got ['']"),
    }


BAD_LENS = _lens_calls()


@pytest.mark.parametrize("name", BAD_LENS)
def test_bad_lens_call(lm, name):
    before = hook_count(lm.model)
    implementation = lm.model.config._attn_implementation
    _raises(*BAD_LENS[name], lm)
    assert hook_count(lm.model) == before and not lm.model.training
    assert lm.model.config._attn_implementation == implementation


def test_a_multi_token_answer_takes_its_first_token_with_a_warning(lm):
    from nbtoolkit import lens

    with pytest.warns(UserWarning, match=r"answer 'xy' is 2 tokens \['x', 'y'\]; using its first"):
        first = lens.direct_logit_attribution(lm, "abc", "xy", "z")
    assert first.answer == "x"
    with pytest.warns(UserWarning, match=r"target 'xy' is 2 tokens"):
        lens.logit_lens(lm, "abc", target="xy")


@pytest.fixture(scope="module")
def saved_lens(tmp_path_factory, lm):
    from nbtoolkit.lens import TunedLens

    folder = tmp_path_factory.mktemp("tuned_lens")
    TunedLens(steps=1, tokens_per_step=4).fit(lm, ["hello there"]).save(folder)
    return folder


BAD_LENS_FILES = {
    "NaN weight": (lambda m, t: _set(t, "weight", torch.full_like(t["weight"], NAN)),
                   "weight has non-finite values"),
    "weight of another width": (lambda m, t: _set(t, "weight", torch.zeros(2, D, 3)),
                                "weight has shape (2, 64, 3)"),
    "extra tensor": (lambda m, t: _set(t, "scale", torch.ones(1)), "unexpected ['scale']"),
    "no bias": (lambda m, t: t.pop("bias"), "missing ['bias']"),
    "other format": (lambda m, t: _set(m, "format", 7), "format 7"),
    "layers past the last": (lambda m, t: _set(m, "layers", [-1, 5]), "got [-1, 5]"),
    "layers unsorted": (lambda m, t: _set(m, "layers", [0, -1]), "got [0, -1]"),
    "n_layers 0": (lambda m, t: _set(m, "n_layers", 0), "n_layers must be a positive int, got 0"),
}


@pytest.mark.parametrize("name", BAD_LENS_FILES)
def test_bad_tuned_lens_file_is_refused(saved_lens, tmp_path, name):
    from nbtoolkit.lens import TunedLens

    edit, fragment = BAD_LENS_FILES[name]
    _edited_copy(saved_lens / "tuned_lens.json", saved_lens / "tuned_lens.safetensors",
                 tmp_path / "edited", edit)
    _raises(TunedLens.load, ValueError, fragment, tmp_path / "edited")


def test_missing_tuned_lens_files(saved_lens, tmp_path):
    from nbtoolkit.lens import TunedLens

    _raises(TunedLens.load, ValueError, "no tuned_lens.json", tmp_path)
    (tmp_path / "tuned_lens.json").write_text((saved_lens / "tuned_lens.json").read_text())
    _raises(TunedLens.load, ValueError, "no tuned_lens.safetensors", tmp_path)
    (tmp_path / "tuned_lens.safetensors").write_bytes(b"truncated")
    _raises(TunedLens.load, ValueError, "not a readable safetensors file", tmp_path)


BAD_LENS_FIGURES = {
    "lens value": (lambda r, p: lens_grid(r, value="entropy"), ValueError, "got 'entropy'"),
    "lens prompt": (lambda r, p: lens_grid(r, prompt=5), ValueError, "got 5"),
    "attention query past the prompt": (lambda r, p: plot_attention(p, 0, query=9), ValueError,
                                        "got 9"),
    "attention layer not read": (lambda r, p: p[7], ValueError, "layer 7 was not read"),
}


@pytest.mark.parametrize("name", BAD_LENS_FIGURES)
def test_bad_lens_figure(lm, name):
    from nbtoolkit.lens import attention_patterns, logit_lens

    call, error, fragment = BAD_LENS_FIGURES[name]
    _raises(call, error, fragment, logit_lens(lm, ["abc", "de"]), attention_patterns(lm, "abc"))


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
    "layer below the embeddings": (["--layers", "-2"], "--layers must be one or more of -1 "
                                                       "(the embeddings)"),
    "layers with no value": (["--layers"], "--layers must be one or more of -1"),
    "templates with no value": (["--templates"], "--templates must be one or more template"),
    "negative template": (["--templates", "-1"], "got [-1]"),
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


# ------------------------------------------------------------ issue 30: files we do not own

BAD_FILE_NAMES = {
    "results name with ..": "../x",
    "results name with a folder": "sub/x",
    "results name ..": "..",
    "results name empty": "",
    "results name with a backslash": "..\\x",
}


@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_bad_results_name_writes_nothing(tmp_path, monkeypatch, name):
    from nbtoolkit.tutorials.results import save_results

    monkeypatch.setenv("NBTOOLKIT_RESULTS", str(tmp_path / "results"))
    _raises(save_results, ValueError, f"{BAD_FILE_NAMES[name]!r} is not a file name",
            BAD_FILE_NAMES[name], pd.DataFrame({"a": [1]}))
    assert not any(tmp_path.rglob("*"))


def _exercise(folder: Path, stem: str) -> None:
    import nbformat

    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", metadata={
        "nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": f"{stem}_x",
                     "schema_version": 3}})
    folder.mkdir(exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), folder / f"{stem}.ipynb")


def test_release_keeps_what_it_did_not_write(tmp_path, capsys):
    from nbtoolkit.cli import exercises
    from nbtoolkit.exercises.release import kept, release

    notebooks, build = tmp_path / "notebooks", tmp_path / "build"
    _exercise(notebooks, "a")
    _exercise(notebooks, "b")
    release(notebooks, build)
    source = build / "classroom" / "source"
    own = source / "quiz" / "quiz.ipynb"  # an instructor's own assignment
    own.parent.mkdir()
    own.write_text("{}")
    extra = source / "a" / "data.csv"  # a file beside a tutorial's copy
    extra.write_text("1,2")
    config = build / "classroom" / "nbgrader_config.py"
    config.write_text(config.read_text() + "c.Exchange.root = '/srv/exchange'\n")
    (notebooks / "b.ipynb").unlink()
    assert exercises.main([str(notebooks), str(build)]) == 0
    assert own.read_text() == "{}" and extra.read_text() == "1,2"
    assert "/srv/exchange" in config.read_text()
    assert not (source / "b").exists() and (source / "a" / "a.ipynb").exists()
    assert kept(build) == [extra, own, config]
    out = capsys.readouterr().out
    assert "kept, not written by nbtoolkit (3 files)" in out and str(own) in out


# ------------------------------------------------------------ issue 30: caches keyed on everything

def _deep_edit(lm):
    """Add 1 to the last value of the last block's MLP output weight (past any sample)."""
    with torch.no_grad():
        lm.model.model.layers[-1].mlp.down_proj.weight.data.view(-1)[-1] += 1.0


CACHE_KEY_CHANGES = {
    "one MLP weight deep in the model": _deep_edit,
    "a buffer": lambda lm: lm.model.model.rotary_emb.inv_freq.mul_(2),
    "the dtype": lambda lm: lm.model.to(torch.float64),
    "the tokenizer's padding side": lambda lm: setattr(
        lm.tokenizer, "padding_side", "right" if lm.tokenizer.padding_side == "left" else "left"),
}


@pytest.mark.parametrize("name", CACHE_KEY_CHANGES)
def test_model_fingerprint_changes_with_what_changes_the_states(name):
    from nbtoolkit.ccs.activations import model_fingerprint

    lm = tiny_model("llama", n_layers=2)
    before = model_fingerprint(lm)
    CACHE_KEY_CHANGES[name](lm)
    assert model_fingerprint(lm) != before


def test_model_fingerprint_ignores_the_state_a_padded_call_leaves():
    from nbtoolkit.ccs.activations import model_fingerprint

    lm = tiny_model("llama", n_layers=2)
    before = model_fingerprint(lm)
    lm.encode(["a", "abc"])  # sets the fast tokenizer's padding, which a cache key must not see
    with torch.no_grad():
        lm.model(**lm.encode(["abcdef"]))
    assert model_fingerprint(lm) == before


def test_fingerprinting_leaves_the_tokenizers_call_state_as_it_was():
    from nbtoolkit.ccs.activations import tokenizer_fingerprint

    lm = tiny_model("llama", n_layers=2)
    backend = lm.tokenizer.backend_tokenizer
    plain = tokenizer_fingerprint(lm.tokenizer)
    backend.enable_padding(pad_id=1, pad_token="x", direction="left", pad_to_multiple_of=8)
    backend.enable_truncation(max_length=7, stride=1)
    padding, truncation = backend.padding, backend.truncation
    assert tokenizer_fingerprint(lm.tokenizer) == plain
    assert (backend.padding, backend.truncation) == (padding, truncation)


def test_model_fingerprint_splits_the_tensors_the_same_way_every_time(monkeypatch):
    """Two threads hash two fixed halves (largest first onto the lighter), together every tensor
    once; the same halves on every call."""
    from nbtoolkit.ccs import activations

    lm = tiny_model("llama", n_layers=2)
    seen = []
    original = activations._tensors_digest

    def recording(tensors):
        seen.append([name for name, _ in tensors])
        return original(tensors)

    monkeypatch.setattr(activations, "_tensors_digest", recording)
    first = activations.model_fingerprint(lm)
    second = activations.model_fingerprint(lm)
    assert first == second and sorted(seen[:2]) == sorted(seen[2:])  # threads may append in any order
    names = {n for n, _ in [*lm.model.named_parameters(), *lm.model.named_buffers()]}
    assert sorted(seen[0] + seen[1]) == sorted(names) and not set(seen[0]) & set(seen[1])


def test_extract_after_a_weight_edit_returns_fresh_states(tmp_path):
    from nbtoolkit.ccs.activations import extract
    from nbtoolkit.data.contrast import load_contrast

    lm = tiny_model("llama", n_layers=2)
    pairs = load_contrast("arithmetic", templates=0, n=6, seed=1)[0]
    cached = extract(lm, pairs, cache=tmp_path, progress=False)
    _deep_edit(lm)
    again = extract(lm, pairs, cache=tmp_path, progress=False)
    fresh = extract(lm, pairs, cache=False, progress=False)
    assert not np.allclose(again.hidden_pos[:, -1], cached.hidden_pos[:, -1])
    np.testing.assert_array_equal(again.hidden_pos, fresh.hidden_pos)


# ------------------------------------------------------------ issue 30: training that diverges

def _das_nan_at_step_2(monkeypatch):
    from nbtoolkit.das import train

    real, calls = train.das_step, []

    def step(*args):
        calls.append(1)
        loss = real(*args)
        return loss * NAN if len(calls) == 3 else loss
    monkeypatch.setattr(train, "das_step", step)


def _train_das(lm):
    g = torch.Generator().manual_seed(0)
    data = {"base": torch.randint(3, 50, (16, 4), generator=g),
            "source": torch.randint(3, 50, (16, 4), generator=g),
            "labels": torch.randint(0, 5, (16,), generator=g)}
    rotation = das.RotatedSubspace(D, 4)
    before = {k: v.clone() for k, v in rotation.state_dict().items()}
    try:
        das.train_das(lm, rotation, "layer.0", data, at=-1, batch_size=4, lr=1e-1, progress=False)
    finally:
        assert all(torch.equal(v, before[k]) for k, v in rotation.state_dict().items())


def _task_data():
    g = torch.Generator().manual_seed(0)
    return {"base": torch.randint(3, 50, (8, 4), generator=g),
            "labels": torch.randint(0, 5, (8,), generator=g)}


DIVERGING = {
    "SelfIE supervised control, lr 1e30": (lambda m: nbtoolkit.selfie.supervised_control(
        m, "Big Ben is in London", token=2, layer=1, target=torch.ones(D), lr=1e30, steps=5),
        "SelfIE control of layer 1 diverged at step 1"),
    "DAS fit of the task model, lr 1e30": (lambda m: das.fit(m, _task_data(), lr=1e30, epochs=3,
                                                             batch_size=4, progress=False),
                                           "fit diverged at step 2"),
    "DAS training, a NaN loss at step 2": (_train_das, "DAS training at layer.0 diverged at step 2"),
    "CCS probe, lr 1e30": (lambda m: probes.make_reporter("ccs", lr=1e30, n_tries=2, epochs=20).fit(
        *_pairs()[:2]), "CCS training diverged at step 2"),
}


@pytest.mark.parametrize("name", DIVERGING)
def test_diverging_training_stops_restores_and_names_the_step(lm, monkeypatch, name):
    from nbtoolkit.core.modes import TrainingDiverged

    if name.startswith("DAS training"):
        _das_nan_at_step_2(monkeypatch)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    hooks = hook_count(lm.model)
    call, fragment = DIVERGING[name]
    _raises(call, TrainingDiverged, fragment, lm)
    assert all(torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())
    assert hook_count(lm.model) == hooks and not lm.model.training


def test_selfie_edits_restored_out_of_order_are_refused(lm):
    from nbtoolkit.selfie import supervised_control

    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    first = supervised_control(lm, "Big Ben is in London", token=2, layer=1, target=torch.ones(D))
    second = supervised_control(lm, "Big Ben is in London", token=2, layer=1, target=-torch.ones(D))
    _raises(first.restore, RuntimeError, "1 later edit(s) of layer 1's MLP are still in place")
    second.restore()
    first.restore()
    assert all(torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())


# ------------------------------------------------------------ issue 30: command lines never pass vacuously

ROOT = Path(__file__).resolve().parents[1]


def test_ccs_layers_help_says_minus_one_is_the_embeddings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["elicit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "-1 = embeddings" in help_text and "0 = embeddings" not in help_text


@pytest.mark.parametrize("how, fragment", [
    ("missing", "no folder"),
    ("empty", "holds no run"),
    ("sweep without runs", "holds no run"),
])
def test_ccs_plot_of_a_folder_without_runs_fails(tmp_path, how, fragment):
    folder = tmp_path / "runs"
    if how != "missing":
        folder.mkdir()
    if how == "sweep without runs":
        (folder / "transfer.csv").write_text("model,reporter,layer,auroc,train,eval\n")
    with pytest.raises(SystemExit) as caught:
        cli.main(["plot", str(folder)])
    assert fragment in str(caught.value.code) and str(folder) in str(caught.value.code)


@pytest.fixture()
def tutorial_runs(monkeypatch, tmp_path):
    """Run the tutorials CLI without running notebooks: records each notebook's parameters."""
    from nbtoolkit.cli import tutorials

    seen = {}

    def run(paths, out, *, jobs, parameters, report):
        seen.update({p.stem: parameters(p.stem) for p in paths})
        return []
    monkeypatch.setattr(tutorials, "run_notebooks", run)
    monkeypatch.setattr(tutorials, "write_index", lambda build, runs: build / "index.html")
    return lambda *argv: (tutorials.main([str(ROOT / "notebooks"), str(tmp_path), *argv]), seen)[1]


def test_tutorials_p_preset_is_the_preset_option(tutorial_runs):
    seen = tutorial_runs("--only", "02", "-p", "PRESET=paper")
    assert seen["02_causal_tracing"]["PRESET"] == "paper"


def test_tutorials_model_skips_03_and_says_so(tutorial_runs, capsys):
    seen = tutorial_runs("--only", "02", "03", "-p", "MODEL=gpt2")
    assert seen["02_causal_tracing"]["MODEL"] == "gpt2" and "MODEL" not in seen["03_das"]
    assert "03_das: MODEL stays 'mlp-16'" in capsys.readouterr().out


BAD_TUTORIAL_ARGS = {
    "an unknown preset through -p": (["-p", "PRESET=fast"], "PRESET must be one of cpu, paper, "
                                                           "got 'fast'"),
    "-p PRESET and --preset disagree": (["--preset", "cpu", "-p", "PRESET=paper"],
                                        "-p PRESET='paper' and --preset 'cpu' disagree"),
    "--model for 03 alone": (["--only", "03", "--model", "gpt2"],
                             "--model 'gpt2' applies to no notebook run here: 03_das"),
    "-p MODEL= for 03 alone": (["--only", "03", "-p", "MODEL=gpt2"], "applies to no notebook"),
    "a folder that does not exist": (["MISSING"], "no folder"),
}


@pytest.mark.parametrize("name", BAD_TUTORIAL_ARGS)
def test_bad_tutorials_command_line_runs_nothing(tutorial_runs, tmp_path, capsys, name):
    from nbtoolkit.cli import tutorials

    argv, fragment = BAD_TUTORIAL_ARGS[name]
    with pytest.raises(SystemExit) as caught:
        if argv[0] == "MISSING":
            tutorials.main([str(tmp_path / "missing"), str(tmp_path)])
        else:
            tutorial_runs(*argv)
    assert caught.value.code != 0
    assert fragment in capsys.readouterr().err + str(caught.value.code)


# ------------------------------------------------------------ issue 30: data loaders name the file

GOOD_CONTRAST = {"choices": ["false", "true"], "templates": ["{statement} Answer:"],
                 "examples": [{"statement": "a", "label": 0}, {"statement": "b", "label": 1}]}
BAD_CONTRAST_FILES = {
    "empty file": ("", "is empty"),
    "truncated JSON": (json.dumps(GOOD_CONTRAST)[:40], "is not valid JSON"),
    "binary file": (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not text"),
    "a list, not an object": ("[]", "holds a JSON list, not an object"),
    "no templates key": ({**GOOD_CONTRAST, "templates": None}, "missing key 'templates'"),
    "empty templates": ({**GOOD_CONTRAST, "templates": []}, "'templates' must be a non-empty"),
    "a third choice": ({**GOOD_CONTRAST, "choices": ["a", "b", "c"]},
                       "'choices' must be two answer strings"),
    "missing field": ({**GOOD_CONTRAST, "examples": [{"label": 0}, {"statement": "b", "label": 1}]},
                      "example 0 lacks the field 'statement'"),
    "missing label": ({**GOOD_CONTRAST, "examples": [{"statement": "a"}]}, "example 0 has label None"),
    "label 2": ({**GOOD_CONTRAST, "examples": [{"statement": "a", "label": 2}]}, "has label 2"),
    "one class": ({**GOOD_CONTRAST, "examples": [{"statement": "a", "label": 1}] * 3},
                  "every example has label 1"),
}


@pytest.mark.parametrize("name", BAD_CONTRAST_FILES)
def test_bad_contrast_file_is_named_with_its_problem(tmp_path, name):
    from nbtoolkit.data.contrast import load_contrast

    content, fragment = BAD_CONTRAST_FILES[name]
    path = tmp_path / "mine.json"
    if isinstance(content, dict):
        content = json.dumps({k: v for k, v in content.items() if v is not None})
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _raises(lambda: load_contrast("mine", 0, folder=tmp_path), ValueError, fragment)
    _raises(lambda: load_contrast("mine", 0, folder=tmp_path), ValueError, str(path))
    _raises(lambda: load_contrast("mine", 0, folder=tmp_path), ValueError,
            "data/contrast/README.md")


def test_contrast_folder_that_does_not_exist_is_named(tmp_path):
    from nbtoolkit.data.contrast import load_contrast

    _raises(lambda: load_contrast("capitals", folder=tmp_path / "nope"), ValueError,
            f"no folder {tmp_path / 'nope'}")


BAD_KNOWN_1000 = {
    "empty": (b"", "is empty"),
    "truncated": (b'[{"subject": "Paris", "attribute"', "(the file ends there: truncated?)"),
    "binary": (b"\x1f\x8b\x08\x00\xff\xfe", "is not text"),
    "not a list": (b'{"a": 1}', "must hold a non-empty JSON list"),
}


@pytest.mark.parametrize("name", BAD_KNOWN_1000)
def test_damaged_cached_known_1000_names_the_copy_to_delete(tmp_path, monkeypatch, name):
    from nbtoolkit.data.facts import load_facts, load_rome_known_1000, rome_known_1000_path

    monkeypatch.setenv("NBTOOLKIT_CACHE", str(tmp_path))
    path = rome_known_1000_path()
    path.parent.mkdir(parents=True)
    content, fragment = BAD_KNOWN_1000[name]
    path.write_bytes(content)
    _raises(load_rome_known_1000, ValueError, fragment)
    _raises(load_rome_known_1000, ValueError, f"Delete the cached copy ({path})")
    _raises(load_facts, ValueError, fragment, path)


# ------------------------------------------------------------ issue 30: metrics checked

BAD_SWEEP_METRICS = {
    "a scalar": lambda p: (p[:, 5] - p[:, 6]).mean(),
    "a float": lambda p: 0.5,
    "one number per vocabulary entry": lambda p: p[0],
    "a column": lambda p: p[:, [5]],
}


@pytest.mark.parametrize("name", BAD_SWEEP_METRICS)
def test_sweep_metric_must_give_one_number_per_row(lm, name):
    from nbtoolkit.interchange import interchange_sweep

    before = hook_count(lm.model)
    error = TypeError if name == "a float" else ValueError
    _raises(lambda: interchange_sweep(lm, "abcd", "abce", BAD_SWEEP_METRICS[name], layers=[0]),
            error, "one value per pair")
    assert hook_count(lm.model) == before


# ------------------------------------------------------------ issue 30: exercise checks at the edges

def _residual(lm, prompt, layer):
    from nbtoolkit.exercises.feedback import captured

    return captured(lm, prompt, nbtoolkit.site_name(layer))


def _my_helper():
    raise NotImplementedError("the helper I have not written yet")


EXERCISE_EDGES = {
    "a bfloat16 answer": (lambda lm, p, layer: _residual(lm, p, layer).bfloat16(), "passed", ""),
    "a float16 answer": (lambda lm, p, layer: _residual(lm, p, layer).half(), "passed", ""),
    "a bfloat16 answer that is wrong": (lambda lm, p, layer: (_residual(lm, p, layer) * 1.1).bfloat16(),
                                        "failed", "compared within"),
    "NotImplementedError from the student's helper": (lambda lm, p, layer: _my_helper(), "failed",
                                                      "your function called _my_helper"),
}


@pytest.mark.parametrize("name", EXERCISE_EDGES)
def test_exercise_check_judges_the_value(name):
    from nbtoolkit.exercises.getting_started import check_residual_at

    student, status, fragment = EXERCISE_EDGES[name]
    feedback = check_residual_at(student)
    assert feedback.status == status and fragment in feedback.message, str(feedback)


def test_exercise_0d_tensor_is_one_number():
    from nbtoolkit.exercises.feedback import tensor

    assert tensor(torch.tensor(2.0), "x", (1,)).tolist() == [2.0]


def test_untouched_stub_is_still_not_done():
    from nbtoolkit.exercises.getting_started import check_residual_at

    def residual_at(lm, prompt, layer):
        raise NotImplementedError()
    assert check_residual_at(residual_at).status == "not done yet"


# ------------------------------------------------------------ issue 30: positions through every entry point

def _top(lm, batch):
    """The top model's forward (an encoder-decoder's decoder reads the prompt's ids too)."""
    with torch.no_grad():
        if lm.model.config.is_encoder_decoder:
            return lm.model(**batch, decoder_input_ids=batch["input_ids"])
        return lm.model(**batch)


def _body(lm, batch):
    with torch.no_grad():
        return lm.model.base_model(**batch)


def _body_mask_by_position(lm, batch):
    with torch.no_grad():
        return lm.model.base_model(batch["input_ids"], batch["attention_mask"],
                                   position_ids=batch["position_ids"])


def _encoder(lm, batch):
    with torch.no_grad():
        return lm.model.get_encoder()(**batch)


def _decoder(lm, batch):
    """A T5 decoder stack alone, on the batch as its (left-padded) decoder input."""
    with torch.no_grad():
        encoded = lm.model.get_encoder()(**batch).last_hidden_state
        return lm.model.get_decoder()(**batch, encoder_hidden_states=encoded,
                                      encoder_attention_mask=batch["attention_mask"])


# entry point: (family, forward through it, the stack's site prefix)
POSITION_ENTRY_POINTS = {
    "llama body": ("llama", _body, ""),
    "llama body, mask passed by position": ("llama", _body_mask_by_position, ""),
    "gpt2 body": ("gpt2", _body, ""),
    "gemma3 body": ("gemma3", _body, ""),
    "opt body (its LM calls the decoder inside)": ("opt", _body, ""),
    "bert body": ("bert", _body, ""),
    "t5 encoder stack": ("t5", _encoder, "encoder."),
    "t5 decoder stack": ("t5", _decoder, "decoder."),
}
STEER = torch.randn(D, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", POSITION_ENTRY_POINTS)
def test_padded_batch_through_each_entry_point_equals_each_prompt_alone(name):
    """Set(at=[1]) on a left-padded batch through the body (a T5 stack) changes each prompt's
    token 1, as the top forward does on each prompt alone. Before the fix the body's forward
    never told the patch its padding (only the top module's did), so the short prompt was
    patched in its padding."""
    family, forward, prefix = POSITION_ENTRY_POINTS[name]
    small = tiny_model(family, n_layers=2)
    steer, read = {prefix + "layer.0": Set(STEER, at=[1])}, prefix + "layer.1"
    prompts = ["ab", "abcdef"]
    with patch(small, steer), capture(small, read) as together:
        forward(small, small.encode(prompts))
    for row, prompt in enumerate(prompts):
        with patch(small, steer), capture(small, read) as alone:
            _top(small, small.encode(prompt))
        n = alone[read].shape[1]
        torch.testing.assert_close(together[read][row, -n:], alone[read][0], atol=1e-5, rtol=0)


def _t5_changed(small, batch, site, run):
    """The columns of each row of ``site`` that Set(at=[1]) changes in ``run(small, batch)``."""
    with capture(small, site) as clean:
        run(small, batch)
    with patch(small, {site: Set(STEER, at=[1])}), capture(small, site) as acts:
        run(small, batch)
    diff = (acts[site] != clean[site]).any(-1)
    return [row.nonzero().flatten().tolist() for row in diff]


def test_t5_decoder_of_the_encoders_length_is_not_shifted():
    """The decoder's ids have no padding: position 1 is column 1 in every row. Before the fix a
    decoder as long as the left-padded encoder input got the encoder's padding: [[5], [1]]."""
    small = tiny_model("t5", n_layers=2)
    batch = small.encode(["ab", "abcdef"])
    assert _t5_changed(small, batch, "decoder.layer.0", _top) == [[1], [1]]
    assert _t5_changed(small, batch, "encoder.layer.0", _top) == [[5], [1]]


def test_t5_generate_counts_the_encoders_positions():
    """generate calls the encoder stack itself, not the top model: its padded batch is patched
    at each prompt's token 1, as each prompt alone (before the fix: at column 1, in padding)."""
    small = tiny_model("t5", n_layers=2)
    steer, read = {"encoder.layer.0": Set(STEER, at=[1])}, "encoder.layer.1"
    prompts = ["ab", "abcdef"]
    with patch(small, steer), capture(small, read) as together:
        small.model.generate(**small.encode(prompts), max_new_tokens=2)
    for row, prompt in enumerate(prompts):
        with patch(small, steer), capture(small, read) as alone:
            small.model.generate(**small.encode(prompt), max_new_tokens=2)
        n = alone[read].shape[1]
        torch.testing.assert_close(together[read][row, -n:], alone[read][0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_forward_after_generate_counts_from_position_0(family):
    """Under one patch, a generate then a plain body (encoder) forward: the forward's token 1 is
    patched. Before the fix it kept the last decoding step's offset and patched nothing."""
    small = tiny_model(family, n_layers=2)
    prefix, forward = ("encoder.", _encoder) if family == "t5" else ("", _body)
    site = prefix + "layer.0"
    batch = small.encode(["ab", "abcdef"])
    with capture(small, site) as clean:
        forward(small, batch)
    prompts = ["ab", "abcdef"]
    with patch(small, {site: Set(STEER, at=[1])}), capture(small, site) as acts:
        if family == "t5":
            small.model.generate(**small.encode(prompts), max_new_tokens=3, min_new_tokens=3)
        else:
            small.generate(prompts, max_new_tokens=3, min_new_tokens=3)
        forward(small, batch)
    changed = (acts[site] != clean[site]).any(-1)
    assert [row.nonzero().flatten().tolist() for row in changed] == [[5], [1]]
