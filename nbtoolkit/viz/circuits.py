"""Figures and a widget for circuit results (``nbtoolkit.circuits``): data in, figure out.

    head_grid(result)                          # layer × head heatmap of each patch's effect
    atp_scatter(atp, exact)                    # AtP's estimate against the exact effect
    HeadExplorer(result, pattern_source(lm, prompt))   # click a head: its attention pattern
    AttributionExplorer({"q": (atp_q, exact_q), ...})  # choose a site kind: its scatter
"""

from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w
import matplotlib
import matplotlib.figure
import numpy as np
from IPython.display import display

from ..circuits.agreement import agreement
from ..lens.attention import attention_patterns
from .figures import new_figure


def _effects(result) -> np.ndarray:
    """``scores − base_score`` ``[n_layers, n_heads]`` of a head-indexed result."""
    if tuple(result.axes[:2]) != ("layer", "head") or result.scores.ndim != 2:
        raise ValueError(f"expected a result indexed [layer, head], got axes {result.axes}; "
                         f"pick one position first (result.scores[..., p])")
    return result.scores - result.base_score


def head_grid(result, *, title: str | None = None, cmap: str = "RdBu") -> matplotlib.figure.Figure:
    """Each head's effect on the metric (``scores − base_score``), layers down, heads across;
    red lowers the metric, blue raises it, NaN (no path) blank."""
    effects = _effects(result)
    fig, ax = new_figure(figsize=(0.45 * effects.shape[1] + 2.5, 0.22 * effects.shape[0] + 1.5))
    limit = np.nanmax(np.abs(effects)) if np.isfinite(effects).any() else 1.0
    image = ax.imshow(effects, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title or f"{result.method}: effect on the metric (base {result.base_score:.2f})")
    fig.colorbar(image, ax=ax, label="score − base score")
    return fig


def atp_scatter(estimate, exact, *, labels: Sequence[str] | None = None,
                annotate: int = 5) -> matplotlib.figure.Figure:
    """AtP's estimated effect against the exact one, one point per site, the line y = x; the
    ``annotate`` sites farthest from it are labelled (``labels``: ``"layer.head"`` by default)."""
    est, ex = estimate.effects().ravel(), exact.effects().ravel()
    if est.shape != ex.shape:
        raise ValueError(f"estimate has {est.size} sites but exact has {ex.size}")
    if labels is None:
        shape = exact.scores.shape
        labels = [".".join(map(str, np.unravel_index(i, shape))) for i in range(ex.size)]
    fig, ax = new_figure(figsize=(5, 5))
    ax.scatter(ex, est, s=12)
    finite = np.isfinite(ex) & np.isfinite(est)
    span = [np.min([ex[finite], est[finite]]), np.max([ex[finite], est[finite]])]
    ax.plot(span, span, color="grey", lw=1, ls="--")
    for i in np.argsort(-np.nan_to_num(np.abs(est - ex)))[:annotate]:
        ax.annotate(labels[i], (ex[i], est[i]), fontsize=8)
    ax.set_xlabel("exact effect (activation patching)")
    ax.set_ylabel("estimated effect (attribution patching)")
    ax.set_title(estimate.method)
    return fig


