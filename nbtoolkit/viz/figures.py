"""Generic plots shared by the methods: a labelled heatmap, curves over layers, training curves."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


class NotebookFigure(Figure):
    """A Figure that renders itself as PNG in notebooks, whatever matplotlib backend is active."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize, **subplots) -> tuple[Figure, object]:
    """A Figure and its axes, not registered with pyplot: a notebook shows it exactly once,
    and it is freed when no longer referenced."""
    fig = NotebookFigure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplots)


def heatmap(grid, *, rows: Sequence[str] | None = None, columns: Sequence | None = None,
            xlabel: str = "layer", ylabel: str = "", title: str = "", cmap: str = "viridis",
            vmin=None, vmax=None, center=None, colorbar: str = "") -> Figure:
    """A 2-D array ``[rows, columns]`` as a heatmap with row labels (e.g. tokens)."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D grid, got shape {grid.shape}")
    if center is not None:
        span = np.nanmax(np.abs(grid - center)) or 1.0
        vmin, vmax = center - span, center + span
    fig, ax = new_figure(figsize=(min(2 + 0.28 * grid.shape[1], 12), 1 + 0.32 * grid.shape[0]))
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_yticks(range(grid.shape[0]), rows if rows is not None else range(grid.shape[0]))
    if columns is not None:
        ax.set_xticks(range(grid.shape[1]), columns)
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.set_title(title)
    fig.colorbar(image, ax=ax, label=colorbar)
    fig.tight_layout()
    return fig


def layer_curves(frame: pd.DataFrame, *, x: str = "layer", y: str, hue: str | None = None,
                 title: str = "") -> Figure:
    """``y`` against ``x``, one line per value of ``hue``."""
    fig, ax = new_figure(figsize=(6, 3.5))
    groups = frame.groupby(hue) if hue else [(y, frame)]
    for label, rows in groups:
        rows = rows.sort_values(x)
        ax.plot(rows[x], rows[y], marker="o", markersize=3, label=str(label))
    ax.set_xlabel(x), ax.set_ylabel(y), ax.set_title(title)
    if hue:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, metrics: Sequence[str]) -> Figure:
    """One panel per metric against ``step``."""
    fig, axes = new_figure(1, len(metrics), figsize=(4 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = history.dropna(subset=[metric])
        ax.plot(rows["step"], rows[metric])
        ax.set_xlabel("step"), ax.set_title(metric), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
