"""The models a configuration plans, by id: what the workflow asks of every model it meets.

:class:`ModelCatalog` knows the zoo (``zoo`` section), the derived models (``derived``
section) and the users' own models (``models`` section, ids ``external/NAME``). Every model id
the configuration names anywhere goes through :meth:`resolve`, which
rejects ids that are malformed (``..``, absolute paths) or name a model nothing plans (a seed
outside ``zoo.seeds``, an algorithm the zoo does not train) before any job is planned.
Torch-free, so that planning the workflow stays light.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import zoo_seeds
from .derive.plan import PlannedModel, planned_derivations, resolve_parents
from .ids import (
    DerivedId,
    ExternalId,
    ModelId,
    ModelIdError,
    ZooId,
    checkpoint_path,
    parse_model_id,
)
from .modeldiff.plan import is_external, seed_pairs
from .questions.plan import ExternalModelSpec, external_models, model_reference


class ModelCatalog:
    """Every zoo, derived and external model of a configuration."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.results = str(config.get("results", "results"))
        zoo = config.get("zoo") or {}
        self.zoo: list[ZooId] = [
            ZooId(d, a, alg, i, s)
            for d in zoo.get("datasets", [])
            for a in zoo.get("architectures", [])
            for alg in zoo.get("algorithms", [])
            for i, s in zoo_seeds(config)
        ]
        self.derived: dict[str, PlannedModel] = {m.model_id: m for m in planned_derivations(config)}
        # The derived section's default parents (derived.parents) as ids, in config order: where
        # derivations start unless they name their own parents; the concordance's default parent.
        self.derived_parents: list[str] = resolve_parents(
            (config.get("derived") or {}).get("parents") or [], config
        )
        self._zoo_ids = {str(m) for m in self.zoo}
        # Models trained like the zoo's for one stage only (ModelDiff's two algorithms).
        self.reference_models: list[ZooId] = reference_models(config)
        self.selection_models: list[ZooId] = selection_models(config)
        stage = modeldiff_models(config) + self.reference_models + self.selection_models
        self.stage_trained: list[ZooId] = list(
            dict.fromkeys(m for m in stage if str(m) not in self._zoo_ids)
        )
        self._trained_ids = self._zoo_ids | {str(m) for m in self.stage_trained}
        # Users' own models (``models`` section), imported by the import_model rule.
        self.external: dict[str, ExternalModelSpec] = external_models(config)

    # -- membership --------------------------------------------------------------------------

    def all(self) -> list[str]:
        """Every planned model: the zoo, then the derived models (parents before children)."""
        return [str(m) for m in self.zoo] + list(self.derived)

    def is_zoo(self, model: object) -> bool:
        return str(model) in self._zoo_ids

    def is_trained(self, model: object) -> bool:
        """Whether the ``train`` rule makes ``model`` (a zoo model or a stage's own)."""
        return str(model) in self._trained_ids

    def __contains__(self, model: object) -> bool:
        text = str(model)
        return text in self._trained_ids or text in self.derived or text in self.external

    def resolve(self, model: str | ModelId, where: str) -> str:
        """``model`` as a checked id string, if the configuration plans it; else one clear error
        naming the config entry ``where`` it came from and how to fix it. A name of the
        ``models`` section stands for its id (``victim`` -> ``external/victim``)."""
        if not isinstance(model, (ZooId, DerivedId, ExternalId)):
            model = model_reference(model, self.config, where)  # names -> ids; malformed ids
        parsed = parse_model_id(model)
        text = str(parsed)
        if text in self:
            return text
        if isinstance(parsed, ZooId):
            raise ModelIdError(
                f"{where}: {text} is not a zoo model of this configuration; "
                f"{self._why_not_in_zoo(parsed)}"
            )
        if isinstance(parsed, DerivedId):
            raise ModelIdError(
                f"{where}: {text} is not a derived model this configuration plans "
                f"(derived.parents, derived.derivations.{parsed.derivation}, derived.seeds)"
            )
        names = ", ".join(spec.name for spec in self.external.values()) or "none"
        raise ModelIdError(
            f"{where}: {text} is not a model of the models section (its names: {names}); add "
            f"it there with its source, weights and data set"
        )

    def resolve_all(self, models: Iterable[str | ModelId], where: str) -> list[str]:
        return [self.resolve(m, where) for m in models]

    def _why_not_in_zoo(self, model: ZooId) -> str:
        zoo = self.config.get("zoo") or {}
        for field, value, key in (
            ("dataset", model.dataset, "datasets"),
            ("architecture", model.arch, "architectures"),
            ("algorithm", model.algorithm, "algorithms"),
        ):
            if value not in zoo.get(key, []):
                return f"its {field} {value!r} is not in zoo.{key} ({', '.join(zoo.get(key, []))})"
        seeds = ", ".join(f"i{i}-d{d}" for i, d in zoo_seeds(self.config))
        return f"its seeds i{model.init_seed}-d{model.data_seed} are not in zoo.seeds ({seeds})"

    # -- what a model is -----------------------------------------------------------------------

    def dataset(self, model: str | ModelId) -> str:
        """The data set a model works on (whose prepared file and probes it uses)."""
        parsed = parse_model_id(model)
        if isinstance(parsed, (ZooId, DerivedId)):
            return parsed.dataset
        if str(parsed) in self.external:
            return self.external[str(parsed)].dataset
        raise ModelIdError(f"{parsed} has no data set in this configuration")

    def profile(self, model: str | ModelId) -> tuple[str, str, str]:
        """(data set, architecture, algorithm whose independent models are its counterparts)."""
        text = str(parse_model_id(model))
        if text in self.derived:
            return self.derived[text].profile
        parsed = parse_model_id(text)
        if isinstance(parsed, ZooId):
            return parsed.profile
        if isinstance(parsed, ExternalId) and text in self.external:
            spec = self.external[text]
            return spec.dataset, spec.source, "external"
        raise ModelIdError(f"{text} has no profile in this configuration")

    def checkpoint(self, model: str | ModelId) -> str:
        """Where the workflow writes (or finds) ``model``'s checkpoint."""
        return checkpoint_path(model, self.results)

    def zoo_of(
        self, dataset: str | None = None, arch: str | None = None, algorithm: str | None = None
    ) -> list[str]:
        """Zoo model ids matching the given data set, architecture and algorithm."""
        return [
            str(m)
            for m in self.zoo
            if (dataset is None or m.dataset == dataset)
            and (arch is None or m.arch == arch)
            and (algorithm is None or m.algorithm == algorithm)
        ]


