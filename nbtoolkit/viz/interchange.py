"""The figure of an interchange sweep: the metric after patching each (layer, position)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..core.anatomy import site_name
from ..interchange import InterchangeResult
from .figures import heatmap


def plot_interchange(result: InterchangeResult, title: str = "") -> Figure:
    """Tokens × swept layers heatmap of ``result.scores`` (``[layer, position]``), centred on 0
    (red: the source's side)."""
    swept = np.flatnonzero(np.isfinite(result.scores).any(1))
    return heatmap(result.scores[swept].T, rows=result.tokens, columns=swept.tolist(),
                   xlabel="layer", cmap="RdBu_r", center=0.0,
                   title=title or f"interchange at {site_name(0, result.kind).replace('0', 'i')}",
                   colorbar="metric")
