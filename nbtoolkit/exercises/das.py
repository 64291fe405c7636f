"""Checks for notebook 03 (DAS): the neuron-aligned interchange, the rotated interchange and
interchange intervention accuracy, against :mod:`nbtoolkit.das`."""

from __future__ import annotations

import torch

from ..das import NeuronSubspace, RotatedSubspace, iia, task_accuracy
from ..tasks import hierarchical_equality as he
from .feedback import Feedback, Wrong, call, expect, number, run_check, tensor, unchanged

D, N = 16, 16  # width of the hidden layer; examples (as many as neurons: rows ≠ neurons shows)


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


# ---------------------------------------------------------------- 03.1

def check_neuron_interchange(neuron_interchange) -> Feedback | None:
    """Exercise 03.1: ``neuron_interchange(base, source, dims)``: ``base`` ``[n, d]`` with the
    neurons ``dims`` taken from ``source``."""
    return run_check("03.1", neuron_interchange, _neuron_interchange)


def _neuron_interchange(student) -> str:
    base, source = _pair()
    dims = [0, 3, 5, 9, 12, 13]
    rest = [i for i in range(D) if i not in dims]
    kept = base.clone()
    got = tensor(call(student, base, source, dims), "your interchanged activations", (N, D))
    unchanged(base, kept, "base")
    want = NeuronSubspace(D, dims)(base, source).detach()

    def rows_swapped():
        out = base.clone()
        out[dims] = source[dims]
        return out

    expect(got, want, [
        (lambda: NeuronSubspace(D, rest)(base, source),
         "you took every neuron except `dims` from the source; the interchange takes exactly "
         "the neurons `dims` from the source and keeps the others from the base"),
        (lambda: source, "this is the whole source activation; only the neurons `dims` come "
                         "from it"),
        (lambda: base, "this is the base activation unchanged; the neurons `dims` should come "
                       "from the source"),
        (rows_swapped, "you swapped rows (examples); `dims` index neurons, the last axis: "
                       "out[:, dims] = source[:, dims]"),
    ], "your activations differ from the neuron-aligned interchange")
    return ("the localist alignment: a causal variable assumed to live in a set of neurons. "
            "neuron_baseline tries many such sets; DAS rotates first.")


# ---------------------------------------------------------------- 03.2

def check_rotated_interchange(rotated_interchange) -> Feedback | None:
    """Exercise 03.2: ``rotated_interchange(base, source, R, k, block)``: rotate (x @ R), take
    rotated coordinates [block·k, block·k + k) from the source, rotate back (@ Rᵀ)."""
    return run_check("03.2", rotated_interchange, _rotated_interchange)


def _rotated_interchange(student) -> str:
    base, source = _pair(1)
    k = 4
    rotation = RotatedSubspace(D, k=k, seed=3)
    R = rotation.rotation.detach()
    for block in (2, 0):
        lo, hi = block * k, block * k + k
        kept = base.clone()
        got = tensor(call(student, base, source, R.clone(), k, block),
                     "your interchanged activations", (N, D))
        unchanged(base, kept, "base")
        want = rotation(base, source, block).detach()

        def mixed(forward, back, cols=slice(lo, hi)):
            b, s = base @ forward, source @ forward
            b[:, cols] = s[:, cols]
            return b @ back

        others = [i for i in range(D) if not lo <= i < hi]
        expect(got, want, [
            (lambda: mixed(R, R), "you rotated back with R; the inverse of an orthogonal "
                                  "rotation is its transpose: rotated @ R.T"),
            (lambda: mixed(R.T, R), "nbtoolkit's convention: the rotated coordinates of x are "
                                    "x @ R (the columns of R are the new axes), back with @ R.T"),
            (lambda: mixed(R, R.T, slice(0, k)),
             f"you swapped rotated coordinates 0..{k - 1} for block {block}; block b is "
             f"coordinates [b·k, b·k + k) = [{lo}, {hi})"),
            (lambda: mixed(R, R.T, others),
             "you took every rotated coordinate except the block from the source; only the "
             "block's k coordinates come from it"),
            (lambda: NeuronSubspace(D, list(range(lo, hi)))(base, source),
             "you swapped neurons, not rotated coordinates: rotate both activations with R "
             "first, swap, then rotate back"),
        ], f"your activations differ from the rotated interchange of block {block}")
    return ("the DAS interchange: swap a k-dimensional block of rotated coordinates. Training "
            "learns R so that the swap does what the causal model predicts.")


# ---------------------------------------------------------------- 03.3

def check_interchange_accuracy(interchange_accuracy) -> Feedback | None:
    """Exercise 03.3: ``interchange_accuracy(net, rotation, site, pairs, variable)`` is the
    IIA of ``rotation`` at ``site`` for one causal variable."""
    return run_check("03.3", interchange_accuracy, _interchange_accuracy)


def _interchange_accuracy(student) -> str:
    net = he.mlp(dim=4, hidden=D, n_layers=1, seed=7)  # untrained: the check needs exactness
    rotation = RotatedSubspace(D, k=8, seed=5)         # only, not a good alignment
    pairs = he.counterfactual_dataset(400, seed=6)
    site = "layers.0"
    for variable in (1, 0):
        rows = pairs["intervention_ids"] == variable
        only = {key: value[rows] for key, value in pairs.items()}
        want = iia(net, rotation, site, pairs, variable=variable)
        got = number(call(student, net, rotation, site, pairs, variable), "your IIA")
        if got > 1:
            raise Wrong(f"your IIA is {got:g}: it is a fraction of the pairs, in [0, 1]")
        other = 1 - variable
        expect(got, want, [
            (lambda: iia(net, rotation, site, {**only, "intervention_ids": 0 * only["intervention_ids"] + other}),
             f"you swapped block {other} of the rotation for variable {variable}; variable j "
             f"({he.VARIABLES[variable]} is j = {variable}) lives in block j: "
             f"Interchange(rotation, source, block=variable)"),
            (lambda: iia(net, rotation, site, {**pairs, "intervention_ids": 0 * pairs["intervention_ids"] + variable}),
             f"you scored every pair; the IIA of variable {variable} counts only the pairs whose "
             f"intervention_ids equal {variable} (the others have the other variable's "
             f"counterfactual labels)"),
            (lambda: iia(net, rotation, site, pairs),
             "you scored every pair, each with its own block; the IIA of one variable counts "
             "only the pairs whose intervention_ids equal it"),
            (lambda: task_accuracy(net, only),
             "this is the accuracy of the unintervened network against the counterfactual "
             "labels: the base run must run inside patch, with the source run's activations "
             "swapped in"),
        ], f"your IIA for variable {variable} ({he.VARIABLES[variable]}) differs from nbtoolkit's")
    return ("IIA: the share of (base, source) pairs on which the intervened network answers what "
            "the causal model predicts under the same interchange. nbtoolkit.das.iia does this "
            "in batches.")


__all__ = ["check_interchange_accuracy", "check_neuron_interchange", "check_rotated_interchange"]
