"""ROME causal tracing (Meng et al. 2022): where does a model recall a fact?

    result = causal_trace(lm, "The Eiffel Tower is located in the city of", "Eiffel Tower")
    result.scores        # [n_tokens, n_layers]: p(answer) with the clean state restored there
    average = average_indirect_effect(lm, facts, "mlp")   # six token buckets × layers

tracer      the fast, exact tracer of one prompt (causal_trace, trace_kinds)
noise       ROME's noise level (3σ of the subject embeddings)
average     averages over facts (average_indirect_effect, average_results)
severing    ROME's Fig. 3: restorations with later MLP / attention outputs kept corrupted
effects     TraceResult and AverageEffect, what tracing returns (figures in nbtoolkit.viz.tracing)
"""

from .average import answer_matches, average_indirect_effect, average_results
from .noise import noise_level, resolve_noise
from .effects import BUCKETS, KINDS, AverageEffect, TraceResult, bucket_rows
from .severing import SEVERED, SeveringResult, average_severed, severed_trace
from .tracer import causal_trace, find_token_range, trace_kinds, window_layers

__all__ = ["BUCKETS", "KINDS", "SEVERED", "AverageEffect", "SeveringResult", "TraceResult",
           "answer_matches", "average_indirect_effect", "average_results", "average_severed",
           "bucket_rows", "causal_trace", "find_token_range", "noise_level", "resolve_noise",
           "severed_trace", "trace_kinds", "window_layers"]
