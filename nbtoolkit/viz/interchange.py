"""The figure of an interchange sweep: the metric after patching each (position, layer)."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..core.anatomy import site_name
from ..interchange import InterchangeResult
from .figures import heatmap


def plot_interchange(result: InterchangeResult, title: str = "") -> Figure:
    """Tokens × layers heatmap of ``result.scores``, centred on 0 (red: the source's side)."""
    return heatmap(result.scores, rows=result.tokens, xlabel="layer", cmap="RdBu_r", center=0.0,
                   title=title or f"interchange at {site_name(0, result.kind).replace('0', 'i')}",
                   colorbar="metric")
