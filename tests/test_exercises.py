"""The classroom exercises: every tutorial's solutions pass their checks; every check says "not
done yet" on the untouched stub and names each anticipated wrong answer in the method's words;
the student notebooks nbgrader generates hold no solution text and run up to every exercise."""

from __future__ import annotations

import ast
import importlib
import random
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import nbtoolkit as nb
from nbtoolkit.exercises.feedback import FAILED, NOT_DONE, ExerciseFailed, Feedback, captured
from nbtoolkit.exercises.release import is_check, is_solution, release
from test_exercises_circuits import WRONG as CIRCUITS_WRONG
from test_lens_exercises import WRONG as LENS_WRONG  # notebook 09's anticipated mistakes

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK = re.compile(r"from (nbtoolkit\.exercises\.\w+) import (check_\w+)\n\n\2\((\w+)\)$")


@dataclass
class Exercise:
    notebook: str
    number: str        # "02.3"
    solution: str      # the solution cell's source
    check_cell: str    # the check cell's source
    module: str
    check: str
    function: str
    points: int

    def check_function(self):
        return getattr(importlib.import_module(self.module), self.check)


def exercises_of(path: Path) -> list[Exercise]:
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for solution, check in zip(cells, cells[1:]):
        if not is_solution(solution):
            continue
        assert is_check(check), f"{path.name}: the solution cell {solution.id} is not followed by its check"
        match = CHECK.match(check.source)
        assert match, f"{path.name}: check cell {check.id} should import and call one check:\n{check.source}"
        grade_id = check.metadata["nbgrader"]["grade_id"]
        number = grade_id.removeprefix("check_").replace("_", ".")
        found.append(Exercise(path.stem, number, solution.source, check.source, *match.groups(),
                              check.metadata["nbgrader"]["points"]))
    return found


EXERCISES = [e for path in TUTORIALS for e in exercises_of(path)]
BY_NUMBER = {e.number: e for e in EXERCISES}


