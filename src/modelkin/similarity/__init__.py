"""Layer-by-layer representational similarity of two models on a probe set (docs/similarity.md).

* ``compare_layers(model_a, model_b, probe_x, layers_a, layers_b, measures, *, conv_mode, ...)`` - every
  layer of A against every layer of B by every measure of ``modelkin.measures``; a long DataFrame.
* ``compare_checkpoints_layers(ckpt_a, ckpt_b, prepared_data, ..., n_images, split)`` - the same for two
  checkpoints on the first images of a prepared split.
* ``select_layers(model, "relu" | "cut" | "all" | [names])`` - which layers are compared.
* ``layer_matrix``, ``format_layer_tables``, ``plot_layer_heatmaps`` - one measure as a layer x layer
  matrix, as text, as heatmaps; ``same_layer_summary``/``summarise_similarity`` - matched-layer values
  per pair for cross-method tables.
* ``plan_pairs(config)`` - the workflow's pairs (``similarity.pairs``, with shorthands).
"""

from .compare import (
    COLUMNS,
    CONV_MODES,
    DEFAULT_MEASURES,
    DEGENERATE_POLICIES,
    LAYER_SELECTORS,
    Representation,
    capture_activations,
    compare_checkpoints_layers,
    compare_layers,
    resolve_layer_spec,
    select_layers,
    to_representation,
)
from .pairs import (
    PairError,
    PlannedPair,
    pair_name,
    plan_pairs,
    run_similarity_pair,
    similarity_job,
)
from .tables import (
    SUMMARY_COLUMNS,
    format_layer_tables,
    layer_matrix,
    matched_layers,
    plot_layer_heatmaps,
    read_table,
    same_layer_summary,
    summarise_similarity,
    write_table,
)

__all__ = [
    "COLUMNS",
    "CONV_MODES",
    "DEFAULT_MEASURES",
    "DEGENERATE_POLICIES",
    "LAYER_SELECTORS",
    "PairError",
    "PlannedPair",
    "Representation",
    "SUMMARY_COLUMNS",
    "capture_activations",
    "compare_checkpoints_layers",
    "compare_layers",
    "format_layer_tables",
    "layer_matrix",
    "matched_layers",
    "pair_name",
    "plan_pairs",
    "plot_layer_heatmaps",
    "read_table",
    "resolve_layer_spec",
    "run_similarity_pair",
    "same_layer_summary",
    "select_layers",
    "similarity_job",
    "summarise_similarity",
    "to_representation",
    "write_table",
]
