"""Plots for SelfIE interpretations and steering: data in, matplotlib Figure out."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..selfie import Interpretations, WordProbs
from .figures import new_figure


def _token_order(frame: pd.DataFrame) -> list[str]:
    rows = frame.drop_duplicates("token_index").sort_values("token_index")
    return [f"{t!r} ({i})" for t, i in zip(rows.token, rows.token_index)]


def relevancy_grid(result: Interpretations | pd.DataFrame, *, value: str = "mean_relevancy",
                   words: int = 3, title: str = "") -> Figure:
    """Token × layer heatmap of ``value`` from :func:`nbtoolkit.selfie.interpret` (its result or
    a part of its frame), each cell labelled with the first ``words`` words of its
    interpretation."""
    frame = result.to_frame() if isinstance(result, Interpretations) else result
    labelled = frame.assign(row=[f"{t!r} ({i})" for t, i in zip(frame.token, frame.token_index)])
    grid = labelled.pivot_table(index="row", columns="layer", values=value, aggfunc="first")
    texts = labelled.pivot_table(index="row", columns="layer", values="interpretation",
                                 aggfunc="first")
    order = [r for r in _token_order(frame) if r in grid.index]
    grid, texts = grid.loc[order], texts.loc[order]
    fig, ax = new_figure(figsize=(min(3 + 1.25 * grid.shape[1], 20), 1.2 + 0.9 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis", vmin=0,
                      vmax=max(float(np.nanmax(grid.to_numpy(float))), 1e-9))
    for (r, c), text in np.ndenumerate(texts.to_numpy(object)):
        if isinstance(text, str):
            short = " ".join(text.split()[:words])
            ax.text(c, r, "\n".join(textwrap.wrap(short, 12)[:3]), ha="center", va="center",
                    fontsize=6.5, color="white")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("layer of the interpreted hidden state")
    ax.set_title(title or f"{value.replace('_', ' ')} (cells: first words of the interpretation)")
    fig.colorbar(image, ax=ax, label=value.replace("_", " "))
    fig.tight_layout()
    return fig


def interpretation_bars(row, *, baseline: str | None = None) -> Figure:
    """Relevancy of each generated token of one interpretation (a row of
    :meth:`Interpretations.to_frame <nbtoolkit.selfie.Interpretations.to_frame>`)."""
    tokens = [t.replace("\n", "\\n") for t in row["interpretation_tokens"]]
    fig, ax = new_figure(figsize=(max(4, 0.55 * len(tokens) + 1.5), 3.2))
    ax.bar(range(len(tokens)), row["relevancy"], color="tab:purple")
    ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("relevancy |p_with − p_without|")
    title = f"layer {row['layer']}, token {row['token']!r}: mean relevancy {row['mean_relevancy']:.3f}"
    if baseline is not None:
        title += "\nplaceholder-only: " + textwrap.shorten(baseline.replace("\n", " "), 70)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def steering_curve(result: WordProbs | pd.DataFrame, *, title: str = "") -> Figure:
    """Mean next-token probability of each word group against the steering scale
    (:func:`nbtoolkit.selfie.word_probs`' result or its frame)."""
    frame = result.to_frame() if isinstance(result, WordProbs) else result
    means = frame.groupby(["scale", "group"]).prob.mean().unstack("group")
    fig, ax = new_figure(figsize=(5.5, 3.5))
    for group in means.columns:
        ax.plot(means.index, means[group], marker="o", label=group)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("steering scale (× direction)")
    ax.set_ylabel("mean next-token probability")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