def run_cell(source: str, namespace: dict):
    """Execute a cell's code in ``namespace``; the value of its last line if it is an expression."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace) if last else None


def namespace_for(notebook: str, cells: dict[str, str]) -> dict:
    """The names a notebook's import cell gives exercise cells, then ``cells`` (number -> source)
    of that notebook executed in order."""
    namespace = {"torch": torch, "np": np, "nb": nb}
    for number, source in sorted(cells.items()):
        if number.startswith(notebook[:2]):
            run_cell(source, namespace)
    return namespace


# ---------------------------------------------------------------- the tutorials' exercises

def test_every_tutorial_has_two_to_four_exercises_of_rising_difficulty():
    assert TUTORIALS
    for path in TUTORIALS:
        found = exercises_of(path)
        assert 2 <= len(found) <= 4, f"{path.name} has {len(found)} exercises"
        points = [e.points for e in found]
        assert points == sorted(points) and len(set(points)) > 1, f"{path.name}: points {points}"
        assert [e.number for e in found] == [f"{path.name[:2]}.{i}" for i in range(1, len(found) + 1)]
        for e in found:
            assert e.solution.count("### BEGIN SOLUTION") == 1 == e.solution.count("### END SOLUTION")
            assert f"def {e.function}(" in e.solution


@pytest.mark.parametrize("number", sorted(BY_NUMBER))
def test_the_tutorials_solution_passes_its_check(number):
    exercise = BY_NUMBER[number]
    namespace = namespace_for(exercise.notebook, {e.number: e.solution for e in EXERCISES
                                                  if e.number <= number})
    feedback = run_cell(exercise.check_cell, namespace)
    assert isinstance(feedback, Feedback) and feedback.passed, str(feedback)
    assert str(feedback).startswith("✔ Correct")


def test_a_check_leaves_random_state_and_threads_as_it_found_them():
    exercise = BY_NUMBER["05.3"]  # trains a probe with its own generator
    namespace = namespace_for("05", {e.number: e.solution for e in EXERCISES})
    threads = torch.get_num_threads()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state())
    run_cell(exercise.check_cell, namespace)
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    assert torch.equal(torch.random.get_rng_state(), state[2])
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("bad", [None, "residual_at", 3])
def test_a_check_wants_the_function_itself(bad):
    with pytest.raises(TypeError, match="pass your function itself"):
        BY_NUMBER["00.1"].check_function()(bad)


def test_an_error_in_the_students_code_is_feedback_naming_its_line():
    cell = "def residual_at(lm, prompt, layer):\n    zero = 0\n    return 1 / zero\n"
    namespace = {}
    run_cell(cell, namespace)  # a cell is its own file, as in Jupyter
    feedback = BY_NUMBER["00.1"].check_function()(namespace["residual_at"])
    assert feedback.status == FAILED
    assert "ZeroDivisionError" in feedback.message and "line 3 of your function's cell" in feedback.message


def test_under_nbgrader_a_check_fails_its_grade_cell_or_prints_its_verdict(monkeypatch, capsys):
    def stub(lm, prompt, layer):
        raise NotImplementedError()

    check = BY_NUMBER["00.1"].check_function()
    assert check(stub).status == NOT_DONE
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(ExerciseFailed, match="Not done yet"):
        check(stub)
    with pytest.raises(ExerciseFailed, match="drop the batch axis"):
        check(with_batch_axis)
    # a displayed value would be read as a partial score: the verdict is printed instead
    assert check(namespace_for("00", {"00.1": BY_NUMBER["00.1"].solution})["residual_at"]) is None
    assert capsys.readouterr().out.startswith("✔ Correct (exercise 00.1)")


# ---------------------------------------------------------------- anticipated wrong answers

def _patched_probs(lm, prompt, edits):
    with torch.no_grad(), nb.patch(lm, edits):
        return lm.next_token_probs(prompt)[0]


# 00.1 residual_at(lm, prompt, layer)
def entering_block(lm, prompt, layer): return captured(lm, prompt, nb.site_name(layer, "in"))
def mlp_output(lm, prompt, layer): return captured(lm, prompt, nb.site_name(layer, "mlp"))
def attn_output(lm, prompt, layer): return captured(lm, prompt, nb.site_name(layer, "attn"))
def with_batch_axis(lm, prompt, layer): return captured(lm, prompt, nb.site_name(layer))[None]


def hugging_face_plus_one(lm, prompt, layer):
    with torch.no_grad():
        return lm.model(**lm.encode(prompt), output_hidden_states=True).hidden_states[layer + 1][0]


# 00.2 interchange(lm, base, source, layer, position)
def _interchange(lm, into, source, site, at):
    return _patched_probs(lm, into, {site: nb.Set(captured(lm, source, site)[None], at=at)})


def every_position(lm, base, source, layer, position):
    return _interchange(lm, base, source, nb.site_name(layer), None)


def reversed_runs(lm, base, source, layer, position):
    return _interchange(lm, source, base, nb.site_name(layer), [position])


def unpatched(lm, base, source, layer, position): return lm.next_token_probs(base)[0]
def source_run(lm, base, source, layer, position): return lm.next_token_probs(source)[0]


def log_probabilities(lm, base, source, layer, position):
    return _interchange(lm, base, source, nb.site_name(layer), [position]).log()


def stream_entering(lm, base, source, layer, position):
    return _interchange(lm, base, source, nb.site_name(layer, "in"), [position])


# 00.3 interchange_row(lm, base, source, layer, metric)
def one_forward_per_position(lm, base, source, layer, metric):
    site = nb.site_name(layer)
    return torch.stack([metric(_interchange(lm, base, source, site, [p])[None])[0]
                        for p in range(len(lm.tokens(base)))])


def every_row_every_position(lm, base, source, layer, metric):
    n = len(lm.tokens(base))
    return metric(_interchange(lm, base, source, nb.site_name(layer), None)[None]).expand(n)


def row_reversed(lm, base, source, layer, metric):
    return one_forward_per_position(lm, base, source, layer, metric).flip(0)


# 02.1 noise_level(lm, subjects)
def _subject_rows(lm, subjects):
    embed = lm.model.get_input_embeddings()
    with torch.no_grad():
        return torch.cat([embed(torch.tensor(lm.tokenizer(s, add_special_tokens=False)["input_ids"]))
                          for s in subjects])


def one_sigma(lm, subjects): return _subject_rows(lm, subjects).std().item()
def variance(lm, subjects): return _subject_rows(lm, subjects).var().item()
def whole_matrix(lm, subjects): return 3 * lm.model.get_input_embeddings().weight.std().item()
def per_dimension(lm, subjects): return 3 * _subject_rows(lm, subjects).std(0).mean().item()
def joined(lm, subjects): return 3 * _subject_rows(lm, [" ".join(subjects)]).std().item()
def population_std(lm, subjects): return 3 * _subject_rows(lm, subjects).std(unbiased=False).item()


# 02.2 corrupted_score(lm, prompt, subject_range, noise, answer_id)
def _corrupted_probs(lm, prompt, start, end, noise, edits=None, replace=False):
    def add(act, ctx):
        act = act.clone()
        act[:, start:end] = noise if replace else act[:, start:end] + noise
        return act
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad(), nb.patch(lm, {"embed": add, **(edits or {})}):
        return lm.model(input_ids=ids.expand(len(noise), -1)).logits[:, -1].softmax(-1)


def no_noise(lm, prompt, subject_range, noise, answer_id):
    return lm.next_token_probs(prompt)[0, answer_id].item()


def shifted_noise(lm, prompt, subject_range, noise, answer_id):
    start, end = subject_range
    return _corrupted_probs(lm, prompt, start + 1, end + 1, noise)[:, answer_id].mean().item()


def one_draw(lm, prompt, subject_range, noise, answer_id):
    return _corrupted_probs(lm, prompt, *subject_range, noise[:1].expand_as(noise))[:, answer_id].mean().item()


def replaced_embeddings(lm, prompt, subject_range, noise, answer_id):
    return _corrupted_probs(lm, prompt, *subject_range, noise, replace=True)[:, answer_id].mean().item()


def own_top_token(lm, prompt, subject_range, noise, answer_id):
    return _corrupted_probs(lm, prompt, *subject_range, noise).max(-1).values.mean().item()


def per_copy(lm, prompt, subject_range, noise, answer_id):
    return _corrupted_probs(lm, prompt, *subject_range, noise)[:, answer_id]


# 02.3 restored_score(lm, prompt, subject_range, noise, answer_id, token, layer)
def _restored(lm, prompt, subject_range, noise, answer_id, token, site, at="token"):
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad(), nb.capture(lm, site) as clean:
        lm.model(input_ids=ids)
    restore = nb.Set(clean[site], at=[token] if at == "token" else None)
    return _corrupted_probs(lm, prompt, *subject_range, noise, {site: restore})[:, answer_id].mean().item()


def not_restored(lm, prompt, subject_range, noise, answer_id, token, layer):
    return _corrupted_probs(lm, prompt, *subject_range, noise)[:, answer_id].mean().item()


def restored_without_noise(lm, prompt, subject_range, noise, answer_id, token, layer):
    return lm.next_token_probs(prompt)[0, answer_id].item()


def every_token_restored(lm, prompt, subject_range, noise, answer_id, token, layer):
    return _restored(lm, prompt, subject_range, noise, answer_id, token, nb.site_name(layer), at=None)


def restored_entering(lm, prompt, subject_range, noise, answer_id, token, layer):
    return _restored(lm, prompt, subject_range, noise, answer_id, token, nb.site_name(layer, "in"))


def restored_mlp(lm, prompt, subject_range, noise, answer_id, token, layer):
    return _restored(lm, prompt, subject_range, noise, answer_id, token, nb.site_name(layer, "mlp"))


def corrupted_into_clean(lm, prompt, subject_range, noise, answer_id, token, layer):
    site = nb.site_name(layer)
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad(), nb.capture(lm, site) as acts:
        _corrupted_probs(lm, prompt, *subject_range, noise)
    with torch.no_grad(), nb.patch(lm, {site: nb.Set(acts[site], at=[token])}):
        probs = lm.model(input_ids=ids.expand(len(noise), -1)).logits[:, -1].softmax(-1)
    return probs[:, answer_id].mean().item()


# 03.1 neuron_interchange(base, source, dims)
def in_place(base, source, dims):
    base[:, dims] = source[:, dims]
    return base


def rows_not_neurons(base, source, dims):
    out = base.clone()
    out[dims] = source[dims]
    return out


def other_neurons(base, source, dims):
    out = source.clone()
    out[:, dims] = base[:, dims]
    return out


def whole_source(base, source, dims): return source.clone()


# 03.2 rotated_interchange(base, source, R, k, block)
def _rotated(base, source, forward, back, columns):
    b, s = base @ forward, source @ forward
    b[:, columns] = s[:, columns]
    return b @ back


def back_with_r(base, source, R, k, block): return _rotated(base, source, R, R, slice(block * k, block * k + k))
def rows_of_r(base, source, R, k, block): return _rotated(base, source, R.T, R, slice(block * k, block * k + k))
def first_block(base, source, R, k, block): return _rotated(base, source, R, R.T, slice(0, k))


def outside_block(base, source, R, k, block):
    keep = [i for i in range(R.shape[0]) if not block * k <= i < block * k + k]
    return _rotated(base, source, R, R.T, keep)


def no_rotation(base, source, R, k, block):
    out = base.clone()
    out[:, block * k:block * k + k] = source[:, block * k:block * k + k]
    return out


# 03.3 interchange_accuracy(net, rotation, site, pairs, variable)
def _iia(net, rotation, site, base, source, labels, block, patched=True):
    from nbtoolkit.das import Interchange
    with torch.no_grad():
        with nb.capture(net, site) as acts:
            net(source)
        edits = {site: Interchange(rotation, acts[site], block=block)} if patched else {}
        with nb.patch(net, edits):
            return (net(base).argmax(-1) == labels).float().mean().item()


def _kept(pairs, variable):
    keep = pairs["intervention_ids"] == variable
    return pairs["inputs"][keep], pairs["source_inputs"][keep], pairs["labels"][keep]


def block_zero(net, rotation, site, pairs, variable):
    return _iia(net, rotation, site, *_kept(pairs, variable), block=0)


def every_pair(net, rotation, site, pairs, variable):
    return _iia(net, rotation, site, pairs["inputs"], pairs["source_inputs"], pairs["labels"], variable)


def no_interchange(net, rotation, site, pairs, variable):
    return _iia(net, rotation, site, *_kept(pairs, variable), variable, patched=False)


def a_count(net, rotation, site, pairs, variable):
    base, _, _ = _kept(pairs, variable)
    return len(base) * _iia(net, rotation, site, *_kept(pairs, variable), block=variable)


# 04.1 left_boundary_label(base, source)
def strict_bounds(base, source): return (source["Z"] > source["X"]) & (base["Z"] < base["Y"])
def base_answer(base, source): return (base["Z"] >= base["X"]) & (base["Z"] <= base["Y"])
def source_answer(base, source): return (source["Z"] >= source["X"]) & (source["Z"] <= source["Y"])
def mixed_inputs(base, source): return (base["Z"] >= source["X"]) & (base["Z"] <= base["Y"])
def right_boundary(base, source): return (base["Z"] >= base["X"]) & (source["Z"] <= source["Y"])


# 04.2 boundary_mask(d, boundary, temperature)
def _sig(d, b, t, shift=0.5, scale_b=True, times=False):
    i = torch.arange(d) + shift
    edge = b * d if scale_b else b
    f = (lambda x: x * t) if times else (lambda x: x / t)
    return torch.sigmoid(f(i)) * torch.sigmoid(f(edge - i))


def at_i(d, boundary, temperature): return _sig(d, boundary, temperature, shift=0.0)
def times_temperature(d, boundary, temperature): return _sig(d, boundary, temperature, times=True)
def unscaled_boundary(d, boundary, temperature): return _sig(d, boundary, temperature, scale_b=False)


def right_edge_only(d, boundary, temperature):
    return torch.sigmoid((boundary * d - torch.arange(d) - 0.5) / temperature)


def hard_mask(d, boundary, temperature): return (torch.arange(d) + 0.5 < boundary * d).float()
def complement_mask(d, boundary, temperature): return 1 - _sig(d, boundary, temperature)


# 04.3 boundless_interchange(base, source, R, mask)
def mixed_neurons(base, source, R, mask): return (1 - mask) * base + mask * source
def mask_swapped(base, source, R, mask): return (mask * (base @ R) + (1 - mask) * (source @ R)) @ R.T
def boundless_back_with_r(base, source, R, mask): return ((1 - mask) * (base @ R) + mask * (source @ R)) @ R


def boundless_in_place(base, source, R, mask):
    base.mul_(1)[:] = ((1 - mask) * (base @ R) + mask * (source @ R)) @ R.T
    return base


# 05.1 normalize(x_pos, x_neg)
def not_normalised(x_pos, x_neg): return x_pos, x_neg


def shared_mean(x_pos, x_neg):
    mean = torch.cat([x_pos, x_neg]).mean(0)
    return x_pos - mean, x_neg - mean


def means_swapped(x_pos, x_neg): return x_pos - x_neg.mean(0), x_neg - x_pos.mean(0)


def standardised(x_pos, x_neg):
    return (x_pos - x_pos.mean(0)) / x_pos.std(0), (x_neg - x_neg.mean(0)) / x_neg.std(0)


def over_features(x_pos, x_neg):
    return x_pos - x_pos.mean(1, keepdim=True), x_neg - x_neg.mean(1, keepdim=True)


# 05.2 ccs_loss(p_pos, p_neg)
def _ccs(p_pos, p_neg, consistency="right", confidence="min", reduce="mean"):
    cons = {"right": (p_pos - (1 - p_neg)) ** 2, "asymmetric": (p_pos - p_neg) ** 2,
            "abs": (p_pos - (1 - p_neg)).abs(), "none": 0 * p_pos}[consistency]
    conf = {"min": torch.minimum(p_pos, p_neg) ** 2, "max": torch.maximum(p_pos, p_neg) ** 2,
            "unsquared": torch.minimum(p_pos, p_neg), "none": 0 * p_pos}[confidence]
    return getattr(cons + conf, reduce)()


def asymmetric(p_pos, p_neg): return _ccs(p_pos, p_neg, consistency="asymmetric")
def no_confidence(p_pos, p_neg): return _ccs(p_pos, p_neg, confidence="none")
def no_consistency(p_pos, p_neg): return _ccs(p_pos, p_neg, consistency="none")
def max_confidence(p_pos, p_neg): return _ccs(p_pos, p_neg, confidence="max")
def unsquared_confidence(p_pos, p_neg): return _ccs(p_pos, p_neg, confidence="unsquared")
def absolute_consistency(p_pos, p_neg): return _ccs(p_pos, p_neg, consistency="abs")
def summed(p_pos, p_neg): return _ccs(p_pos, p_neg, reduce="sum")


# 05.3 fit_ccs(x_pos, x_neg)
def _train(a, b, loss, steps=500):
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(a.shape[1], generator=g)
    theta = (theta / theta.norm()).requires_grad_(True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.AdamW([theta, bias], lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(torch.sigmoid(a @ theta + bias), torch.sigmoid(b @ theta + bias)).backward()
        optimizer.step()
    return theta.detach(), bias.item()


def raw_states(x_pos, x_neg): return _train(x_pos, x_neg, _ccs)
def consistency_only(x_pos, x_neg): return _train(*normalize_ok(x_pos, x_neg), no_confidence)
def untrained(x_pos, x_neg): return _train(*normalize_ok(x_pos, x_neg), _ccs, steps=0)
def only_theta(x_pos, x_neg): return _train(*normalize_ok(x_pos, x_neg), _ccs, steps=0)[0]
def normalize_ok(x_pos, x_neg): return x_pos - x_pos.mean(0), x_neg - x_neg.mean(0)


# 06.1 quantize(scores)
def _levels(a, top, rounding=np.ceil, scale=10):
    return rounding(scale * np.divide(a, top, out=np.zeros_like(a), where=top > 0))


def zero_over_zero(scores):
    positive = np.maximum(scores, 0)
    with np.errstate(invalid="ignore"):
        return np.ceil(10 * positive / positive.max(0, keepdims=True))


def no_relu(scores): return np.ceil(10 * scores / np.abs(scores).max(0, keepdims=True))
def global_max(scores): return _levels(np.maximum(scores, 0), np.maximum(scores, 0).max())
def row_max(scores): return _levels(np.maximum(scores, 0), np.maximum(scores, 0).max(1, keepdims=True))
def rounded(scores): return _levels(np.maximum(scores, 0), np.maximum(scores, 0).max(0, keepdims=True), np.round)
def floored(scores): return _levels(np.maximum(scores, 0), np.maximum(scores, 0).max(0, keepdims=True), np.floor)


def zero_to_one(scores):
    return _levels(np.maximum(scores, 0), np.maximum(scores, 0).max(0, keepdims=True), scale=1)


# 06.2 importance_density(levels)
def _density(levels, b=7, p=4, normalise=True):
    a = np.where(levels <= b, 0, levels).astype(float)
    l1, lp = a.sum(1), (a ** p).sum(1) ** (1 / p)
    s = np.divide(l1, lp, out=np.zeros_like(l1), where=lp > 0)
    return s / s.max() if normalise else s


def l2_norm(levels): return _density(levels, p=2)
def no_threshold(levels): return _density(levels, b=-1)
def keeps_seven(levels): return _density(levels, b=6)
def not_normalised_density(levels): return _density(levels, normalise=False)


def nan_rows(levels):
    a = np.where(levels <= 7, 0, levels).astype(float)
    with np.errstate(invalid="ignore"):
        s = a.sum(1) / (a ** 4).sum(1) ** 0.25
    return s / np.nanmax(s)


def over_prompt_tokens(levels): return _density(levels.T)


# 06.3 attribution(lm, prompt_ids, response_ids)
def _attribution(lm, prompt_ids, response_ids, objective="prob", rows="prompt", reduce="gxi"):
    n = len(prompt_ids)
    with nb.capture(lm, "embed", grad=True) as acts:
        logits = lm.model(input_ids=torch.tensor([prompt_ids + response_ids])).logits[0]
    values = {"prob": logits.softmax(-1), "logprob": logits.log_softmax(-1), "logit": logits}[objective]
    embeddings, columns = acts["embed"], []
    for m, token in enumerate(response_ids):
        grad, = torch.autograd.grad(values[n + m - 1, token], embeddings, retain_graph=True)
        kept = slice(None) if rows == "all" else slice(0, n)
        g, e = grad[0, kept], embeddings[0, kept]
        columns.append({"gxi": (g * e).sum(-1), "grad": g.sum(-1), "abs": (g * e).sum(-1).abs()}[reduce])
    return torch.stack(columns, 1).detach()


def log_probability(lm, p, r): return _attribution(lm, p, r, objective="logprob")
def logit(lm, p, r): return _attribution(lm, p, r, objective="logit")
def gradient_only(lm, p, r): return _attribution(lm, p, r, reduce="grad")
def absolute(lm, p, r): return _attribution(lm, p, r, reduce="abs")
def every_row(lm, p, r): return _attribution(lm, p, r, rows="all")
def transposed(lm, p, r): return _attribution(lm, p, r).T


# 07.1 hidden_state(lm, prompt, layer, token)
def python_index(lm, prompt, layer, token):
    return captured(lm, prompt, nb.site_name(layer % lm.n_layers))[token]


def hugging_face_index(lm, prompt, layer, token):
    with torch.no_grad():
        return lm.model(**lm.encode(prompt), output_hidden_states=True).hidden_states[layer][0, token]


def one_layer_early(lm, prompt, layer, token):
    site = "embed" if layer <= 0 else nb.site_name(layer - 1)
    return captured(lm, prompt, site)[token]


def after_final_norm(lm, prompt, layer, token):
    site = "embed" if layer == -1 else "final_norm" if layer == lm.n_layers - 1 else nb.site_name(layer)
    return captured(lm, prompt, site)[token]


# 07.2 overlay(h, v, strength, mode)
def share_swapped(h, v, s, mode): return s * h + (1 - s) * v if mode == "normalized" else h + s * v


def norm_rescaled(h, v, s, mode):
    scaled = v * h.norm(dim=-1, keepdim=True) / v.norm()
    return s * scaled + (1 - s) * h if mode == "normalized" else h + s * v


def mode_ignored(h, v, s, mode): return s * v + (1 - s) * h
def unscaled_addition(h, v, s, mode): return s * v + (1 - s) * h if mode == "normalized" else h + v
def always_replaced(h, v, s, mode): return v.expand_as(h).clone() if mode == "normalized" else h + s * v


# 07.3 insert(lm, input_ids, positions, vector, insert_layer)
def _inserted(lm, ids, site, intervention):
    with torch.no_grad(), nb.patch(lm, {site: intervention} if site else {}):
        return lm.model(input_ids=ids[None]).logits[0, -1].softmax(-1)


def block_output(lm, ids, positions, v, k): return _inserted(lm, ids, nb.site_name(k), nb.Set(v, at=positions))
def first_placeholder(lm, ids, positions, v, k): return _inserted(lm, ids, nb.site_name(k, "in"), nb.Set(v, at=positions[:1]))
def whole_prompt(lm, ids, positions, v, k): return _inserted(lm, ids, nb.site_name(k, "in"), nb.Set(v))
def added(lm, ids, positions, v, k): return _inserted(lm, ids, nb.site_name(k, "in"), nb.Add(v, at=positions))
def nothing_inserted(lm, ids, positions, v, k): return _inserted(lm, ids, None, None)


# 08.1 supervised_loss(states, token, target)
def every_token(states, token, target): return ((states - target) ** 2).mean()
def summed_error(states, token, target): return ((states[token] - target) ** 2).sum()
def distance(states, token, target): return (states[token] - target).norm()
def last_token(states, token, target): return ((states[-1] - target) ** 2).mean()
def detached_loss(states, token, target): return ((states[token] - target) ** 2).mean().detach()


# 08.2 reinforcement_loss(states, rewards)
def _dot(a, b): return (a * b).sum(-1)
def no_stop_gradient(h, r): return -(r * _dot(h, h) / _dot(h, h)).mean()
def numerator_unstopped(h, r): return -(r * _dot(h, h) / _dot(h, h).detach()).mean()
def sign_flipped(h, r): return (r * _dot(h, h.detach()) / _dot(h, h).detach()).mean()
def summed_rewards(h, r): return -(r * _dot(h, h.detach()) / _dot(h, h).detach()).sum()
def unnormalised(h, r): return -(r * _dot(h, h.detach())).mean()


# 08.3 block_state(lm, entering, layer)
def _blocks(lm, entering, start, end, grad=True):
    from nbtoolkit.core.blocks import body, run_blocks

    site = nb.site_name(end - 1)
    with torch.enable_grad(), nb.capture(lm, site, grad=grad) as acts, run_blocks(lm, start, end):
        body(lm)(inputs_embeds=entering, use_cache=False)
    return acts[site][0]


def entering_returned(lm, entering, layer): return entering[0]
def from_block_zero(lm, entering, layer): return _blocks(lm, entering, 0, layer + 1)
def next_block(lm, entering, layer): return _blocks(lm, entering, layer, layer + 2)
def without_gradient(lm, entering, layer): return _blocks(lm, entering, layer, layer + 1, grad=False)


WRONG = [  # (exercise, wrong answer, what the feedback must say)
    ("00.1", entering_block, "entering block 1 (site layer.1.in"),
    ("00.1", mlp_output, "what the MLP of block 1 wrote"),
    ("00.1", attn_output, "what the attention of block 1 wrote"),
    ("00.1", hugging_face_plus_one, "after the final norm (Hugging Face's hidden_states[-1])"),
    ("00.1", with_batch_axis, "drop the batch axis"),
    ("00.2", every_position, "an interchange copies one (layer, position)"),
    ("00.2", reversed_runs, "the base run receives the source's activation"),
    ("00.2", unpatched, "the base run's own probabilities"),
    ("00.2", source_run, "you ran the source prompt"),
    ("00.2", log_probabilities, "not 1: return probabilities"),
    ("00.2", stream_entering, "the stream entering block"),
    ("00.3", one_forward_per_position, "forward passes; put one row per position in one batch"),
    ("00.3", every_row_every_position, "row p should get it at position p only"),
    ("00.3", row_reversed, "your row is reversed"),
    ("02.1", one_sigma, "your noise is 3x too small: ROME uses 3 standard deviations"),
    ("02.1", variance, "you took the variance"),
    ("02.1", whole_matrix, "over the whole embedding matrix"),
    ("02.1", per_dimension, "ONE standard deviation over all elements"),
    ("02.1", joined, "ROME embeds each subject alone"),
    ("02.2", no_noise, "this is the clean run's p(answer)"),
    ("02.2", shifted_noise, "one token to the right"),
    ("02.2", one_draw, "each corrupted copy its own: row r gets noise[r]"),
    ("02.2", replaced_embeddings, "ROME adds it"),
    ("02.2", own_top_token, "you scored each copy's own top token"),
    ("02.2", per_copy, "should be one number"),
    ("02.3", not_restored, "nothing was restored"),
    ("02.3", restored_without_noise, "either the subject noise is missing, or you restored every token"),
    ("02.3", every_token_restored, "restored every token of the layer"),
    ("02.3", restored_entering, "you restored the stream entering block"),
    ("02.3", restored_mlp, "you restored the MLP output"),
    ("02.3", corrupted_into_clean, "the clean state goes into every corrupted copy"),
    ("03.1", in_place, "you changed `base` in place"),
    ("03.1", rows_not_neurons, "`dims` index neurons, the last axis"),
    ("03.1", other_neurons, "every neuron except `dims`"),
    ("03.1", whole_source, "the whole source activation"),
    ("03.2", back_with_r, "the inverse of an orthogonal rotation is its transpose"),
    ("03.2", rows_of_r, "the rotated coordinates of x are x @ R"),
    ("03.2", first_block, "block b is coordinates [b·k, b·k + k)"),
    ("03.2", outside_block, "every rotated coordinate except the block"),
    ("03.2", no_rotation, "you swapped neurons, not rotated coordinates"),
    ("03.3", block_zero, "lives in block j: Interchange(rotation, source, block=variable)"),
    ("03.3", every_pair, "counts only the pairs whose intervention_ids equal"),
    ("03.3", no_interchange, "accuracy of the unintervened network"),
    ("03.3", a_count, "it is a fraction of the pairs"),
    ("04.1", strict_bounds, "the bracket is inclusive"),
    ("04.1", base_answer, "this is the base's own answer"),
    ("04.1", source_answer, "only LB comes from the source"),
    ("04.1", mixed_inputs, "Z_source ≥ X_source"),
    ("04.1", right_boundary, "you took the right boundary from the source"),
    ("04.2", at_i, "at their centres, i + ½"),
    ("04.2", times_temperature, "it divides"),
    ("04.2", unscaled_boundary, "the block ends at b·d"),
    ("04.2", right_edge_only, "the mask has two edges"),
    ("04.2", hard_mask, "a hard 0/1 mask"),
    ("04.2", complement_mask, "your mask is 1 − m"),
    ("04.3", mixed_neurons, "you mixed neurons, not rotated coordinates"),
    ("04.3", mask_swapped, "m is the share taken from the source"),
    ("04.3", boundless_back_with_r, "you rotated back with R"),
    ("04.3", boundless_in_place, "you changed `base` in place"),
    ("05.1", not_normalised, "nothing was subtracted"),
    ("05.1", shared_mean, "one mean shared by both halves"),
    ("05.1", means_swapped, "the means are swapped"),
    ("05.1", standardised, "only subtracts the class means"),
    ("05.1", over_features, "the mean over the examples (axis 0)"),
    ("05.2", asymmetric, "the CCS loss should be symmetric in p(x⁺) and 1 − p(x⁻)"),
    ("05.2", no_confidence, "the confidence term min(p⁺, p⁻)² is missing"),
    ("05.2", no_consistency, "the consistency term (p⁺ − (1 − p⁻))² is missing"),
    ("05.2", max_confidence, "it penalises the smaller of the two probabilities"),
    ("05.2", unsquared_confidence, "the confidence term is squared"),
    ("05.2", absolute_consistency, "the consistency term is squared"),
    ("05.2", summed, "average over the pairs, not sum"),
    ("05.3", raw_states, "your probe reads which answer was appended"),
    ("05.3", consistency_only, "your probe says about 0.5 for everything"),
    ("05.3", untrained, "train longer"),
    ("05.3", only_theta, "return the pair (theta, bias)"),
    ("06.1", zero_over_zero, "your levels contain NaN"),
    ("06.1", no_relu, "apply the ReLU first"),
    ("06.1", global_max, "the largest score of the whole matrix"),
    ("06.1", row_max, "each prompt token (row) by its maximum"),
    ("06.1", rounded, "levels use the ceiling"),
    ("06.1", floored, "not floor"),
    ("06.1", zero_to_one, "levels run from 0 to 10"),
    ("06.2", l2_norm, "the L4 norm (p = 4), not L2"),
    ("06.2", no_threshold, "drop the levels ≤ 7 first"),
    ("06.2", keeps_seven, "7 included"),
    ("06.2", not_normalised_density, "divide by the largest density"),
    ("06.2", nan_rows, "your density contains NaN"),
    ("06.2", over_prompt_tokens, "has shape"),
    ("06.3", log_probability, "you differentiated log p(y_m)"),
    ("06.3", logit, "you differentiated the logit of y_m"),
    ("06.3", gradient_only, "the attribution is gradient × input"),
    ("06.3", absolute, "you took the absolute value"),
    ("06.3", every_row, "keep the 27 prompt tokens' rows"),
    ("06.3", transposed, "the two axes are swapped"),
    ("07.1", python_index, "not the last layer"),
    ("07.1", hugging_face_index, "Hugging Face's hidden_states[-1]"),
    ("07.1", one_layer_early, "nbtoolkit's layer 1 is hidden_states[2]"),
    ("07.1", after_final_norm, "this is after the final norm"),
    ("07.2", share_swapped, "s is the share of the inserted vector"),
    ("07.2", norm_rescaled, "'normalized' mode rescales nothing"),
    ("07.2", mode_ignored, "in 'addition' mode the vector is added"),
    ("07.2", unscaled_addition, "'addition' scales the vector by the strength"),
    ("07.2", always_replaced, "keeps (1 − s) of the activation"),
    ("07.3", block_output, "you wrote v into the output of block 1"),
    ("07.3", first_placeholder, "the first placeholder only"),
    ("07.3", whole_prompt, "every position of the prompt"),
    ("07.3", added, "you added v to the placeholders' states"),
    ("07.3", nothing_inserted, "nothing was inserted"),
    ("08.1", every_token, "you averaged over every token"),
    ("08.1", summed_error, "not sum"),
    ("08.1", distance, "not the distance"),
    ("08.1", last_token, "you used the last token's state"),
    ("08.1", detached_loss, "carries no gradient"),
    ("08.2", no_stop_gradient, "its gradient is zero and nothing is learned"),
    ("08.2", numerator_unstopped, "with h·h its gradient doubles"),
    ("08.2", sign_flipped, "the sign"),
    ("08.2", summed_rewards, "average over the states"),
    ("08.2", unnormalised, "divide by ‖sg(h)‖²"),
    ("08.3", entering_returned, "you returned the stream entering block"),
    ("08.3", from_block_zero, "run block 1 alone"),
    ("08.3", next_block, "this is the output of block 2"),
    ("08.3", without_gradient, "carry no gradient"),
    *LENS_WRONG,
] + [  # notebooks 10 and 11's checks, with the mistakes tests/test_exercises_circuits.py anticipates
    (number, wrong, message) for check, wrong, message in CIRCUITS_WRONG
    for number in [{"check_logit_difference": "10.1", "check_patch_head": "10.2",
                    "check_direct_effect": "10.3", "check_false_negatives": "11.1",
                    "check_atp_estimate": "11.2", "check_qk_fixed": "11.3"}.get(check)] if number]


def test_every_exercise_anticipates_wrong_answers():
    covered = {number for number, _, _ in WRONG}
    assert covered == set(BY_NUMBER), f"no wrong answers tested for {set(BY_NUMBER) - covered}"


@pytest.mark.parametrize("number, wrong, message", WRONG, ids=[f"{n}-{w.__name__}" for n, w, _ in WRONG])
def test_a_wrong_answer_gets_its_message(number, wrong, message):
    feedback = BY_NUMBER[number].check_function()(wrong)
    assert feedback.status == FAILED and message in feedback.message, str(feedback)
    assert str(feedback).startswith("✘ Not yet right")


def test_a_population_std_is_still_romes_sigma():
    assert BY_NUMBER["02.1"].check_function()(population_std).passed


# ---------------------------------------------------------------- the student notebooks

@pytest.fixture(scope="module")
def students(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """The student notebooks ``make exercises`` writes, generated by nbgrader into a temp folder."""
    build = tmp_path_factory.mktemp("build")
    written = release(ROOT / "notebooks", build)
    assert (build / "classroom" / "gradebook.db").exists()
    assert "c.Execute.timeout = 900" in (build / "classroom" / "nbgrader_config.py").read_text()
    return {path.stem: nbformat.read(path, as_version=4) for path in written}


def test_make_exercises_wants_notebooks_with_exercises(tmp_path):
    with pytest.raises(ValueError, match="is not a folder of notebooks"):
        release(tmp_path / "missing", tmp_path / "build")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]),
                   tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="has exercises"):
        release(tmp_path, tmp_path / "build")
    assert not (tmp_path / "build").exists()  # nothing half-written


def solution_lines(source: str) -> list[str]:
    inside = source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    return [line.strip() for line in inside.splitlines() if line.strip()]


def test_make_exercises_writes_a_student_version_of_every_tutorial(students):
    assert sorted(students) == [path.stem for path in TUTORIALS]


def test_student_notebooks_hold_no_solution_and_change_nothing_else(students):
    for path in TUTORIALS:
        tutorial, student = nbformat.read(path, as_version=4), students[path.stem]
        assert len(student.cells) == len(tutorial.cells)
        for ours, theirs in zip(tutorial.cells, student.cells):
            assert "BEGIN SOLUTION" not in theirs.source and theirs.get("outputs", []) == []
            if is_solution(ours):
                assert "raise NotImplementedError()" in theirs.source
                for line in solution_lines(ours.source):
                    assert line not in theirs.source, f"{path.name}: solution line {line!r} left in"
                assert ours.source.split("### BEGIN SOLUTION")[0] in theirs.source  # the signature
            else:
                assert theirs.source == ours.source
        assert all(c.metadata.get("editable") is False for c in student.cells if is_check(c))


def _stub_namespace(students, notebook: str) -> dict:
    """A namespace with the student notebook's untouched exercise cells executed."""
    stubs = [c.source for c in students[notebook].cells if is_solution(c)]
    numbers = [e.number for e in EXERCISES if e.notebook == notebook]
    return namespace_for(notebook, dict(zip(numbers, stubs)))


