"""Hierarchical equality (Geiger et al.): four vectors W, X, Y, Z; output (W = X) = (Y = Z).

The causal model has the intermediate variables WX = (W = X) and YZ = (Y = Z). Inputs are the
four vectors concatenated, ``[N, 4·dim]`` float32; each is drawn uniformly from [−1, 1]^dim
and, for an equal pair, copied (pyvene's tutorial encoding, dim 4 → 16 inputs).
"""

from __future__ import annotations

import numpy as np
import torch

from .causal_model import CausalModel

VARIABLES = ("WX", "YZ")


def _equal(a, b):
    return np.all(np.asarray(a) == np.asarray(b), axis=-1)


def causal_model() -> CausalModel:
    """W, X, Y, Z -> WX = (W = X), YZ = (Y = Z) -> O = (WX = YZ)."""
    return CausalModel(parents={"WX": ["W", "X"], "YZ": ["Y", "Z"], "O": ["WX", "YZ"]},
                       mechanisms={"WX": _equal, "YZ": _equal, "O": lambda wx, yz: wx == yz},
                       output="O")


def sample_inputs(n: int, dim: int = 4, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """``n`` inputs ``{W, X, Y, Z: [n, dim]}`` with WX and YZ each true for half of them."""
    rng = rng or np.random.default_rng(0)
    v = rng.uniform(-1, 1, size=(n, 4, dim)).astype(np.float32)
    wx, yz = rng.permutation(n) < n // 2, rng.permutation(n) < n // 2
    v[wx, 1] = v[wx, 0]
    v[yz, 3] = v[yz, 2]
    return dict(zip("WXYZ", (v[:, i] for i in range(4))))


def encode(inputs: dict[str, np.ndarray]) -> torch.Tensor:
    """The network's input ``[n, 4·dim]``: W, X, Y, Z concatenated."""
    return torch.from_numpy(np.concatenate([inputs[k] for k in "WXYZ"], axis=-1))


def factual_dataset(n: int, dim: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{inputs [n, 4·dim], labels [n]}`` with balanced labels (label 1 = (W=X) = (Y=Z))."""
    rng = np.random.default_rng(seed)
    x = sample_inputs(n, dim, rng)
    return {"inputs": encode(x), "labels": torch.from_numpy(causal_model().output_of(x).astype(np.int64))}


def counterfactual_dataset(n: int, variables=VARIABLES, dim: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Interchange examples ``{inputs, source_inputs, labels, intervention_ids}``: example i
    intervenes on ``variables[intervention_ids[i]]`` (cycled, so each variable gets n/len), and
    ``labels`` is the causal model's output on the base with that variable taken from the source."""
    variables = [variables] if isinstance(variables, str) else list(variables)
    bad = [v for v in variables if v not in VARIABLES]
    if bad:
        raise ValueError(f"unknown variables {bad}; hierarchical equality has {VARIABLES}")
    rng = np.random.default_rng(seed)
    model = causal_model()
    base, source = sample_inputs(n, dim, rng), sample_inputs(n, dim, rng)
    ids = np.arange(n) % len(variables)
    labels = np.zeros(n, dtype=np.int64)
    for j, v in enumerate(variables):
        rows = ids == j
        labels[rows] = model.counterfactual({k: a[rows] for k, a in base.items()},
                                            {k: a[rows] for k, a in source.items()}, v)
    return {"inputs": encode(base), "source_inputs": encode(source),
            "labels": torch.from_numpy(labels), "intervention_ids": torch.from_numpy(ids)}


def mlp(dim: int = 4, hidden: int = 16, n_layers: int = 3, seed: int = 0) -> torch.nn.Module:
    """The task network: ``n_layers`` blocks Linear+ReLU of width ``hidden`` (sites
    ``layers.0`` … ``layers.{n_layers-1}``, outputs ``[N, hidden]``) and a 2-way ``head``."""
    return MLP(4 * dim, hidden, n_layers, 2, seed)


class MLP(torch.nn.Module):
    """A plain MLP classifier whose hidden blocks are the named sites ``layers.{i}``."""

    def __init__(self, n_in: int, hidden: int, n_layers: int, n_out: int, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            widths = [n_in] + [hidden] * n_layers
            self.layers = torch.nn.ModuleList(
                torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU())
                for a, b in zip(widths, widths[1:]))
            self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x)
