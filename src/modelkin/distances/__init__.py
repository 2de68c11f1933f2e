"""Distances between behavioural signatures, reference normalisation, tables and comparisons.

- :mod:`.registry`: every distance by name with its metadata (method, direction, symmetry, range, metric).
- :mod:`.zest`: Zest's l1, l2, linf and cos with greedy class alignment.
- :mod:`.gradfield`: ModelGiF's mean cosine distance and its variants.
- :mod:`.reference`: reference distances over independent pairs, normalisation and verdicts.
- :mod:`.tables`: distance tables of a model collection (relations, references), heatmaps, ROC AUC.
- :mod:`.compare`: probe -> signatures -> distances -> verdict for two checkpoints.
"""

from .compare import (
    Comparison,
    compare_checkpoints,
    load_reference,
    make_probe,
    make_signature,
    signature_distances,
)
from .reference import (
    InsufficientReference,
    InsufficientReferenceWarning,
    Normalised,
    ReferenceDistance,
    Setting,
    normalise,
    reference_distance,
)
from .registry import REGISTRY, DistanceInfo, distances_for, get_distance
from .zest import align_classes, greedy_assignment, zest_distance

__all__ = [
    "REGISTRY",
    "Comparison",
    "DistanceInfo",
    "InsufficientReference",
    "InsufficientReferenceWarning",
    "Normalised",
    "ReferenceDistance",
    "Setting",
    "align_classes",
    "compare_checkpoints",
    "distances_for",
    "get_distance",
    "greedy_assignment",
    "load_reference",
    "make_probe",
    "make_signature",
    "normalise",
    "reference_distance",
    "signature_distances",
    "zest_distance",
]
