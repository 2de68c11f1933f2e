"""Method concordance: every method's verdict on the same model pairs, side by side, and how far
they agree (docs/concordance.md).

For a bounded set of models that share a task (by default one parent, its derived models that
keep its task, and the zoo models of its setting) every pair gets each signature method's
reference-normalised distance (from the distance tables), a representational similarity measure
at one layer, and the relative accuracy of stitching at that layer, both trained and by least
squares. Each verdict is oriented so that larger means more similar; rank correlations between
every two methods, overall and per group of pairs, and the mean verdicts per relation follow.

- :mod:`.methods`: the methods, their metadata and orientation (:func:`method_info`,
  :func:`orient`);
- :mod:`.plan`: the models, pairs and jobs of the ``concordance`` section
  (:func:`plan_concordance`, :func:`chunk_job`, :func:`stitch_options`);
- :mod:`.pairs`: one pair's measure and stitching verdicts (:func:`concordance_pairs`);
- :mod:`.table`: joining the verdicts, rank correlations, means per relation
  (:func:`concordance_table`);
- :mod:`.plot`: the scatter matrix (:func:`plot_concordance`);
- :mod:`.defaults`: the schema's defaults for library calls outside the workflow.

Importing the package does not import torch (the configuration schema lists
:func:`known_methods`); computing a pair does.
"""

from .defaults import schema_defaults
from .methods import (
    STITCHING_DIRECTIONS,
    STITCHING_VARIANTS,
    ConcordanceError,
    MethodInfo,
    known_methods,
    method_info,
    orient,
    resolve_methods,
)
from .pairs import RECORD_KIND, concordance_pair, concordance_pairs, pair_files
from .plan import ConcordancePlan, chunk_job, pair_key, plan_concordance, stitch_options
from .plot import plot_concordance
from .table import (
    GROUPS,
    concordance_table,
    join_verdicts,
    pair_relations,
    rank_correlations,
    read_pair_records,
    relation_means,
)

__all__ = [
    "GROUPS",
    "RECORD_KIND",
    "STITCHING_DIRECTIONS",
    "STITCHING_VARIANTS",
    "ConcordanceError",
    "ConcordancePlan",
    "MethodInfo",
    "chunk_job",
    "concordance_pair",
    "concordance_pairs",
    "concordance_table",
    "join_verdicts",
    "known_methods",
    "method_info",
    "orient",
    "pair_files",
    "pair_key",
    "pair_relations",
    "plan_concordance",
    "plot_concordance",
    "rank_correlations",
    "read_pair_records",
    "relation_means",
    "resolve_methods",
    "schema_defaults",
    "stitch_options",
]
