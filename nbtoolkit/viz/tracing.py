"""Causal-tracing figures in ROME's style: per-prompt heatmaps and bucket averages.

Pure functions: a trace result (anything with ROME's fields) in, a matplotlib Figure out.
"""

from __future__ import annotations

from matplotlib.figure import Figure
import numpy as np

from ..tracing.effects import BUCKETS
from .figures import new_figure

CMAPS = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
NAMES = {"hidden": "single restored layer", "mlp": "MLP", "attn": "Attn"}


def _xlabel(kind: str, window: int) -> str:
    if kind == "hidden":
        return "single restored layer"
    return f"center of interval of {window} restored {NAMES[kind]} layers"


def _layer_ticks(ax, n_layers: int) -> None:
    ticks = list(range(0, n_layers, 5))
    ax.set_xticks([t + 0.5 for t in ticks], ticks)


def plot_trace(result, *, title: str | None = None, ax=None) -> Figure:
    """ROME's per-prompt heatmap: tokens (subject marked ``*``) × layers, colour = p(answer),
    floor at the corrupted score. ``result``: a :class:`~nbtoolkit.tracing.TraceResult`."""
    scores = np.ma.masked_invalid(np.asarray(result.scores, dtype=float))
    labels = list(result.tokens)
    start, end = result.subject_range
    for i in range(start, end):
        labels[i] = labels[i] + "*"
    if ax is None:
        fig, ax = new_figure(figsize=(min(3 + 0.18 * scores.shape[1], 10),
                                        0.8 + 0.28 * scores.shape[0]))
    else:
        fig = ax.figure
    image = ax.pcolor(scores, cmap=CMAPS[result.kind], vmin=result.low_score)
    ax.invert_yaxis()
    ax.set_yticks([0.5 + i for i in range(len(labels))], [repr(t)[1:-1] for t in labels])
    _layer_ticks(ax, scores.shape[1])
    ax.set_xlabel(_xlabel(result.kind, result.window))
    what = "state" if result.kind == "hidden" else NAMES[result.kind]
    ax.set_title(title or f"Impact of restoring {what} after corrupted input")
    fig.colorbar(image, ax=ax, label=f"p({result.answer.strip()})")
    fig.tight_layout()
    return fig


def plot_traces(results: dict, *, title: str = "") -> Figure:
    """The three kinds of one prompt side by side (``{kind: TraceResult}``)."""
    fig, axes = new_figure(1, len(results), figsize=(5.2 * len(results),
                                                      1.2 + 0.3 * len(next(iter(results.values())).tokens)))
    axes = np.atleast_1d(axes)
    for ax, result in zip(axes, results.values()):
        plot_trace(result, ax=ax)
        ax.title.set_fontsize(10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_average(average, *, vmax: float | None = None, ax=None, title: str | None = None) -> Figure:
    """ROME's average heatmap: AIE = max(0, mean score − mean corrupted score) per bucket × layer.
    Pass the hidden plot's maximum as ``vmax`` for the MLP / attention plots, as ROME does."""
    grid = np.ma.masked_invalid(np.clip(average.aie, 0, None))
    if ax is None:
        fig, ax = new_figure(figsize=(min(3 + 0.18 * grid.shape[1], 10), 2.6))
    else:
        fig = ax.figure
    image = ax.pcolor(grid, cmap=CMAPS[average.kind], vmin=0, vmax=vmax)
    ax.invert_yaxis()
    ax.set_yticks([0.5 + i for i in range(len(BUCKETS))], BUCKETS)
    _layer_ticks(ax, grid.shape[1])
    window = average.results[0].window if average.results else 10
    ax.set_xlabel(_xlabel(average.kind, window))
    n = len(average.results)
    what = "state" if average.kind == "hidden" else NAMES[average.kind]
    ax.set_title(title or f"Average indirect effect of {what} over {n} prompts")
    fig.colorbar(image, ax=ax, label="AIE")
    fig.tight_layout()
    return fig


def plot_average_lines(averages, *, buckets=("last subject token", "last token")) -> Figure:
    """AIE per layer with 95% intervals (1.96·std/√n), one panel per kind, a line per bucket.
    ``averages``: one AverageEffect or ``{kind: AverageEffect}``."""
    if not isinstance(averages, dict):
        averages = {averages.kind: averages}
    fig, axes = new_figure(1, len(averages), figsize=(4.2 * len(averages), 3), squeeze=False)
    colours = {"hidden": "tab:purple", "mlp": "tab:green", "attn": "tab:red"}
    styles = ["-", "--", ":", "-."]
    for ax, (kind, average) in zip(axes[0], averages.items()):
        layers = np.arange(average.mean.shape[1])
        for style, bucket in zip(styles, buckets):
            b = BUCKETS.index(bucket)
            y, ci = average.aie[b], average.ci95[b]
            ax.plot(layers, y, style, color=colours[kind], label=bucket)
            ax.fill_between(layers, y - ci, y + ci, color=colours[kind], alpha=0.2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{NAMES[kind] if kind != 'hidden' else 'hidden state'} "
                     f"(n={len(average.results)})", fontsize=10)
        ax.set_xlabel("layer" if kind == "hidden" else "window centre layer")
        ax.set_ylabel("AIE (p)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


SEVER_STYLE = {"none": ("#7261ab", "effect of single state on p"),  # ROME's Figure 3 colours
               "attn": ("#f3201b", "effect with Attn severed"),
               "mlp": ("#20b020", "effect with MLP severed")}


def plot_severed(result, *, title: str | None = None, ax=None) -> Figure:
    """ROME's Figure 3: per layer, the average indirect effect of restoring the hidden state at
    the (last subject) token — plain, with attention severed, with MLPs severed — as bars with
    95% intervals. ``result``: a :class:`~nbtoolkit.tracing.SeveringResult`."""
    aie, ci = result.aie, result.ci95
    layers = np.arange(result.n_layers)
    if ax is None:
        fig, ax = new_figure(figsize=(min(3 + 0.25 * result.n_layers, 12), 2.8))
    else:
        fig = ax.figure
    for offset, sever in zip((-0.3, 0.0, 0.3), ("none", "attn", "mlp")):
        colour, label = SEVER_STYLE[sever]
        ax.bar(layers + offset, aie[sever], width=0.3, color=colour, label=label,
               yerr=ci[sever] if result.n_facts > 1 else None, error_kw=dict(lw=0.5))
    ax.axhline(0, color="grey", lw=0.5)
    _layer_ticks(ax, result.n_layers)
    ax.set_xticks(list(range(0, result.n_layers, 5)))
    ax.set_xlabel("layer at which the single hidden state is restored")
    ax.set_ylabel("average indirect effect")
    ax.set_title(title or f"Restoring the state at the last subject token, over "
                          f"{result.n_facts} prompt{'s' * (result.n_facts != 1)}")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
