"""Data attribution: TRAK scores of an ensemble of checkpoints, and the linear datamodeling score (LDS)."""

from .trak import (
    AttributionError,
    CheckpointFeatures,
    GradientProjector,
    TrakSettings,
    ensemble_scores,
    featurize,
    kernel_features,
    margins,
    mean_out_to_loss,
    trak_scores,
)

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
    "trak_scores",
]
