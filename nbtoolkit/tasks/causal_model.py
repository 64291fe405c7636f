"""A small causal model: named variables, their parents, and a mechanism for each non-input.

    model = CausalModel(
        parents={"WX": ["W", "X"], "YZ": ["Y", "Z"], "O": ["WX", "YZ"]},
        mechanisms={"WX": equal, "YZ": equal, "O": lambda wx, yz: wx == yz},
        output="O")
    model.run({"W": w, "X": x, "Y": y, "Z": z})["O"]
    model.counterfactual(base, source, ["WX"])        # O when WX takes its value from source

Inputs are the variables without parents. Mechanisms receive their parents' values in the
order listed; they may be vectorised (numpy arrays with one row per example), so a whole
dataset runs in one call.
"""

from __future__ import annotations

import graphlib
from typing import Any, Callable, Iterable, Mapping


class CausalModel:
    """Variables, parents and mechanisms; outputs and interchange counterfactuals."""

    def __init__(self, parents: Mapping[str, Iterable[str]], mechanisms: Mapping[str, Callable],
                 output: str, inputs: Iterable[str] | None = None):
        self.parents = {v: list(p) for v, p in parents.items()}
        for v, ps in list(self.parents.items()):
            for p in ps:
                self.parents.setdefault(p, [])
        for v in inputs or ():
            self.parents.setdefault(v, [])
        self.mechanisms = dict(mechanisms)
        self.inputs = [v for v, ps in self.parents.items() if not ps]
        missing = [v for v, ps in self.parents.items() if ps and v not in self.mechanisms]
        if missing:
            raise ValueError(f"variables {missing} have parents but no mechanism")
        extra = [v for v in self.mechanisms if v not in self.parents or not self.parents[v]]
        if extra:
            raise ValueError(f"mechanisms given for {extra}, which have no parents (inputs take "
                             f"their values from the data)")
        if output not in self.parents:
            raise ValueError(f"output {output!r} is not a variable; variables: {list(self.parents)}")
        self.output = output
        self.order = self._topological_order()

    @property
    def variables(self) -> list[str]:
        """All variables in an order where parents come first."""
        return list(self.order)

    def _topological_order(self) -> list[str]:
        try:
            return list(graphlib.TopologicalSorter(self.parents).static_order())
        except graphlib.CycleError as error:
            raise ValueError(f"the causal graph has a cycle: {' -> '.join(error.args[1])}") from None

    def run(self, inputs: Mapping[str, Any], fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every variable's value given the inputs; variables in ``fixed`` are set, not computed."""
        missing = [v for v in self.inputs if v not in inputs and v not in (fixed or {})]
        if missing:
            raise ValueError(f"missing input values for {missing}; inputs are {self.inputs}")
        fixed = dict(fixed or {})
        unknown = [v for v in fixed if v not in self.parents]
        if unknown:
            raise ValueError(f"cannot fix unknown variables {unknown}; variables: {self.variables}")
        values = {}
        for v in self.order:
            if v in fixed:
                values[v] = fixed[v]
            elif not self.parents[v]:
                values[v] = inputs[v]
            else:
                values[v] = self.mechanisms[v](*(values[p] for p in self.parents[v]))
        return values

    def output_of(self, inputs: Mapping[str, Any]) -> Any:
        """The output variable's value."""
        return self.run(inputs)[self.output]

    def counterfactual(self, base: Mapping[str, Any], source: Mapping[str, Any] | list,
                       variables: str | Iterable[str]) -> Any:
        """The output on ``base`` when ``variables`` take the values they have on ``source``
        (an interchange intervention). ``source`` may be one input dict, or a list with one
        input dict per variable (each variable from its own source)."""
        variables = [variables] if isinstance(variables, str) else list(variables)
        unknown = [v for v in variables if v not in self.parents]
        if unknown:
            raise ValueError(f"unknown variables {unknown}; variables: {self.variables}")
        sources = source if isinstance(source, (list, tuple)) else [source] * len(variables)
        if len(sources) != len(variables):
            raise ValueError(f"{len(sources)} sources for {len(variables)} variables")
        fixed = {v: self.run(s)[v] for v, s in zip(variables, sources)}
        return self.run(base, fixed)[self.output]

    def __repr__(self):
        edges = "; ".join(f"{v} <- {', '.join(ps)}" for v, ps in self.parents.items() if ps)
        return f"CausalModel({edges}; output={self.output})"


__all__ = ["CausalModel"]
