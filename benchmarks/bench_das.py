"""DAS training step vs a plain forward + backward of the same model and batch (goal ≤ 1.3×).

The DAS step is the body of ``train_das``'s loop (:func:`nbtoolkit.das.train.das_step` after
setting the batch's :class:`~nbtoolkit.das.rotations.Interchange`), timed in the state
``train_das`` runs it in: frozen model, the interchange hook registered, source activations
captured beforehand (they do not depend on the rotation). It sets the batch's sources, runs the
base forward through the rotated interchange, takes the cross-entropy, backpropagates into the
rotation and takes ``train_das``'s Adam step. Beside it, as a profile, the same step with R a
plain matrix (no orthogonal parametrization): what the swap itself costs. The reference: the same
model and batch with trainable weights, forward, cross-entropy, backward (no optimiser step). The
three are timed alternately, a few consecutive steps each after one untimed step (as in a
training loop), and the medians of ``repeats`` are compared; the MLP rows' repeats come from
several fresh processes (:data:`PROCESSES`). One weights state only: ``train_das`` freezes the
model whatever state it comes in, and the reference needs trainable weights (its backward fills
their gradients).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from copy import deepcopy

import torch
import torch.nn.functional as F

from nbtoolkit import tiny_model
from nbtoolkit.core.anatomy import hf_model
from nbtoolkit.core.hooks import patch
from nbtoolkit.core.modes import frozen
from nbtoolkit.das import (BoundlessRotatedSubspace, RotatedSubspace, capture_sources, das_optimizer,
                           predict_logits)
from nbtoolkit.das.forward import device_of, interchange_for
from nbtoolkit.das.train import CurrentInterchange, das_step
from nbtoolkit.tasks import hierarchical_equality as he

from timing import FULL, row


def _per_step(fn, steps: int) -> float:
    """Seconds per call of ``fn`` over ``steps`` consecutive calls, after one untimed call: the
    first call after switching candidates pays for the other's cold caches, which a training
    loop's consecutive steps do not."""
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def _timings(model, site, batch, source, intervention, at, repeats, steps=5) -> dict:
    """Seconds per step of ``ours``, ``plain R`` and ``reference``, ``repeats`` each, timed
    alternately; ``rotation``: the rotation's forward+backward alone."""
    module = hf_model(model)

    def plain():
        for p in module.parameters():
            p.grad = None
        F.cross_entropy(predict_logits(model, batch["base"]), batch["labels"]).backward()

    device = device_of(module)
    with frozen(module):
        sources = capture_sources(model, site, source, at=at)

    def training_step(subspace):
        """``train_das``'s step on ``batch`` for ``subspace``, and the hook it runs under."""
        optimizer, current = das_optimizer(subspace), CurrentInterchange()

        def step():
            current.interchange = interchange_for(subspace, batch, sources, at, device)
            das_step(model, subspace, batch, optimizer)
        return step, current

    runs = {"ours": training_step(intervention),
            "plain R": training_step(_with_plain_rotation(intervention))}
    timings = {key: [] for key in (*runs, "reference")}
    plain()  # warm-up
    for step, current in runs.values():
        with frozen(module), patch(model, {site: current}):
            step()
    for _ in range(repeats):  # alternate so load changes hit all alike
        for key, (step, current) in runs.items():
            with frozen(module), patch(model, {site: current}):
                timings[key].append(_per_step(step, steps))
        timings["reference"].append(_per_step(plain, steps))
    return {**timings, "rotation": [_rotation_cost(intervention, steps)]}


def _row(name: str, timings: dict, note: str) -> dict:
    """The RESULTS.md row of :func:`_timings` (several processes' lists joined)."""
    out = row(name, timings["ours"], timings["reference"], "<= 1.3", note, "frozen")
    reference = out["reference"]["median"]
    fixed = min(timings["rotation"])
    plain_R = statistics.median(timings["plain R"]) / reference
    out["note"] += (f"; profile: the rotation exp(skew) forward+backward, timed alone, takes "
                    f"{fixed * 1e3:.2f} ms per step at any batch ({fixed / reference:.2f} of the "
                    f"reference); the same step with R a plain matrix (no orthogonal "
                    f"parametrization) {plain_R:.2f}×")
    return out


