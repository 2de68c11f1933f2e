"""ModelDiff (Shah, Park, Ilyas, Madry, ICML 2023): training-set directions that set two learning
algorithms apart, from TRAK scores of several checkpoints of each (docs/modeldiff.md).

    from modelkin.modeldiff import ModelDiff
    md = ModelDiff(arch_a, arch_b, ckpts_a, ckpts_b, train_loader, device="cpu")
    result = md.get_B_minus_A(val_loader, num_pca_comps=3)   # what B relies on and A does not

Modules, one concept each:

- :mod:`.directions`: residual scores, explained variance, residual PCA,
  :class:`DistinguishingDirections`, ``precision_at_k`` (numpy and scikit-learn only);
- :mod:`.api`: :class:`ModelDiff`, the published API, scoring checkpoints with TRAK;
- :mod:`.counterfactual`: P(target class) before and after a transformation, per model;
- :mod:`.store`: the directions file (HDF5) of one comparison;
- :mod:`.stages`: the workflow's steps on files (compare, surface, counterfactual, summary);
- :mod:`.plots`: the summary figure and the image grid of each direction;
- :mod:`.plan`: what the ``modeldiff`` config section plans (checkpoints, files, job settings).

Importing the package is cheap: each name loads its module on first use. Only ``api`` and
``counterfactual`` import torch; ``plan`` needs neither torch nor scikit-learn.
"""

from .._lazy import lazy_exports

__all__ = [
    "DIRECTIONS_KIND",
    "KINDS",
    "KIND_SLUGS",
    "Counterfactual",
    "DistinguishingDirections",
    "ModelDiff",
    "ModelDiffError",
    "ModelDiffPlan",
    "StoredComparison",
    "compare_score_files",
    "counterfactual_files",
    "counterfactual_probabilities",
    "explained_variance",
    "format_summary",
    "planted_indices",
    "plot_summary",
    "precision_at_k",
    "read_comparison",
    "residual_pca",
    "residual_scores",
    "resolve_counterfactual",
    "resolve_patch",
    "save_direction_grid",
    "save_summary_plot",
    "summarise_counterfactual",
    "summarise_files",
    "surface_directions",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "KINDS": ".directions",
        "DistinguishingDirections": ".directions",
        "ModelDiffError": ".directions",
        "explained_variance": ".directions",
        "precision_at_k": ".directions",
        "residual_pca": ".directions",
        "residual_scores": ".directions",
        "ModelDiff": ".api",
        "counterfactual_probabilities": ".counterfactual",
        "Counterfactual": ".counterfactual",
        "resolve_counterfactual": ".counterfactual",
        "resolve_patch": ".counterfactual",
        "summarise_counterfactual": ".counterfactual",
        "DIRECTIONS_KIND": ".store",
        "StoredComparison": ".store",
        "read_comparison": ".store",
        "compare_score_files": ".stages",
        "counterfactual_files": ".stages",
        "format_summary": ".stages",
        "planted_indices": ".stages",
        "plot_summary": ".stages",
        "summarise_files": ".stages",
        "surface_directions": ".stages",
        "save_direction_grid": ".plots",
        "save_summary_plot": ".plots",
        "KIND_SLUGS": ".plan",
        "ModelDiffPlan": ".plan",
    },
)
