"""Checks for notebook 04 (Boundless DAS): the left-boundary counterfactual label, the soft
boundary mask, and the boundless interchange, against :mod:`nbtoolkit.tasks.price_tagging`
and :class:`nbtoolkit.das.BoundlessRotatedSubspace`."""

from __future__ import annotations

import numpy as np
import torch

from ..das import BoundlessRotatedSubspace
from ..tasks import price_tagging as pt
from .feedback import Feedback, Wrong, call, expect, run_check, tensor, unchanged

# ---------------------------------------------------------------- 04.1


def _grid() -> tuple[dict, dict]:
    """Every combination of a base price below, at X, inside, at Y and above its bracket [300,
    700] (and at 250: below it, above the source's X) with a source price in the same five places
    of its own bracket [200, 600] (cents): 30 (base, source) pairs."""
    base_z, source_z = np.meshgrid([100, 250, 300, 500, 700, 900], [100, 200, 400, 600, 800],
                                   indexing="ij")
    n = base_z.size
    base = {"X": np.full(n, 300), "Y": np.full(n, 700), "Z": base_z.ravel()}
    source = {"X": np.full(n, 200), "Y": np.full(n, 600), "Z": source_z.ravel()}
    return base, source


def check_left_boundary_label(left_boundary_label) -> Feedback | None:
    """Exercise 04.1: ``left_boundary_label(base, source)`` is the answer (True = "Yes") on the
    base when the left boundary LB = (Z ≥ X) takes its value on the source; ``base`` and
    ``source`` are ``{"X", "Y", "Z": [n]}`` in cents."""
    return run_check("04.1", left_boundary_label, _left_boundary_label)


def _left_boundary_label(student) -> str:
    base, source = _grid()
    n = len(base["Z"])
    want = pt.causal_model("left").counterfactual(base, source, "LB").astype(np.float64)
    got = tensor(call(student, {k: v.copy() for k, v in base.items()},
                      {k: v.copy() for k, v in source.items()}), "your labels", (n,))
    if not set(got.unique().tolist()) <= {0.0, 1.0}:
        raise Wrong("your labels should be booleans (True = 'Yes'), one per (base, source) pair")
    lb = lambda z, x: z >= x  # noqa: E731
    rb = lambda z, y: z <= y  # noqa: E731
    expect(got, want, [
        (lambda: lb(base["Z"], base["X"]) & rb(base["Z"], base["Y"]),
         "this is the base's own answer; the interchange gives LB the value it has on the source"),
        (lambda: lb(source["Z"], source["X"]) & rb(source["Z"], source["Y"]),
         "this is the source's own answer; only LB comes from the source, RB = (Z ≤ Y) is "
         "still the base's"),
        (lambda: lb(base["Z"], source["X"]) & rb(base["Z"], base["Y"]),
         "you compared the base's Z with the source's X; LB takes its value on the source "
         "input: Z_source ≥ X_source"),
        (lambda: lb(base["Z"], base["X"]) & rb(source["Z"], source["Y"]),
         "you took the right boundary from the source; this hypothesis interchanges the left "
         "one, LB = (Z ≥ X)"),
        (lambda: (source["Z"] > source["X"]) & (base["Z"] < base["Y"]),
         "the bracket is inclusive: LB = (Z ≥ X) and RB = (Z ≤ Y) (a price equal to a bound is "
         "inside)"),
    ], "your labels differ from LB(source) ∧ RB(base)")
    return ("the counterfactual label LB(source) ∧ RB(base): what the causal model answers when "
            "its left boundary is set to the source's value. DAS asks whether a subspace of the "
            "network can be swapped to the same effect.")


# ---------------------------------------------------------------- 04.2

def _mask(d: int, boundary: float, temperature: float) -> torch.Tensor:
    subspace = BoundlessRotatedSubspace(d, init=boundary, temperature=temperature)
    return subspace.masks()[0].detach()


def check_boundary_mask(boundary_mask) -> Feedback | None:
    """Exercise 04.2: ``boundary_mask(d, boundary, temperature)`` is Boundless DAS's soft mask
    over rotated coordinates, ``[d]``: m_i = σ((i + ½)/τ) · σ((b·d − i − ½)/τ)."""
    return run_check("04.2", boundary_mask, _boundary_mask)


