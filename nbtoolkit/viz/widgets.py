"""Explorers for notebooks: core ipywidgets + inline matplotlib (no custom widget manager, so
they work on Colab). Each is a thin composition of a plot function and a few controls."""

from __future__ import annotations

import html
from typing import Callable, Sequence

import ipywidgets as w
import matplotlib
import matplotlib.figure
import numpy as np
import pandas as pd
from IPython.display import display

from .figures import layer_curves, training_curves


class Explorer(w.VBox):
    """Controls above a plot; changing a control re-renders. ``.figure`` is the current Figure."""

    def __init__(self, plot: Callable[..., matplotlib.figure.Figure], controls: dict[str, w.ValueWidget]):
        self.plot, self.controls = plot, controls
        self.output = w.Output()
        self.figure: matplotlib.figure.Figure | None = None
        for control in controls.values():
            control.observe(lambda change: self.render(), names="value")
        super().__init__([w.HBox(list(controls.values())), self.output])
        self.render()

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def render(self) -> None:
        self.figure = self.plot(**self.values)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)


def _control(name: str, spec) -> w.ValueWidget:
    """A Dropdown for a list/tuple of options, an IntSlider for a range, a Checkbox for a bool."""
    if isinstance(spec, bool):
        return w.Checkbox(value=spec, description=name)
    if isinstance(spec, range):
        if len(spec) == 0:
            raise ValueError(f"control {name!r}: empty range")
        return w.IntSlider(value=spec.start, min=spec.start, max=spec[-1], step=spec.step,
                           description=name, continuous_update=False)
    if isinstance(spec, (list, tuple)) and spec:
        return w.Dropdown(options=list(spec), value=spec[0], description=name)
    raise TypeError(f"control {name!r}: give a non-empty list/tuple of options, a range or a bool, "
                    f"got {spec!r}")


def explore(plot: Callable[..., matplotlib.figure.Figure], **controls) -> Explorer:
    """``plot(**values) -> Figure`` with one control per keyword (options list, range or bool)."""
    return Explorer(plot, {name: _control(name, spec) for name, spec in controls.items()})


def layer_curve_explorer(frame: pd.DataFrame, y: str, x: str = "layer",
                         by: Sequence[str] = (), hue: str | None = None) -> Explorer:
    """Line plot of ``y`` against ``x``; one dropdown per column in ``by`` filters the rows."""
    missing = [c for c in (x, y, *by, *([hue] if hue else [])) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; it has {list(frame.columns)}")

    def plot(**choice):
        rows = frame
        for column, value in choice.items():
            rows = rows[rows[column] == value]
        title = ", ".join(f"{k}={v}" for k, v in choice.items())
        return layer_curves(rows, x=x, y=y, hue=hue, title=title)

    return explore(plot, **{c: sorted(frame[c].unique().tolist()) for c in by})


def token_view(tokens: Sequence[str], scores, *, cmap: str = "Reds") -> w.HTML:
    """Tokens coloured by ``scores`` ``[n_tokens]`` (scaled to the largest finite \\|score\\|; a
    NaN or infinite score leaves its token uncoloured)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or len(tokens) != len(scores):
        raise ValueError(f"{len(tokens)} tokens but scores of shape {scores.shape}; expected "
                         f"[{len(tokens)}]")
    finite = np.isfinite(scores)
    top = np.abs(scores[finite]).max() if finite.any() else 0.0
    colours = matplotlib.colormaps[cmap](np.where(finite, np.abs(scores), 0) / (top or 1.0))
    spans = []
    for token, score, ok, (r, g, b, _) in zip(tokens, scores, finite, colours):
        background = f"rgb({r*255:.0f},{g*255:.0f},{b*255:.0f})" if ok else "transparent"
        spans.append(f'<span title="{score:.4g}" style="background:{background};padding:1px 0;'
                     f'white-space:pre">{html.escape(token)}</span>')
    return w.HTML("<div style='font-family:monospace;line-height:1.8'>" + "".join(spans) + "</div>")


class TrainingMonitor(w.VBox):
    """A live line plot of training metrics: call ``.update(step, loss=..., iia=...)``."""

    def __init__(self, metrics: Sequence[str] = ("loss",), every: int = 1):
        self.metrics, self.every = list(metrics), every
        self.rows: list[dict] = []
        self.output = w.Output()
        self.figure: matplotlib.figure.Figure | None = None
        super().__init__([self.output])

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", *self.metrics])

    def update(self, step: int, **values: float) -> None:
        unknown = set(values) - set(self.metrics)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; this monitor tracks {self.metrics}")
        self.rows.append({"step": step, **{k: float(v) for k, v in values.items()}})
        if len(self.rows) % self.every == 0:
            self.redraw()

    def redraw(self) -> None:
        self.figure = training_curves(self.history, self.metrics)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)
