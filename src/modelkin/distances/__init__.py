"""Comparing signatures: distance tables, reference normalisation, verdicts, relatedness.

The distances themselves belong to their signature methods (:mod:`modelkin.signatures`).

- :mod:`.calibration`: the null of unrelated pairs, p-values and verdicts at a false-positive rate;
- :mod:`.reference`: settings, reference distances, the verdict of one distance;
- :mod:`.verdicts`: verdicts of any two signatures against a workflow's reference file;
- :mod:`.tables`: the distance table of a model collection (relations, references);
- :mod:`.relatedness`: ROC AUC per derivation kind (derived vs independent);
- :mod:`.plots`: heatmaps and ROC curves;
- :mod:`.compare`: probe -> signatures -> distances -> verdict for two checkpoints.
"""

from .calibration import CalibrationSettings
from .compare import (
    Comparison,
    compare_checkpoints,
    make_probe,
    make_signature,
    signature_distances,
)
from .reference import (
    InsufficientReference,
    InsufficientReferenceWarning,
    ReferenceDistance,
    Setting,
    Side,
    Verdict,
    reference_distance,
)
from .verdicts import load_reference

__all__ = [
    "CalibrationSettings",
    "Comparison",
    "InsufficientReference",
    "InsufficientReferenceWarning",
    "ReferenceDistance",
    "Setting",
    "Side",
    "Verdict",
    "compare_checkpoints",
    "load_reference",
    "make_probe",
    "make_signature",
    "reference_distance",
    "signature_distances",
]