def _with_plain_rotation(intervention):
    """A copy of ``intervention`` whose R is a plain trainable ``[d, d]`` matrix (its current
    value): the step without the parametrization's cost (training it would leave the rotations)."""
    copy = deepcopy(intervention)
    copy.rotate = torch.nn.Linear(copy.d, copy.d, bias=False)
    copy.rotate.weight = torch.nn.Parameter(intervention.rotation.detach().clone())
    return copy


def _rotation_cost(intervention, steps: int) -> float:
    """Seconds per step of the rotation's forward and backward alone (the parametrization's
    matrix exponential and its gradient): the part of a DAS step that no batch size amortises."""
    def rotation():
        intervention.rotation.sum().backward()
    cost = min(_per_step(rotation, steps) for _ in range(5))
    intervention.zero_grad(set_to_none=True)
    return cost


# A millisecond-scale step's speed differs by up to 2× between fresh processes on one idle
# machine (the same code, the same data), more than between repeats in one process: the MLP rows
# are timed in PROCESSES fresh processes and their repeats joined.
PROCESSES = 3
MLP_ROWS = ((6400, False), (6400, True), (25600, False))
MLP_NOTE = ("reference: plain forward+backward. R = exp(skew 16×16) forward+backward and the Adam "
            "step cost the same at any batch size; batch 25600 shows the per-example part")


def _mlp_name(n: int, blocks: bool) -> str:
    name = f"DAS step, MLP 16×3, batch {n}, layers.0"
    return name + ", WX/YZ block per example" if blocks else name


def mlp_timings(repeats: int) -> list[dict]:
    """This process's :func:`_timings` of each of :data:`MLP_ROWS`."""
    torch.manual_seed(0)
    net, out = he.mlp(), []
    for n, blocks in MLP_ROWS:
        data = he.counterfactual_dataset(n, seed=0)
        batch = {"base": data["inputs"], "labels": data["labels"]}
        if blocks:  # as in training: WX or YZ per example
            batch["block"] = data["intervention_ids"]
        out.append(_timings(net, "layers.0", batch, data["source_inputs"], RotatedSubspace(16, 8),
                            None, repeats))
    return out


def mlp_rows(repeats: int) -> list[dict]:
    """:data:`MLP_ROWS` timed in :data:`PROCESSES` fresh processes, ``repeats`` split among them."""
    each = max(1, repeats // PROCESSES)
    runs = []
    for _ in range(PROCESSES):
        child = subprocess.run([sys.executable, __file__, "--mlp-timings", str(each)],
                               capture_output=True, text=True)
        if child.returncode:
            raise RuntimeError(f"a bench_das child process failed:\n{child.stderr[-3000:]}")
        runs.append(json.loads(child.stdout.splitlines()[-1]))
    rows = []
    for i, (n, blocks) in enumerate(MLP_ROWS):
        joined = {key: [t for run in runs for t in run[i][key]] for key in runs[0][i]}
        per_process = [statistics.median(run[i]["ours"]) / statistics.median(run[i]["reference"])
                       for run in runs]
        note = (f"{MLP_NOTE}; {PROCESSES} fresh processes × {each} repeats, the ratio in each: "
                + ", ".join(f"{r:.2f}" for r in per_process))
        rows.append(_row(_mlp_name(n, blocks), joined, note))
    return rows


def run(repeats: int = 30 if FULL else 15) -> list[dict]:
    torch.manual_seed(0)
    lm = tiny_model("llama")
    batch = {"base": torch.randint(0, 250, (32, 48)), "labels": torch.randint(0, 250, (32,))}
    src = torch.randint(0, 250, (32, 48))
    note = "reference: plain forward+backward of the same model and batch"
    tiny = {"DAS step, tiny llama (3×64), batch 32×48, layer.1 @ last pos":
            RotatedSubspace(64, 16),
            "Boundless DAS step, tiny llama, batch 32×48, layer.1 @ last pos":
            BoundlessRotatedSubspace(64)}
    rows = [_row(name, _timings(lm, "layer.1", batch, src, intervention, -1, repeats), note)
            for name, intervention in tiny.items()]
    return rows + mlp_rows(repeats)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--mlp-timings"]:  # a child of mlp_rows
        print(json.dumps(mlp_timings(int(sys.argv[2]))))
    else:
        for r in run():
            print(r)
