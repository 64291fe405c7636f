"""Plots for DAS: training curves, IIA bars (DAS vs neuron-aligned), (layer × position) heatmaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import new_figure


def training_history(history: pd.DataFrame, metrics=("loss", "iia", "temperature")) -> Figure:
    """One panel per metric present in ``history`` (a :class:`~nbtoolkit.das.DASResult` history)."""
    metrics = [m for m in metrics if m in history and history[m].notna().any()]
    if not metrics:
        raise ValueError(f"history has none of the metrics; columns: {list(history.columns)}")
    fig, axes = new_figure(1, len(metrics), figsize=(3.6 * len(metrics), 2.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        data = history[["step", m]].dropna()
        ax.plot(data["step"], data[m], marker="o" if len(data) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(m)
        if m == "temperature":
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


def iia_bars(table: pd.DataFrame, *, x: str = "variable", hue: str = "method", y: str = "iia",
             paper: dict | None = None, chance: float | None = 0.5) -> Figure:
    """Grouped bars of IIA (``table`` columns ``x``, ``hue``, ``y``); ``paper`` maps an ``x``
    value to the paper's number, drawn as a black tick."""
    pivot = table.pivot_table(index=x, columns=hue, values=y, sort=False)
    fig, ax = new_figure(figsize=(1.6 + 1.4 * len(pivot), 3.2))
    width = 0.8 / max(1, pivot.shape[1])
    positions = np.arange(len(pivot))
    for j, column in enumerate(pivot.columns):
        bars = ax.bar(positions + (j - (pivot.shape[1] - 1) / 2) * width, pivot[column], width,
                      label=str(column))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    for i, key in enumerate(pivot.index):
        if paper and key in paper:
            ax.hlines(paper[key], i - 0.45, i + 0.45, color="black", lw=2,
                      label="paper" if i == 0 else None)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1)
    ax.set_xticks(positions, [str(k) for k in pivot.index])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IIA")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def iia_heatmap(grid: pd.DataFrame, *, value: str = "iia", row: str = "layer", col: str = "position",
                col_labels: dict | None = None, title: str | None = None,
                vmin: float = 0.5, vmax: float = 1.0) -> Figure:
    """A (layer × position) heatmap of IIA with the numbers written in the cells."""
    pivot = grid.pivot_table(index=row, columns=col, values=value).sort_index(ascending=False)
    fig, ax = new_figure(figsize=(1.2 + 0.9 * pivot.shape[1], 0.9 + 0.6 * pivot.shape[0]))
    image = ax.imshow(pivot.values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(pivot.values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v < (vmin + vmax) / 2 else "black")
    labels = [col_labels.get(c, c) if col_labels else c for c in pivot.columns]
    ax.set_xticks(range(pivot.shape[1]), [str(c) for c in labels], rotation=45, ha="right")
    ax.set_yticks(range(pivot.shape[0]), [str(r) for r in pivot.index])
    ax.set_xlabel(col)
    ax.set_ylabel(row)
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label=value)
    fig.tight_layout()
    return fig
