"""Eliciting latent knowledge end to end (Burns et al. 2022; EleutherAI's elk): contrast pairs ->
hidden states on every layer -> reporters -> eval tables and Table 1.

activations  extract: both halves of every contrast pair at every layer, with an on-disk cache
pooling      several templates (stack_templates) or datasets (pool) as one training set
layers       one reporter per layer: fit_layers, eval_layers, zero_shot_eval, transfer_matrix
elicit       elicit one model on one dataset (or a pooled set); per_layer, select_layer, table1
runs         run folders (write, read reporters back, transfer to another dataset)

The reporters themselves are :mod:`nbtoolkit.probes`; the command line is :mod:`nbtoolkit.cli.ccs`.
"""

from .activations import ContrastStates, extract, load_cached, model_fingerprint, split_indices
from .elicit import DEFAULTS, METHOD_NAMES, Elicitation, elicit, per_layer, select_layer, table1
from .layers import EVAL_COLUMNS, eval_layers, fit_layers, transfer_matrix, zero_shot_eval
from .pooling import centred, pool, stack_templates
from .runs import load_run_reporters, transfer_eval, write_run

__all__ = ["DEFAULTS", "EVAL_COLUMNS", "METHOD_NAMES", "ContrastStates", "Elicitation", "centred",
           "elicit", "eval_layers", "extract", "fit_layers", "load_cached", "load_run_reporters",
           "model_fingerprint", "per_layer", "pool", "select_layer", "split_indices",
           "stack_templates", "table1", "transfer_eval", "transfer_matrix", "write_run",
           "zero_shot_eval"]
