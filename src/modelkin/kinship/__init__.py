"""Family trees: who was derived from whom, from the distance tables' calibrated verdicts
(docs/lineage.md).

- :mod:`.graph`: one p-value per pair from the methods' p-values (Holm-adjusted minimum by
  default), the kinship graph's edges and its families (connected components);
- :mod:`.direction`: cues that tell the parent from the child (class subsets, pruning's exact
  zeros, MoTHer's weight kurtosis, centrality in the family) and their combined score;
- :mod:`.pruning`: the mask cue: which denser relative's smallest weights a pruned model's zeros
  are;
- :mod:`.weight_path`: whether a relative lies between the root and a model, by the angle of
  their weight differences (tells fine-tuned siblings from a grandchild);
- :mod:`.tree`: a directed tree per family (its root by the cues, each member under its nearest
  relative on the way from the root; Edmonds' minimum arborescence), undirected edges where the
  direction is not decided;
- :mod:`.evaluate`: scores against the true lineage (adjusted Rand index, edge precision and
  recall, parent and direction accuracy, per derivation kind and generation);
- :mod:`.recover`: all of it together, and the workflow stage; :mod:`.plot`: the drawn trees.

The package imports neither torch nor networkx at import time.
"""

from .direction import ModelStatistics, model_statistics, weight_statistics
from .evaluate import TrueLink, score_lineage, true_lineage
from .graph import combine_p_values, families, kinship_graph, pair_evidence
from .plot import plot_family_trees
from .pruning import checkpoint_weights, mask_agreement
from .recover import LineageResult, lineage_stage, recover_lineage
from .settings import DirectionSettings, KinshipError, KinshipSettings, schema_defaults
from .tree import build_trees, family_tree
from .weight_path import cosine_at

__all__ = [
    "DirectionSettings",
    "KinshipError",
    "KinshipSettings",
    "LineageResult",
    "ModelStatistics",
    "TrueLink",
    "build_trees",
    "checkpoint_weights",
    "combine_p_values",
    "cosine_at",
    "families",
    "family_tree",
    "kinship_graph",
    "lineage_stage",
    "mask_agreement",
    "model_statistics",
    "pair_evidence",
    "plot_family_trees",
    "recover_lineage",
    "schema_defaults",
    "score_lineage",
    "true_lineage",
    "weight_statistics",
]
