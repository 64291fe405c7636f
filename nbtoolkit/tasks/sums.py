"""The sum a + b + c, with the intermediate variable S = a + b (and the alternative T = b + c).

Inputs: three digits in 0..n_values−1, one-hot encoded and concatenated ``[N, 3·n_values]``;
output: the sum as a class in 0..3·(n_values−1).

Two task networks: :func:`mlp` sees a, b and c at once, so nothing forces any layer to hold
a + b apart from c; :func:`staged_mlp` reads a and b first and c one block later, so its
site ``ab`` (which sees only a and b) must carry everything the output needs from them: S.
"""

from __future__ import annotations

import numpy as np
import torch

from .causal_model import CausalModel
from .hierarchical_equality import MLP


def causal_model(grouping: str = "ab") -> CausalModel:
    """a, b, c -> S = a + b -> O = S + c  (``grouping="bc"``: T = b + c -> O = a + T)."""
    if grouping == "ab":
        return CausalModel(parents={"S": ["a", "b"], "O": ["S", "c"]},
                           mechanisms={"S": lambda a, b: a + b, "O": lambda s, c: s + c}, output="O")
    if grouping == "bc":
        return CausalModel(parents={"T": ["b", "c"], "O": ["a", "T"]},
                           mechanisms={"T": lambda b, c: b + c, "O": lambda a, t: a + t}, output="O")
    raise ValueError(f"grouping must be 'ab' (S = a + b) or 'bc' (T = b + c), got {grouping!r}")


def sample_inputs(n: int, n_values: int = 10, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    rng = rng or np.random.default_rng(0)
    return {k: rng.integers(0, n_values, size=n) for k in "abc"}


def encode(inputs: dict[str, np.ndarray], n_values: int = 10) -> torch.Tensor:
    """One-hot a, b, c concatenated ``[n, 3·n_values]``."""
    eye = np.eye(n_values, dtype=np.float32)
    return torch.from_numpy(np.concatenate([eye[inputs[k]] for k in "abc"], axis=-1))


def factual_dataset(n: int, n_values: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = sample_inputs(n, n_values, rng)
    return {"inputs": encode(x, n_values), "labels": torch.from_numpy(causal_model().output_of(x))}


def counterfactual_dataset(n: int, variable: str = "S", n_values: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{inputs, source_inputs, labels, intervention_ids}``: the output when ``variable``
    (S = a + b, or T = b + c) takes the source's value."""
    grouping = {"S": "ab", "T": "bc"}.get(variable)
    if grouping is None:
        raise ValueError(f"variable must be 'S' (a + b) or 'T' (b + c), got {variable!r}")
    rng = np.random.default_rng(seed)
    base, source = sample_inputs(n, n_values, rng), sample_inputs(n, n_values, rng)
    labels = causal_model(grouping).counterfactual(base, source, variable)
    return {"inputs": encode(base, n_values), "source_inputs": encode(source, n_values),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "intervention_ids": torch.zeros(n, dtype=torch.long)}


def mlp(n_values: int = 10, hidden: int = 16, n_layers: int = 3, seed: int = 0) -> torch.nn.Module:
    """Hidden blocks ``layers.{i}`` of width ``hidden``; head over the 3·(n_values−1)+1 sums."""
    return MLP(3 * n_values, hidden, n_layers, 3 * (n_values - 1) + 1, seed)


def staged_mlp(n_values: int = 10, hidden: int = 16, seed: int = 0) -> torch.nn.Module:
    """a and b enter first, c one block later (site ``ab``: ``[N, hidden]``, a function of a
    and b only); head over the 3·(n_values−1)+1 sums."""
    return StagedMLP(n_values, hidden, seed)


class StagedMLP(torch.nn.Module):
    """Input ``[N, 3·n_values]`` (one-hot a, b, c as :func:`encode`). ``ab`` = Linear+ReLU on
    (a, b) ``[N, hidden]``; ``abc`` = two Linear+ReLU blocks on (ab, c); ``head`` = the sum's
    logits ``[N, 3·(n_values−1)+1]``."""

    def __init__(self, n_values: int = 10, hidden: int = 16, seed: int = 0):
        super().__init__()
        self.n_values = n_values
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.ab = torch.nn.Sequential(torch.nn.Linear(2 * n_values, hidden), torch.nn.ReLU())
            self.abc = torch.nn.Sequential(
                torch.nn.Linear(hidden + n_values, hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU())
            self.head = torch.nn.Linear(hidden, 3 * (n_values - 1) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ab, c = x[:, :2 * self.n_values], x[:, 2 * self.n_values:]
        return self.head(self.abc(torch.cat([self.ab(ab), c], dim=-1)))
