"""Tasks for DAS: a causal model, factual and counterfactual datasets, and a small task network.

- :mod:`~nbtoolkit.tasks.hierarchical_equality`: (W = X) = (Y = Z), variables WX and YZ.
- :mod:`~nbtoolkit.tasks.sums`: a + b + c, variable S = a + b (alternative T = b + c); a
  network that reads all digits at once and a staged one that reads c after a and b.
- :mod:`~nbtoolkit.tasks.price_tagging`: "Please say yes only if it costs between X and Y
  dollars, otherwise no." with the left- and right-boundary variables (textual).
"""

from . import hierarchical_equality, price_tagging, sums

__all__ = ["hierarchical_equality", "price_tagging", "sums"]
