"""Eliciting latent knowledge end to end (Burns et al. 2022; EleutherAI's elk): contrast pairs ->
hidden states on every layer -> reporters -> eval tables and Table 1.

activations  extract: both halves of every contrast pair at every layer, with an on-disk cache
pooling      several templates (stack_templates) or datasets (pool) as one training set
elicit       elicit one model on one dataset (or a pooled set); per_layer, select_layer, table1
runs         run folders (write, read reporters back, transfer to another dataset)

The command line is :mod:`nbtoolkit.cli.ccs` (also ``python -m nbtoolkit.ccs``).
"""

from .activations import ContrastStates, extract, load_cached, model_fingerprint, split_indices
from .elicit import (DEFAULTS, METHOD_NAMES, PAPER_MEANS, Elicitation, elicit, per_layer,
                     select_layer, table1)
from .pooling import centred, pool, stack_templates
from .runs import load_run_reporters, output_root, transfer_eval, write_run

__all__ = ["DEFAULTS", "METHOD_NAMES", "PAPER_MEANS", "ContrastStates", "Elicitation", "elicit",
           "extract", "load_cached", "load_run_reporters", "model_fingerprint", "output_root",
           "per_layer", "pool", "select_layer", "split_indices", "stack_templates", "table1",
           "transfer_eval", "write_run", "centred"]
