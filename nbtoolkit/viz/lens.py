"""Figures for reading the residual stream (nbtoolkit.lens results in, matplotlib Figures out):
the lens as a layer × token grid, lens KL per layer, direct logit attribution, attention patterns
as small multiples, induction scores and the ablation check."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .figures import heatmap, new_figure

LENS_VALUES = ("top_prob", "target_prob", "target_rank")


def lens_grid(result, prompt: int = 0, value: str = "top_prob") -> tuple[np.ndarray, np.ndarray]:
    """``(values, top tokens)`` of one prompt, each ``[rows, positions]`` (padding dropped):
    the top token's probability, the target's probability or its rank."""
    if value not in LENS_VALUES:
        raise ValueError(f"value must be one of {LENS_VALUES}, got {value!r}")
    pick = (lambda x: x) if result.single else (lambda x: x[prompt])
    if not result.single and not 0 <= prompt < len(result.tokens):
        raise ValueError(f"prompt must be in 0..{len(result.tokens) - 1}, got {prompt!r}")
    keep = np.asarray(result.positions[0 if result.single else prompt]) >= 0
    tokens = np.asarray(pick(result.top_tokens))[:, keep, 0]
    if value == "top_prob":
        values = np.exp(pick(result.top_logprobs).numpy()[:, keep, 0])
    elif value == "target_prob":
        values = np.exp(pick(result.target_logprobs).numpy()[:, keep])
    else:
        values = pick(result.target_ranks).numpy()[:, keep].astype(float)
    return values, tokens


def plot_lens(result, prompt: int = 0, value: str = "top_prob", *, annotate: bool = True) -> Figure:
    """The lens of one prompt: rows = layers (and terms), columns = input tokens; colour =
    ``value``, text = each cell's top token (nostalgebraist's logit-lens picture)."""
    values, tokens = lens_grid(result, prompt, value)
    positions = np.asarray(result.positions[0 if result.single else prompt])
    inputs = [result.tokens[prompt][p] for p in positions[positions >= 0]]
    title = {"top_prob": "p(top token)", "target_prob": "p(target)",
             "target_rank": "rank of the target"}[value]
    fig = heatmap(values[::-1], rows=result.labels[::-1], columns=[repr(t)[1:-1] for t in inputs],
                  xlabel="input token", title=f"{result.lens}: {title}",
                  cmap="viridis_r" if value == "target_rank" else "viridis",
                  vmin=0, vmax=None if value == "target_rank" else 1, colorbar=title)
    ax = fig.axes[0]
    ax.tick_params(axis="x", rotation=60)
    if annotate and values.size <= 1200:
        for (r, c), token in np.ndenumerate(tokens[::-1]):
            ax.text(c, r, repr(token)[1:-1][:8], ha="center", va="center", fontsize=6,
                    color="white" if values[::-1][r, c] < 0.5 else "black")
    return fig


def plot_lens_kl(frame) -> Figure:
    """KL(final ‖ lens) per layer, one line per lens (a :func:`~nbtoolkit.lens.lens_kl` frame)."""
    fig, ax = new_figure(figsize=(6, 3.5))
    for column, label in (("logit_lens", "logit lens"), ("tuned_lens", "tuned lens")):
        if column in frame:
            rows = frame.dropna(subset=[column])
            ax.plot(rows["layer"], rows[column], marker="o", markersize=3, label=label)
    ax.set_xlabel("layer"), ax.set_ylabel("KL(final ‖ lens), nats"), ax.set_yscale("symlog")
    ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_dla(result, top: int = 15) -> Figure:
    """The ``top`` components by absolute contribution as horizontal bars (a DLAResult)."""
    rows = result.top(top).iloc[::-1]
    fig, ax = new_figure(figsize=(6, 0.8 + 0.25 * len(rows)))
    ax.barh(rows.component, rows.contribution,
            color=["tab:blue" if v >= 0 else "tab:red" for v in rows.contribution])
    versus = f" − logit({result.distractor!r})" if result.distractor is not None else ""
    ax.set_xlabel(f"contribution to logit({result.answer!r}){versus}")
    ax.set_title(f"total {result.total:.2f} (model: {result.logit_diff:.2f})")
    ax.axvline(0, color="black", lw=0.5), ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_head_dla(result) -> Figure:
    """Every head's contribution, ``[layers, heads]``, centred at 0."""
    return heatmap(result.head_matrix(), xlabel="head", ylabel="layer", cmap="RdBu", center=0,
                   title="direct logit attribution per head", colorbar="logits")


def plot_attention(patterns, layer: int, prompt: int = 0, query: int | None = None,
                   heads=None) -> Figure:
    """One layer's heads as small multiples: each head's ``[query, key]`` pattern, or with
    ``query`` a token position, where that token attends (one bar per earlier token)."""
    weights = patterns[layer][prompt].numpy()
    tokens = patterns.tokens[prompt]
    n = len(tokens)
    heads = list(range(weights.shape[0])) if heads is None else list(heads)
    if query is not None and not -n <= query < n:
        raise ValueError(f"query must be a token position in {-n}..{n - 1}, got {query!r}")
    cols = min(len(heads), 4)
    rows = -(-len(heads) // cols)
    fig, axes = new_figure(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    labels = [repr(t)[1:-1] for t in tokens]
    for ax, head in zip(axes.flat, heads):
        if query is None:
            ax.imshow(weights[head, :n, :n], vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(n), labels, fontsize=6)
        else:
            q = query % n
            ax.bar(range(q + 1), weights[head, q, :q + 1], color="tab:blue")
            ax.set_xticks(range(q + 1), labels[:q + 1], rotation=90, fontsize=6)
            ax.set_ylim(0, 1)
        ax.set_title(f"layer {layer} head {head}", fontsize=8)
    for ax in list(axes.flat)[len(heads):]:
        ax.axis("off")
    if query is not None:
        fig.suptitle(f"where {labels[query % n]!r} (position {query % n}) attends", fontsize=9)
    fig.tight_layout()
    return fig


def plot_induction(scores) -> Figure:
    """Induction and previous-token scores ``[layers, heads]`` side by side."""
    fig, axes = new_figure(1, 2, figsize=(9, 0.8 + 0.18 * len(scores.layers)))
    for ax, name in zip(axes, ("induction", "previous")):
        image = ax.imshow(getattr(scores, name), aspect="auto", vmin=0, vmax=1, cmap="magma")
        ax.set_yticks(range(len(scores.layers))[::2], scores.layers[::2])
        ax.set_xlabel("head"), ax.set_ylabel("layer"), ax.set_title(f"{name} score")
    fig.colorbar(image, ax=list(axes), label="mean attention")
    return fig


def plot_ablation(check) -> Figure:
    """Loss increase on the repeated half: the top heads vs each random control."""
    frame = check.to_frame().iloc[1:]
    fig, ax = new_figure(figsize=(5, 3))
    ax.bar(frame.ablated, frame.increase,
           color=["tab:red"] + ["tab:gray"] * (len(frame) - 1))
    ax.set_ylabel("loss increase (nats / token)")
    ax.set_title(f"{check.how} ablation of {len(check.heads)} heads")
    ax.tick_params(axis="x", rotation=45), ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
