"""Comparing signatures: distance tables, reference normalisation, verdicts, relatedness.

The distances themselves belong to their signature methods (:mod:`modelkin.signatures`).

- :mod:`.reference`: reference distances over independent pairs, normalisation and verdicts;
- :mod:`.tables`: the distance table of a model collection (relations, references);
- :mod:`.relatedness`: ROC AUC per derivation kind (derived vs independent);
- :mod:`.plots`: heatmaps and ROC curves;
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

__all__ = [
    "Comparison",
    "InsufficientReference",
    "InsufficientReferenceWarning",
    "Normalised",
    "ReferenceDistance",
    "Setting",
    "compare_checkpoints",
    "load_reference",
    "make_probe",
    "make_signature",
    "normalise",
    "reference_distance",
    "signature_distances",
]