def modeldiff_models(config: dict[str, Any]) -> list[ZooId]:
    """The checkpoints of ModelDiff's algorithms A and B (``modeldiff`` section)."""
    section = config.get("modeldiff") or {}
    algorithms = (config.get("training") or {}).get("algorithms") or {}
    names = [section.get("algorithm_a"), section.get("algorithm_b")]
    roles = [a for a in names if isinstance(a, str) and a in algorithms]
    # The user's own checkpoints (models_a, models_b) are the models section's, not trained.
    if not section or len(roles) != len(names) or is_external(section):
        return []
    return [
        ZooId(section["dataset"], section["arch"], algorithm, i, d)
        for algorithm in roles
        for i, d in seed_pairs(section["seeds"])
    ]


def reference_models(config: dict[str, Any]) -> list[ZooId]:
    """Models trained only as unrelated references for calibrated verdicts
    (``distances.reference_models``)."""
    entries = (config.get("distances") or {}).get("reference_models") or []
    return [
        ZooId(e["dataset"], e["arch"], e.get("algorithm", "standard"), s, s)
        for e in entries
        for s in e["seeds"]
    ]


def selection_models(config: dict[str, Any]) -> list[ZooId]:
    """Models trained only to select ModelGiF's reference points, one set per data set of the
    zoo and of the derived models (a transfer to another data set is compared on that data set's
    probe too) (``gradfield.selection_seeds``), unless ``gradfield.selection_models`` names
    them."""
    section = config.get("gradfield") or {}
    if section.get("selection_models") or "gradfield" not in config:
        return []
    zoo = config.get("zoo") or {}
    arch = section.get("selection_arch") or (zoo.get("architectures") or [None])[0]
    if arch is None:
        return []
    algorithm = section.get("selection_algorithm", "standard")
    datasets = [*zoo.get("datasets", []), *(m.dataset for m in planned_derivations(config))]
    return [
        ZooId(dataset, arch, algorithm, s, s)
        for dataset in dict.fromkeys(datasets)
        for s in section.get("selection_seeds", [])
    ]
