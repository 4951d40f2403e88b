"""Parameter, FLOP and memory accounting: `summary` for models, `explain` for one conv;
`retention`: how much of its input each squeezing 1x1 keeps."""

from jaxconv.analysis.costs import LayerCost, layer_cost, n_params
from jaxconv.analysis.explain import KINDS, Explanation, explain
from jaxconv.analysis.retention import RetentionRow, retention, retention_table
from jaxconv.analysis.summary import LayerRow, Summary, summary

__all__ = [
           "KINDS",
           "Explanation",
           "LayerCost",
           "LayerRow",
           "RetentionRow",
           "Summary",
           "explain",
           "layer_cost",
           "n_params",
           "retention",
           "retention_table",
           "summary",
]
