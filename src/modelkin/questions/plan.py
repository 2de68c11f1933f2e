"""The external models and questions of a configuration, by id (torch-free, for planning).

An external model ``NAME`` of the ``models`` section has the id ``external/NAME``; its imported
checkpoint lives where every checkpoint does (:func:`modelkin.ids.checkpoint_path`). Questions
name models by their ``models`` name or by any model id (a zoo or derived model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..ids import ExternalId, ModelIdError, parse_model_id


@dataclass(frozen=True)
class ExternalModelSpec:
    """One entry of the ``models`` section (defaults filled by the schema)."""

    name: str
    source: str
    weights: str
    dataset: str
    num_classes: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return str(ExternalId(self.name))

    def import_job(self) -> dict[str, Any]:
        """What the ``import_model`` rule passes on (everything but the weights' path, which is
        the rule's input, so that replacing the file re-imports)."""
        return {
            "name": self.name,
            "source": self.source,
            "dataset": self.dataset,
            "num_classes": self.num_classes,
            "kwargs": dict(self.kwargs),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "preprocessing": dict(self.preprocessing),
        }


def external_models(config: dict[str, Any]) -> dict[str, ExternalModelSpec]:
    """``{model id: spec}`` for every entry of the ``models`` section, in config order."""
    specs: dict[str, ExternalModelSpec] = {}
    for name, entry in (config.get("models") or {}).items():
        spec = ExternalModelSpec(
            name=str(ExternalId(str(name)).name),
            source=str(entry["source"]),
            weights=str(entry["weights"]),
            dataset=str(entry["dataset"]),
            num_classes=entry.get("num_classes"),
            kwargs=dict(entry.get("kwargs") or {}),
            class_names=tuple(entry["class_names"]) if entry.get("class_names") else None,
            preprocessing=dict(entry.get("preprocessing") or {}),
        )
        specs[spec.model_id] = spec
    return specs


@dataclass(frozen=True)
class DerivationQuestion:
    """Was each suspect derived from the victim? References: models independent of the victim
    and of each other, whose distances make the null the verdicts are calibrated on."""

    name: str
    victim: str
    suspects: tuple[str, ...]
    references: tuple[str, ...]
    methods: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "victim": self.victim,
            "suspects": list(self.suspects),
            "references": list(self.references),
            "methods": list(self.methods),
        }

    @classmethod
    def from_dict(cls, values: Any) -> DerivationQuestion:
        return cls(
            str(values["name"]), str(values["victim"]), tuple(values["suspects"]),
            tuple(values["references"]), tuple(values["methods"]),
        )  # fmt: skip

    @property
    def models(self) -> list[str]:
        """Every model the question reads a signature of (victim, suspects, references)."""
        return list(dict.fromkeys([self.victim, *self.suspects, *self.references]))


def model_reference(value: Any, config: dict[str, Any], where: str) -> str:
    """A model the configuration names, as an id string: a name of the ``models`` section stands
    for ``external/NAME``; anything else must be a model id, and an external id must name an
    entry of the ``models`` section. Whether a zoo or derived id is planned is the catalog's
    check (:meth:`modelkin.catalog.ModelCatalog.resolve`). :class:`ModelIdError` naming
    ``where`` and the section's names otherwise."""
    models = config.get("models") or {}
    names = ", ".join(map(str, models)) or "none"
    if isinstance(value, str) and value in models:
        return str(ExternalId(value))
    try:
        model = parse_model_id(value)
    except ModelIdError as err:
        if isinstance(value, str) and "/" not in value:
            raise ModelIdError(
                f"{where}: {value!r} is neither a name of the models section ({names}) nor a "
                f"model id ({err})"
            ) from None
        raise ModelIdError(f"{where}: {err}") from None
    if isinstance(model, ExternalId) and model.name not in models:
        raise ModelIdError(
            f"{where}: {model} is not a model of the models section (its names: {names}); add "
            "it there with its source, weights and data set"
        )
    return str(model)


def derivation_questions(
    config: dict[str, Any], resolve: Callable[[str, str], str]
) -> list[DerivationQuestion]:
    """The ``questions.derivation`` entries with their models as checked ids.

    ``resolve(model, where)``: the catalog's check that a model (a ``models`` name or an id) is
    planned, as an id (:meth:`modelkin.catalog.ModelCatalog.resolve`).
    """
    from ..signatures.registry import method_names

    questions = []
    # Every registered method and baseline unless the question or distances.methods says less.
    default_methods = (config.get("distances") or {}).get("methods") or method_names()
    for name, entry in ((config.get("questions") or {}).get("derivation") or {}).items():
        where = f"questions.derivation.{name}"
        victim = resolve(entry["victim"], f"{where}.victim")
        suspects = [resolve(m, f"{where}.suspects") for m in entry["suspects"]]
        references = [resolve(m, f"{where}.references") for m in entry["references"]]
        overlap = sorted({victim, *suspects} & set(references))
        if overlap:
            raise InputError(
                f"{where}: {', '.join(overlap)} is both a reference and the victim or a suspect; "
                "references must be known to be independent of the victim"
            )
        if victim in suspects:
            raise InputError(f"{where}: the victim {victim} is also listed as a suspect")
        methods = entry.get("methods") or default_methods
        questions.append(
            DerivationQuestion(
                str(name),
                victim,
                tuple(dict.fromkeys(suspects)),
                tuple(dict.fromkeys(references)),
                tuple(methods),
            )  # fmt: skip
        )
    return questions


def question_path(results: str, kind: str, name: str, suffix: str) -> str:
    """``{results}/questions/{kind}/{name}{suffix}``."""
    return f"{results}/questions/{kind}/{name}{suffix}"
