"""Interchange interventions (activation patching) over a (layer, position) grid.

    metric = prob_difference(lm, " Rome", " Madrid")
    result = interchange_sweep(lm, base, source, metric, kind="mlp")
    result.scores        # [n_layers, n_tokens]: the metric with the source's activation there

sweep       interchange_sweep, InterchangeResult, prob_difference
"""

from .sweep import SUPPORTED_KINDS, InterchangeResult, interchange_sweep, prob_difference

__all__ = ["SUPPORTED_KINDS", "InterchangeResult", "interchange_sweep", "prob_difference"]
