"""Reading the residual stream: logit and tuned lenses, direct logit attribution, attention
patterns and induction heads.

logit_lens                each layer's stream read through the model's own final norm and unembedding
"""

from .logit_lens import LensResult, logit_lens

__all__ = ["LensResult", "logit_lens"]
