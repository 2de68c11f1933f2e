"""Layer-by-layer representational similarity of two models on a probe set (docs/similarity.md).

* ``compare_layers(model_a, model_b, probe_x, layers_a, layers_b, measures, *, conv_mode, ...)`` -
every
  layer of A against every layer of B by every measure of ``modelkin.measures``; a long DataFrame.
* ``compare_checkpoints_layers(ckpt_a, ckpt_b, prepared_data, ..., n_images, split)`` - the same for
two
  checkpoints on the first images of a prepared split.
* ``select_layers(model, "relu" | "cut" | "all" | [names])`` - which layers are compared.
* ``layer_matrix``, ``format_layer_tables``, ``plot_layer_heatmaps`` - one measure as a layer x
layer
  matrix, as text, as heatmaps; ``same_layer_summary``/``summarise_similarity`` - matched-layer
  values per pair for cross-method tables.
* ``plan_pairs(config)`` - the workflow's pairs (``similarity.pairs``, with shorthands).
"""

from .._lazy import lazy_exports

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
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "COLUMNS": ".compare",
        "DEFAULT_MEASURES": ".compare",
        "DEGENERATE_POLICIES": ".compare",
        "compare_checkpoints_layers": ".compare",
        "compare_layers": ".compare",
        "CONV_MODES": ".representation",
        "Representation": ".representation",
        "capture_activations": ".representation",
        "to_representation": ".representation",
        "LAYER_SELECTORS": ".selection",
        "resolve_layer_spec": ".selection",
        "select_layers": ".selection",
        "PairError": ".pairs",
        "PlannedPair": ".pairs",
        "pair_name": ".pairs",
        "plan_pairs": ".pairs",
        "run_similarity_pair": ".pairs",
        "similarity_job": ".pairs",
        "SUMMARY_COLUMNS": ".tables",
        "format_layer_tables": ".tables",
        "layer_matrix": ".tables",
        "matched_layers": ".tables",
        "plot_layer_heatmaps": ".tables",
        "read_table": ".tables",
        "same_layer_summary": ".tables",
        "summarise_similarity": ".tables",
        "write_table": ".tables",
    },
)