def _boundary_mask(student) -> str:
    for d, b, t in ((16, 0.5, 1.0), (16, 0.3, 0.2), (10, 1.0, 5.0)):
        want = _mask(d, b, t)
        got = tensor(call(student, d, b, t), "your mask", (d,))
        i = torch.arange(d, dtype=torch.float64)
        s = torch.sigmoid
        expect(got, want, [
            (lambda: s(i / t) * s((b * d - i) / t),
             "you measured coordinates at i; nbtoolkit measures them at their centres, i + ½, "
             "so that as τ → 0 every mask entry becomes exactly 0 or 1 (at i, coordinate 0 "
             "stays half-swapped at every temperature, as in pyvene)"),
            (lambda: s((i + 0.5) * t) * s((b * d - i - 0.5) * t),
             "you multiplied by the temperature; it divides: σ((i + ½)/τ), so the mask gets "
             "sharper as τ falls"),
            (lambda: s((i + 0.5) / t) * s((b - i - 0.5) / t),
             "the boundary is a fraction of the d rotated coordinates: the block ends at b·d"),
            (lambda: s((b * d - i - 0.5) / t),
             "the mask has two edges: σ((i + ½ − 0)/τ) opens the block at coordinate 0 and "
             "σ((b·d − i − ½)/τ) closes it at b·d; multiply them"),
            (lambda: (i + 0.5 < b * d).double(),
             "this is a hard 0/1 mask; Boundless DAS uses a soft one (sigmoids with temperature "
             "τ), so the boundary b gets a gradient"),
            (lambda: 1 - want, "your mask is 1 − m: m is the share of each rotated coordinate "
                               "taken from the source, near 1 inside [0, b·d)"),
        ], f"your mask differs for d={d}, b={b}, τ={t}")
    return ("Boundless DAS's mask: a soft block [0, b·d) of rotated coordinates, whose boundary b "
            "is learned while τ falls (50 → 0.1), so the subspace size is learned too.")


# ---------------------------------------------------------------- 04.3

def check_boundless_interchange(boundless_interchange) -> Feedback | None:
    """Exercise 04.3: ``boundless_interchange(base, source, R, mask)``: rotate both (x @ R),
    mix each rotated coordinate as (1 − m)·base + m·source, rotate back (@ Rᵀ)."""
    return run_check("04.3", boundless_interchange, _boundless_interchange)


def _boundless_interchange(student) -> str:
    d, n = 12, 5
    subspace = BoundlessRotatedSubspace(d, init=0.4, seed=2, temperature=1.0)
    R, m = subspace.rotation.detach(), subspace.masks()[0].detach()
    g = torch.Generator().manual_seed(3)
    base, source = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    kept = base.clone()
    got = tensor(call(student, base, source, R.clone(), m.clone()), "your interchanged activations",
                 (n, d))
    unchanged(base, kept, "base")
    want = subspace(base, source).detach()

    def mixed(forward, back, share):
        return ((1 - share) * (base @ forward) + share * (source @ forward)) @ back

    expect(got, want, [
        (lambda: (1 - m) * base + m * source,
         "you mixed neurons, not rotated coordinates: rotate both with R first, mix, then "
         "rotate back with R.T"),
        (lambda: mixed(R, R.T, 1 - m), "m is the share taken from the source: "
                                       "(1 − m)·Rb + m·Rs, not the other way round"),
        (lambda: mixed(R, R, m), "you rotated back with R; the inverse of a rotation is its "
                                 "transpose: @ R.T"),
        (lambda: mixed(R.T, R, m), "nbtoolkit's convention: rotated coordinates are x @ R, "
                                   "back with @ R.T"),
    ], "your activations differ from the boundless interchange")
    return ("the Boundless DAS interchange Rᵀ((1 − m)⊙Rb + m⊙Rs): as the temperature falls it "
            "becomes DAS's hard swap of the rotated block [0, b·d).")


__all__ = ["check_boundary_mask", "check_boundless_interchange", "check_left_boundary_label"]
