"""Data attribution: TRAK scores of an ensemble of checkpoints, and the linear datamodeling score
(LDS)."""

from .._lazy import lazy_exports

__all__ = [
    "AttributionError",
    "CheckpointFeatures",
    "GradientProjector",
    "TrakSettings",
    "ensemble_scores",
    "featurize",
    "kernel_features",
    "margins",
    "mean_out_to_loss",
    "ridge_for",
    "trak_scores",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AttributionError": ".settings",
        "TrakSettings": ".settings",
        "ridge_for": ".settings",
        "GradientProjector": ".projection",
        "margins": ".gradients",
        "CheckpointFeatures": ".trak",
        "ensemble_scores": ".trak",
        "featurize": ".trak",
        "kernel_features": ".trak",
        "mean_out_to_loss": ".trak",
        "trak_scores": ".trak",
    },
)
