"""Derived models ("suspects"): copies, compressions, extractions, transfers and unlearned versions.

Each derivation takes a parent checkpoint and produces a new checkpoint whose metadata records
``parent`` (the parent's model id), ``parent_sha256``, ``derivation`` (the kind), ``algorithm``
(the configured derivation name), ``root`` / ``root_algorithm`` (the model at the top of the
lineage, whose training algorithm picks the reference setting for distances) and the settings and
recipe used. The kinds follow the suspects of Zest and ModelGiF:

========================  ===================================================================
``finetune``              the parent trained further on its own task at a lower learning rate
``prune``                 global magnitude pruning of conv/linear weights to ``sparsity``, then
                          a short fine-tune with the mask held fixed (exact zeros)
``extract_labels``        a fresh student (any architecture) trained on the parent's hard labels
                          of the query inputs (model extraction, "Extract-L")
``extract_probs``         the same on the parent's probabilities at ``temperature``
                          (distillation with soft targets, "Extract-P")
``transfer``              the parent's features with a new head, fine-tuned on another class
                          subset (relabelled 0..k-1) or another data set of the same input shape
``retrain_without_class`` a fresh model trained with the parent's recipe on data without one class
``unlearn_relabel``       the parent fine-tuned with that class's images relabelled at random
``unlearn_ascent``        the parent trained by gradient ascent on that class's images (each
                          until its loss is that of a uniform guess) and on the rest as usual
========================  ===================================================================

Derived model ids are ``derived/{dataset}/{derivation}/{parent id}/s{seed}`` (:mod:`modelkin.ids`).
The student's torch seeds are drawn from a hash of that id, so no student shares initial weights
or batch order with its parent, with a zoo model or with another student.

- :mod:`.kinds`: the registry of kinds, their settings and checks (torch-free);
- :mod:`.plan`: the derived models a configuration plans (torch-free);
- :mod:`.builders`: one function per kind that makes the student;
- :mod:`.run`: :func:`~modelkin.derive.run.derive_model` and ``derive_checkpoint``.
"""

from .kinds import KINDS, DerivationError, DerivationKind, resolve_settings, student_seeds
from .plan import PlannedModel, planned_derivations, resolve_parents

__all__ = [
    "KINDS",
    "DerivationError",
    "DerivationKind",
    "PlannedModel",
    "planned_derivations",
    "resolve_parents",
    "resolve_settings",
    "student_seeds",
]