def pattern_figure(pattern: np.ndarray, tokens: Sequence[str], *,
                   title: str = "") -> matplotlib.figure.Figure:
    """One head's attention pattern ``[seq, seq]`` (rows: queries, columns: keys)."""
    pattern = np.asarray(pattern)
    if pattern.ndim != 2 or pattern.shape != (len(tokens), len(tokens)):
        raise ValueError(f"pattern of shape {pattern.shape} does not fit {len(tokens)} tokens")
    fig, ax = new_figure(figsize=(0.3 * len(tokens) + 2, 0.3 * len(tokens) + 1.5))
    ax.imshow(pattern, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(title)
    return fig


class HeadExplorer(w.VBox):
    """A layer × head grid of buttons coloured by each head's effect; choosing one shows its
    attention pattern from ``patterns(layer, head) -> (pattern [seq, seq], tokens)``.
    ``.selected`` is the chosen (layer, head), ``.figure`` its pattern's Figure."""

    def __init__(self, result, patterns: Callable[[int, int], tuple[np.ndarray, list[str]]],
                 cmap: str = "RdBu"):
        self.effects, self.patterns = _effects(result), patterns
        self.selected: tuple[int, int] | None = None
        self.figure: matplotlib.figure.Figure | None = None
        self.output = w.Output()
        limit = np.nanmax(np.abs(self.effects)) if np.isfinite(self.effects).any() else 1.0
        colours = matplotlib.colormaps[cmap]
        self.buttons = {}
        for (layer, head), value in np.ndenumerate(self.effects):
            colour = "#ffffff" if not np.isfinite(value) else \
                matplotlib.colors.to_hex(colours(0.5 + 0.5 * value / (limit or 1.0)))
            button = w.Button(description="", tooltip=f"{layer}.{head}: {value:+.3f}",
                              layout=w.Layout(width="26px", height="18px", padding="0"))
            button.style.button_color = colour
            button.on_click(lambda _, cell=(layer, head): self.choose(*cell))
            self.buttons[layer, head] = button
        n_heads = self.effects.shape[1]
        grid = w.GridBox(list(self.buttons.values()),
                         layout=w.Layout(grid_template_columns=f"repeat({n_heads}, 28px)",
                                         grid_gap="1px"))
        self.caption = w.HTML("choose a head (rows: layers, columns: heads)")
        super().__init__([w.HBox([grid, w.VBox([self.caption, self.output])])])

    def choose(self, layer: int, head: int) -> None:
        """Show head (layer, head)'s attention pattern."""
        pattern, tokens = self.patterns(layer, head)
        self.selected = (layer, head)
        self.caption.value = f"head {layer}.{head}: effect {self.effects[layer, head]:+.3f}"
        self.figure = pattern_figure(pattern, tokens, title=f"attention of head {layer}.{head}")
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)


def pattern_source(lm, prompt: str) -> Callable[[int, int], tuple[np.ndarray, list[str]]]:
    """``(layer, head) -> (pattern [seq, seq], tokens)`` for one prompt, each layer computed once
    on first use (``nbtoolkit.lens.attention_patterns``): what :class:`HeadExplorer` shows."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    cache = {}

    def get(layer: int, head: int):
        if layer not in cache:
            cache[layer] = attention_patterns(lm, prompt, [layer])
        patterns = cache[layer]
        return patterns[layer][0, head].numpy(), patterns.tokens[0]
    return get


class AttributionExplorer(w.VBox):
    """A choice of site kinds, each an (estimate, exact) pair of results over the same sites;
    choosing one shows :func:`atp_scatter` and the two's agreement (correlations, false
    negatives of the top ``k``). ``.kind`` is the chosen kind, ``.figure`` its scatter."""

    def __init__(self, compared: dict[str, tuple], k: int = 10):
        if not compared:
            raise ValueError("compared is empty: give at least one kind's (estimate, exact)")
        self.compared, self.k = compared, k
        self.kind: str | None = None
        self.figure: matplotlib.figure.Figure | None = None
        self.output = w.Output()
        self.caption = w.HTML()
        self.menu = w.Dropdown(options=list(compared), description="sites")
        self.menu.observe(lambda change: self.choose(change["new"]), names="value")
        super().__init__([self.menu, self.caption, self.output])
        self.choose(self.menu.value)

    def choose(self, kind: str) -> None:
        """Show the scatter of ``kind``'s estimate against its exact effects."""
        estimate, exact = self.compared[kind]
        self.kind = kind
        found = agreement(estimate.effects(), exact.effects(), self.k)
        self.caption.value = (f"{kind}: {found['n_sites']} sites, Pearson {found['pearson']:.3f}, "
                              f"Spearman {found['spearman']:.3f}, false negatives of the top "
                              f"{self.k}: {found['false_negatives']:.0%}")
        self.figure = atp_scatter(estimate, exact)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)
