"""Circuit discovery: which attention heads and MLPs carry a behaviour, and along which paths.

    result = head_patching(lm, data.prompts, data.corrupted, data.metric(lm))   # [layer, head]

heads        head_patching: activation patching of each head's output, queries, keys or values
paths        path_patching: senders' effects on receivers' queries/keys/values or the logits
attribution  attribution_patching: AtP estimates of every site's patch, AtP*'s QK fix, GradDrop
agreement    agreement, false_negative_rate: an estimate (AtP) against the exact sweep
faithfulness circuit_faithfulness: the circuit alone, the other heads mean-ablated (F(C) / F(M))
staged       batched patched forwards that skip the blocks below each patch (shared engine)

Results follow the sweep convention of ``nbtoolkit.core.sweeps``: pairs (base[i], source[i]),
``metric(logits [n_pairs, vocab]) -> [n_pairs]``, ``.scores`` indexed ``[layer, ...]`` with the
per-pair values, ``.base_score``, ``.source_score`` and ``.to_frame()``; figures live in
``nbtoolkit.viz.circuits``, attention patterns in ``nbtoolkit.lens``.
"""

from .agreement import agreement, false_negative_rate
from .attribution import AttributionResult, attribution_patching
from .faithfulness import FaithfulnessResult, circuit_faithfulness
from .heads import HeadPatchingResult, head_patching
from .paths import PathPatchingResult, path_patching

__all__ = ["AttributionResult", "FaithfulnessResult", "HeadPatchingResult", "PathPatchingResult",
           "agreement", "attribution_patching", "circuit_faithfulness", "false_negative_rate",
           "head_patching", "path_patching"]
