"""The derivation kinds: what each takes, its defaults and checks, and the function that builds it.

A kind is one :class:`DerivationKind` entry in :data:`KINDS`. Its ``builder`` names the function
in :mod:`modelkin.derive.builders` that makes the student (imported only when a model is
derived, so planning the workflow needs no torch). Adding a kind: one entry here (settings,
defaults, ``check``) and one builder function there.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


class DerivationError(InputError):
    """A derivation whose settings do not fit its kind, its parent or its data."""


def _positive_sparsity(settings: dict[str, Any]) -> None:
    if not 0.0 < float(settings["sparsity"]) < 1.0:
        raise DerivationError(f"prune sparsity must be in (0, 1), got {settings['sparsity']}")


def _forget_class_given(settings: dict[str, Any]) -> None:
    if settings.get("forget_class") is None:
        raise DerivationError(
            f"a {settings['kind']} derivation needs 'forget_class' (the class to forget)"
        )


def _extraction_queries(settings: dict[str, Any]) -> None:
    if settings["queries"] not in ("train", "test"):
        raise DerivationError(f"queries must be 'train' or 'test', got {settings['queries']!r}")
    if int(settings["mixup_queries"]) < 0:
        raise DerivationError(f"mixup_queries must be 0 or more, got {settings['mixup_queries']}")
    if float(settings.get("temperature", 1.0)) <= 0:
        raise DerivationError(
            f"extract_probs temperature must be positive, got {settings['temperature']}"
        )


def _transfer_target(settings: dict[str, Any]) -> None:
    if settings["classes"] is None and settings["dataset"] is None:
        raise DerivationError(
            "a transfer derivation needs 'classes' (a class subset, relabelled 0..k-1) and/or "
            "'dataset' (another data set with the parent's input shape)"
        )
    classes = settings["classes"]
    if classes is not None and (len(classes) < 2 or len(set(classes)) != len(classes)):
        raise DerivationError(
            f"transfer classes must be at least two distinct classes, got {classes}"
        )


@dataclass(frozen=True)
class DerivationKind:
    """One kind of derived model.

    ``starts_from``: ``"parent"`` (its weights) or ``"scratch"`` (a fresh student);
    ``settings``: the kind's own settings and their defaults (None: required or "the parent's");
    ``recipe_defaults``: applied over the parent's recipe, under the user's ``recipe``;
    ``lr_factor``: default multiplier of the parent's lr (None: keep the recipe's lr);
    ``check``: raises :class:`DerivationError` for settings that cannot work;
    ``builder``: the name of its function in :mod:`modelkin.derive.builders`;
    ``inherits``: whether the child learns anything from the parent itself (its weights or its
    outputs). A model retrained from scratch on the parent's data does not: it is a negative
    control (relation ``retrained``), never a derived positive.
    """

    name: str
    description: str
    starts_from: str
    settings: dict[str, Any]
    recipe_defaults: dict[str, Any]
    builder: str
    lr_factor: float | None = None
    inherits: bool = True
    check: Callable[[dict[str, Any]], None] | None = field(default=None, compare=False)

    def build_function(self) -> Callable[..., Any]:
        """The builder (imports torch)."""
        module = importlib.import_module(f"{__package__}.builders")
        return getattr(module, self.builder)


KINDS: dict[str, DerivationKind] = {
    k.name: k
    for k in [
        DerivationKind(
            "finetune",
            "the parent trained further on its own task at a lower learning rate",
            "parent",
            {},
            {"epochs": 3, "schedule": "constant"},
            "finetune",
            lr_factor=0.1,
        ),
        DerivationKind(
            "prune",
            "global magnitude pruning of conv/linear weights, then a short fine-tune with the "
            "mask fixed",
            "parent",
            {"sparsity": 0.5, "finetune": True},
            {"epochs": 2, "schedule": "constant"},
            "prune",
            lr_factor=0.1,
            check=_positive_sparsity,
        ),
        DerivationKind(
            "extract_labels",
            "a fresh student trained on the parent's hard labels of the query inputs",
            "scratch",
            {"arch": None, "queries": "train", "mixup_queries": 0},
            {"adversary": "none", "augment": False, "planted_patch": None},
            "extract",
            check=_extraction_queries,
        ),
        DerivationKind(
            "extract_probs",
            "a fresh student trained on the parent's softmax probabilities (at a temperature) of "
            "the query inputs",
            "scratch",
            {"arch": None, "queries": "train", "temperature": 1.0, "mixup_queries": 0},
            {"adversary": "none", "augment": False, "planted_patch": None},
            "extract",
            check=_extraction_queries,
        ),
        DerivationKind(
            "transfer",
            "the parent's features with a new head, fine-tuned on another class subset or data set",
            "parent",
            {"classes": None, "dataset": None, "train_head_only": False},
            {"epochs": 5, "planted_patch": None},
            "transfer",
            lr_factor=0.5,
            check=_transfer_target,
        ),
        DerivationKind(
            "retrain_without_class",
            "a fresh model trained with the parent's recipe on the training data without one class",
            "scratch",
            {"forget_class": None, "arch": None},
            {},
            "retrain_without_class",
            inherits=False,
            check=_forget_class_given,
        ),
        DerivationKind(
            "unlearn_relabel",
            "the parent fine-tuned with one class's training images relabelled at random "
            "(approximate unlearning)",
            "parent",
            {"forget_class": None},
            {"epochs": 3, "schedule": "constant"},
            "unlearn_relabel",
            lr_factor=0.5,
            check=_forget_class_given,
        ),
        DerivationKind(
            "unlearn_ascent",
            "the parent trained by gradient ascent on one class's training images (each until "
            "its loss reaches that of a uniform guess) and, unless retain is false, as usual on "
            "the other classes' images in the same batches (approximate unlearning)",
            "parent",
            {"forget_class": None, "retain": True},
            {"epochs": 3, "schedule": "constant"},
            "unlearn_ascent",
            lr_factor=0.5,
            check=_forget_class_given,
        ),
    ]
}

# Settings every derivation entry of the config may have besides its kind's own.
COMMON_SETTINGS = ("kind", "recipe", "lr_factor", "parents", "seeds")


def get_kind(name: str) -> DerivationKind:
    kind = KINDS.get(name)
    if kind is None:
        raise DerivationError(f"unknown derivation kind {name!r}; choose one of {', '.join(KINDS)}")
    return kind


def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The kind's defaults filled in; unknown or inapplicable keys and missing required ones are
    errors. ``parents`` and ``seeds`` (which models to derive, not how) are dropped."""
    if "kind" not in settings:
        raise DerivationError(
            f"derivation settings {settings} lack 'kind'; choose one of {', '.join(KINDS)}"
        )
    kind = get_kind(settings["kind"])
    allowed = set(COMMON_SETTINGS) | set(kind.settings)
    if kind.lr_factor is None:
        allowed.discard("lr_factor")
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise DerivationError(
            f"setting(s) {unknown} do not apply to a {kind.name} derivation; its settings: "
            f"{sorted(allowed)}"
        )
    out = {
        **kind.settings,
        **{k: v for k, v in settings.items() if v is not None or k not in kind.settings},
    }
    out.setdefault("recipe", {})
    out["recipe"] = dict(out["recipe"] or {})
    if kind.lr_factor is not None:
        out.setdefault("lr_factor", kind.lr_factor)
    for workflow_only in ("parents", "seeds"):
        out.pop(workflow_only, None)
    if kind.check is not None:
        kind.check(out)
    return out


def derived_dataset(parent_dataset: str, settings: dict[str, Any]) -> str:
    """The data set a derived model works on: the parent's, or a transfer's target."""
    if settings["kind"] == "transfer" and settings.get("dataset"):
        return str(settings["dataset"])
    return parent_dataset


def student_seeds(model_id: str) -> tuple[int, int]:
    """(init_seed, data_seed) of a derived model: two 31-bit numbers hashed from its id.

    Seeding from the id (not from the configured student seed alone) keeps students of different
    parents or derivations apart; a student that started from its parent's initial weights would
    look related for the wrong reason.
    """
    digest = hashlib.sha256(str(model_id).encode()).digest()
    return (
        int.from_bytes(digest[:4], "big") & 0x7FFFFFFF,
        int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF,
    )
