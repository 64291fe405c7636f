"""Reading the residual stream: logit and tuned lenses, direct logit attribution, attention
patterns and induction heads (notebook 09). Methods return results; figures: nbtoolkit.viz.lens.

logit_lens                each layer's stream read through the model's own final norm and unembedding
TunedLens                 an affine translator per layer trained to the final distribution (fit, save, load)
lens_kl                   KL(final ‖ lens) per layer, logit lens and tuned lens side by side
lens_texts                the bundled text the lenses train (split "train") and are measured on ("test")
direct_logit_attribution  each head's, MLP's and embedding's share of a logit difference (frozen final norm)
attention_patterns        every head's attention weights per layer, [batch, heads, query, key]
induction_scores          induction and previous-token scores per head on repeated random tokens
induction_ablation        the causal check: ablate the top heads vs as many random ones, loss on the repeat
repeated_tokens           the random token sequences repeated twice that the scores read
induction_score           the induction score of attention weights (previous_token_score: its sibling)
unembed, frozen_norm      the read-out of a residual stream, and the final norm frozen at one run's scale
LensResult, DLAResult, AttentionPatterns, InductionScores, InductionAblation   the results
"""

from .attention import AttentionPatterns, attention_patterns
from .dla import DLAResult, direct_logit_attribution
from .kl import lens_kl
from .texts import lens_texts
from .tuned import TunedLens
from .induction import (InductionAblation, InductionScores, induction_ablation, induction_score,
                        induction_scores, previous_token_score, repeated_tokens)
from .logit_lens import LensResult, logit_lens
from .readout import FrozenNorm, frozen_norm, unembed

__all__ = ["AttentionPatterns", "DLAResult", "FrozenNorm", "InductionAblation", "InductionScores",
           "LensResult", "TunedLens", "attention_patterns", "direct_logit_attribution", "frozen_norm",
           "induction_ablation", "induction_score", "induction_scores", "lens_kl", "lens_texts", "logit_lens",
           "previous_token_score", "repeated_tokens", "unembed"]
