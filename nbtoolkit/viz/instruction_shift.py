"""Plots for the instruction-tuning shift analyses (Wu et al., arXiv 2310.00492): data in, Figure
(or HTML) out."""

from __future__ import annotations

import html

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..instruction_shift.attribution import Attribution
from .figures import new_figure


def attribution_html(tokens: list[str], scores, *, underline=None, color: str = "255,80,0") -> str:
    """Tokens as inline HTML, background opacity = score / max score; ``underline`` marks tokens."""
    s = np.asarray(scores.detach().cpu() if torch.is_tensor(scores) else scores, dtype=np.float64)
    if s.shape != (len(tokens),):
        raise ValueError(f"scores has shape {s.shape}, expected ({len(tokens)},) (one per token)")
    top = np.abs(s).max() if s.size else 0.0
    parts = []
    for i, (tok, v) in enumerate(zip(tokens, s)):
        alpha = abs(v) / top if top > 0 else 0.0
        deco = "text-decoration:underline;" if underline is not None and underline[i] else ""
        parts.append(f'<span title="{v:.3f}" style="background:rgba({color},{alpha:.2f});{deco}'
                     f'white-space:pre;font-family:monospace">{html.escape(tok)}</span>')
    return "<div style='line-height:1.8'>" + "".join(parts) + "</div>"


def density_html(attr: Attribution, spans: list[str] | None = None) -> str:
    """The prompt tokens of an :class:`~nbtoolkit.instruction_shift.attribution.Attribution`
    coloured by importance density, the tokens of the instruction ``spans`` underlined."""
    mask = attr.instruction_mask(spans) if spans else None
    return attribution_html(attr.prompt_tokens, attr.density(), underline=mask)


def plot_attribution(attr: Attribution, *, levels: bool = True, max_tokens: int = 40) -> Figure:
    """Heatmap of one :class:`~nbtoolkit.instruction_shift.attribution.Attribution`: prompt
    tokens x response tokens.

    ``levels=True`` shows the quantised levels (0..10), else the raw scores.
    """
    values = attr.levels() if levels else attr.scores.numpy()
    values = values[:max_tokens, :max_tokens]
    fig, ax = new_figure(figsize=(0.35 * values.shape[1] + 2.5, 0.28 * values.shape[0] + 1.5))
    image = ax.imshow(values, cmap="Reds", aspect="auto")
    ax.set_yticks(range(values.shape[0]), [repr(t)[1:-1] for t in attr.prompt_tokens[:max_tokens]],
                  fontsize=7)
    ax.set_xticks(range(values.shape[1]), [repr(t)[1:-1] for t in attr.response_tokens[:max_tokens]],
                  rotation=90, fontsize=7)
    ax.set_xlabel("response token")
    ax.set_ylabel("prompt token")
    fig.colorbar(image, ax=ax, label="level" if levels else "grad x input")
    fig.tight_layout()
    return fig


def plot_instruction_scores(frame: pd.DataFrame, *, by: str, value: str = "score",
                            title: str = "") -> Figure:
    """Strip + box plot of per-sample instruction scores, one column per value of ``by``."""
    groups = [g for g in frame[by].drop_duplicates()]
    fig, ax = new_figure(figsize=(1.6 * len(groups) + 2, 3.2))
    data = [frame.loc[frame[by] == g, value].to_numpy() for g in groups]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), [str(g) for g in groups])
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=10, alpha=0.6)
    ax.set_ylabel("instruction-word importance")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_concepts_by_layer(frame: pd.DataFrame, *, category: str = "level", group: str = "layer_group",
                           model: str = "role", share: str = "share",
                           styles: dict | None = None) -> Figure:
    """Figure-3 analog: share of concepts per category vs layer group, one line style per model."""
    styles = styles or {"base": "--", "tuned": "-"}
    fig, ax = new_figure(figsize=(6, 3.5))
    colours = dict(zip(sorted(frame[category].unique()), matplotlib.colormaps["tab10"].colors))
    for (m, c), part in frame.groupby([model, category]):
        part = part.sort_values(group)
        ax.plot(part[group].astype(str), 100 * part[share], styles.get(m, "-"), marker="o",
                color=colours[c], label=f"{c} ({m})")
    ax.set_xlabel("layer group")
    ax.set_ylabel("% of concepts")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