@pytest.mark.parametrize("number", sorted(BY_NUMBER))
def test_the_untouched_stub_is_not_done_yet(students, number):
    exercise = BY_NUMBER[number]
    feedback = run_cell(exercise.check_cell, _stub_namespace(students, exercise.notebook))
    assert feedback.status == NOT_DONE and str(feedback).startswith("… Not done yet"), str(feedback)


def _bound_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            names |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _code(cell) -> ast.Module:
    """A code cell's syntax tree, IPython magics (``%pip ...``) read as ``pass``."""
    lines = [line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
             else line for line in cell.source.splitlines()]
    return ast.parse("\n".join(lines))


def test_the_tutorial_never_uses_an_exercise_function():
    """So a student notebook's other cells run as the tutorial's do, whatever the student wrote."""
    for path in TUTORIALS:
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        exercise_cells = [c for c in cells if is_solution(c) or is_check(c)]
        tutorial_cells = [c for c in cells if c not in exercise_cells]
        defined = set().union(*(_bound_names(_code(c)) for c in exercise_cells))
        defined -= set().union(*(_bound_names(_code(c)) for c in tutorial_cells))
        for cell in tutorial_cells:
            used = {n.id for n in ast.walk(_code(cell)) if isinstance(n, ast.Name)} & defined
            assert not used, f"{path.name}: a tutorial cell uses the exercise names {used}"


@pytest.mark.slow
def test_student_notebooks_run_up_to_every_exercise_and_say_not_done_yet(students):
    """Every student notebook's set-up and import cells, then its exercise cells, in one kernel
    (a fresh namespace per notebook): no error, and every check cell says "Not done yet". The
    tutorial cells in between are the tutorials' own (checked above), which CI runs in full."""
    from nbclient import NotebookClient

    combined = nbformat.v4.new_notebook(metadata=next(iter(students.values())).metadata)
    owners = []
    for name, student in students.items():
        head = [c for c in student.cells[1:4] if c.cell_type == "code"]
        exercise_cells = [c for c in student.cells if is_solution(c) or is_check(c)]
        for cell in [nbformat.v4.new_code_cell("%reset -f")] + head + exercise_cells:
            combined.cells.append(nbformat.v4.new_code_cell(cell.source))
            owners.append((name, is_check(cell)))
    NotebookClient(combined, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    checks = [(name, cell) for (name, check), cell in zip(owners, combined.cells) if check]
    assert len(checks) == len(EXERCISES)
    for name, cell in checks:
        text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert text.startswith("… Not done yet"), f"{name}: {cell.source!r} printed {text!r}"
