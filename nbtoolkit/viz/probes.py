"""Plots for truth probes: AUROC/accuracy vs layer per reporter, transfer heatmaps, Table 1 bars."""

from __future__ import annotations

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from .figures import new_figure

COLORS = {"ccs": "C0", "crc": "C1", "vinc": "C4", "lr": "C2", "zero_shot": "C7",
          "zero_shot_cal": "C3"}
LABELS = {"ccs": "CCS", "crc": "CRC (TPC)", "vinc": "VINC", "lr": "logistic (supervised)",
          "zero_shot": "0-shot", "zero_shot_cal": "calibrated 0-shot"}


def layer_curve(frame: pd.DataFrame, *, metric: str = "auroc", dataset: str | None = None,
                reporters=None, title: str = "", ax=None) -> Figure:
    """``metric`` vs layer, one line per reporter (mean over templates and datasets, shaded 95%
    bootstrap band = mean of the per-template CI ends); zero-shot rows (no layer: NaN) as dashed lines.

    ``frame``: eval.csv rows (columns layer, reporter, metric, metric_lower, metric_upper).
    """
    if metric not in frame.columns:
        raise ValueError(f"no column {metric!r}; the frame has {list(frame.columns)}")
    rows = frame if dataset is None else frame[frame.dataset == dataset]
    if rows.empty:
        raise ValueError(f"no rows for dataset {dataset!r}; datasets: {sorted(frame.dataset.unique())}")
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(6.5, 3.6))
    kinds = reporters or [k for k in COLORS if k in set(rows.reporter)]
    lo, hi = f"{metric}_lower", f"{metric}_upper"
    for kind in kinds:
        part = rows[rows.reporter == kind]
        if part.empty:
            continue
        if part.layer.isna().all():
            ax.axhline(part[metric].mean(), color=COLORS.get(kind), ls="--", lw=1,
                       label=LABELS.get(kind, kind))
            continue
        mean = part.groupby("layer")[[c for c in (metric, lo, hi) if c in part]].mean()
        ax.plot(mean.index, mean[metric], marker="o", ms=2.5, color=COLORS.get(kind),
                label=LABELS.get(kind, kind))
        if lo in mean and hi in mean:
            ax.fill_between(mean.index, mean[lo], mean[hi], color=COLORS.get(kind), alpha=0.15, lw=0)
    ax.axhline(0.5, color="k", lw=0.5, alpha=0.5)
    ax.set_xlabel("layer (−1 = embeddings)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(min(0.3, float(np.nanmin(rows[metric])) - 0.05), 1.02)
    ax.set_title(title or (f"{dataset}" if dataset else ""))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def transfer_heatmap(matrix: pd.DataFrame, *, title: str = "", vmin: float = 0.0,
                     vmax: float = 1.0) -> Figure:
    """A ``[train dataset × eval dataset]`` score matrix with its numbers written in."""
    grid = matrix.to_numpy(dtype=float)
    fig, ax = new_figure(figsize=(1.2 + 0.9 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
    image = ax.imshow(grid, cmap="RdYlGn", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(grid.shape[1]), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), matrix.index)
    ax.set_xlabel("evaluated on"), ax.set_ylabel("trained on")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def table1_bars(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Mean accuracy per method and model (bars) beside the paper's Mean* (black ticks).

    ``table``: :func:`nbtoolkit.ccs.table1` output (columns model, method, mean, paper_mean).
    """
    methods = list(dict.fromkeys(table.method))
    models = list(dict.fromkeys(table.model))
    fig, ax = new_figure(figsize=(7, 3.4))
    width = 0.8 / (len(models) + 1)
    x = np.arange(len(methods))
    for k, model in enumerate(models):
        part = table[table.model == model].set_index("method").reindex(methods)
        ax.bar(x + k * width, part["mean"], width, label=model)
    paper = table.drop_duplicates("method").set_index("method").reindex(methods)["paper_mean"]
    ax.bar(x + len(models) * width, paper, width, color="0.75", label="paper Mean* (5 models)")
    ax.set_xticks(x + width * len(models) / 2, methods, rotation=15)
    ax.axhline(50, color="k", lw=0.5)
    ax.set_ylabel("accuracy (%)"), ax.set_ylim(40, 100)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
