"""Parameter, FLOP and memory accounting: `summary` for models, `explain` for one conv."""

from jaxconv.analysis.costs import LayerCost, layer_cost, n_params
from jaxconv.analysis.explain import KINDS, Explanation, explain
from jaxconv.analysis.summary import LayerRow, Summary, summary

__all__ = [
           "KINDS",
           "Explanation",
           "LayerCost",
           "LayerRow",
           "Summary",
           "explain",
           "layer_cost",
           "n_params",
           "summary",
]
