"""Tasks for DAS: causal models, factual and counterfactual datasets, and small task networks.

- :mod:`~nbtoolkit.tasks.causal_model`: ``CausalModel`` (variables, parents, mechanisms,
  interchange counterfactuals).
- :mod:`~nbtoolkit.tasks.hierarchical_equality`: (W = X) = (Y = Z), variables WX and YZ.
- :mod:`~nbtoolkit.tasks.sums`: a + b + c, variable S = a + b (alternative T = b + c); a
  network that reads all digits at once and a staged one that reads c after a and b.
- :mod:`~nbtoolkit.tasks.price_tagging`: "Please say yes only if it costs between X and Y
  dollars, otherwise no." with the left- and right-boundary variables (textual).
"""

from . import hierarchical_equality, price_tagging, sums
from .causal_model import CausalModel

__all__ = ["CausalModel", "hierarchical_equality", "price_tagging", "sums"]
