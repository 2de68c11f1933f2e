"""Which models and pairs a concordance compares, and what each of its jobs is given.

Planning reads the validated configuration (:func:`modelkin.config.validate_config` has filled in
the schema's defaults) and its :class:`~modelkin.catalog.ModelCatalog` only: no checkpoint is
opened and torch is not imported, so that Snakemake can plan the stage cheaply.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ids import ZooId, pair_slug, parse_model_id
from ..signatures.registry import METHODS
from ..stitching.options import PRESETS, StitchOptions
from .defaults import schema_defaults
from .methods import STITCHING_VARIANTS, ConcordanceError, method_info, resolve_methods

if TYPE_CHECKING:
    from ..catalog import ModelCatalog

log = logging.getLogger(__name__)

# Derivation kinds whose model predicts another task (a new head on other classes or another data
# set): a concordance compares models of one task, so these never join one.
TASK_CHANGING_KINDS = ("transfer",)


def pair_key(model_a: str, model_b: str) -> str:
    """File-name slug of a pair, the stitching stage's (:func:`modelkin.ids.pair_slug`)."""
    return pair_slug(model_a, model_b)


@dataclass(frozen=True)
class ConcordancePlan:
    """The models and pairs of one concordance, its methods, and how many jobs share the pairs."""

    parent: str | None
    dataset: str
    models: tuple[str, ...]
    pairs: dict[str, tuple[str, str]]  # pair key -> (model_a, model_b)
    methods: tuple[str, ...]
    jobs: int

    @property
    def chunks(self) -> list[list[str]]:
        """Pair keys per job: round-robin over the planned order, at most ``jobs`` non-empty
        chunks."""
        keys = list(self.pairs)
        n = max(1, min(self.jobs, len(keys)))
        return [keys[i::n] for i in range(n)]

    def chunk_models(self, chunk: int) -> list[str]:
        """The models whose checkpoints the pairs of ``chunk`` read, in plan order."""
        used = {m for key in self.chunks[chunk] for m in self.pairs[key]}
        return [m for m in self.models if m in used]

    @property
    def distance_methods(self) -> list[str]:
        """The methods whose verdicts come from the distance stage's tables, in method order."""
        return [m for m in self.methods if method_info(m).kind == "distance"]


def _zoo_id(model: str) -> ZooId | None:
    parsed = parse_model_id(model)
    return parsed if isinstance(parsed, ZooId) else None


def _descends(model: str, ancestor: str) -> bool:
    """Whether ``ancestor`` is in the lineage that ``model``'s id spells out."""
    up = parse_model_id(model).parent
    while up is not None:
        if str(up) == ancestor:
            return True
        up = up.parent
    return False


def plan_concordance(
    config: Mapping[str, Any], catalog: ModelCatalog, compared: Sequence[str]
) -> ConcordancePlan | None:
    """The models and pairs of the ``concordance`` section, or None when it is off (or ``enabled:
    auto`` finds nothing to compare). ``config`` is validated; ``catalog`` is its model catalog;
    ``compared`` are the models of the distance tables (``distance_models()``).

    ``models: family``: the parent (``concordance.parent``, else the first of ``derived.parents``),
    every planned derived model descending from it that keeps its task (not a transfer to other
    classes or another data set), and the zoo models of its setting among ``compared``.
    ``models: all``: every model of ``compared`` on the parent's data set that keeps the full task.
    A list: those model ids.
    """
    section = config["concordance"]
    enabled = section["enabled"]
    if enabled is False:
        return None
    strict = enabled is True
    compared = list(compared)
    distance_methods = list(config["distances"]["methods"])
    selection = section["models"]

    def skip(reason: str) -> None:
        if strict:
            raise ConcordanceError(
                f"{reason}; or set concordance.enabled: auto (skip quietly) or false"
            )
        log.info("concordance stage skipped: %s", reason)

    def keeps_task(model: str, dataset: str) -> bool:
        planned = catalog.derived.get(model)
        if planned is not None:
            return planned.kind not in TASK_CHANGING_KINDS and planned.dataset == dataset
        zoo = _zoo_id(model)
        return zoo is not None and zoo.dataset == dataset

    parent = section["parent"] or next(iter(catalog.derived_parents), None)
    if isinstance(selection, str):
        if parent is None:
            skip(
                "concordance.models: family/all needs a parent: set concordance.parent or "
                "derived.parents"
            )
            return None
        where = "concordance.parent" if section["parent"] else "derived.parents"
        parent = catalog.resolve(parent, where)  # a model the configuration plans
        profile = catalog.profile(parent)
        if parent not in compared:
            raise ConcordanceError(
                f"the concordance parent {parent} is not among the models of the distance tables; "
                "add it to distances.extra_models or choose one of derived.parents"
            )
        dataset = profile[0]
        if selection == "family":
            # The zoo section's seeds (not the reference models), and one derived model of each
            # configured derivation (the first student seed): a bounded family.
            zoo = [m for m in compared if catalog.is_zoo(m) and catalog.profile(m) == profile]
            first_seed: dict[tuple[str, str], str] = {}
            for m in compared:
                planned = catalog.derived.get(m)
                if planned and _descends(m, parent) and keeps_task(m, dataset):
                    first_seed.setdefault((planned.derivation, planned.parent), m)
            family = list(first_seed.values())
            models = list(dict.fromkeys([parent, *zoo, *family]))
        elif selection == "all":
            models = [m for m in compared if keeps_task(m, dataset)]
        else:
            raise ConcordanceError(
                f"concordance.models must be family, all or a list of model ids, not {selection!r}"
            )
    else:
        models = list(dict.fromkeys(catalog.resolve_all(selection, "concordance.models")))
        uses_tables = any(m in METHODS for m in (section["methods"] or distance_methods))
        absent = [m for m in models if m not in compared]
        if uses_tables and absent:
            raise ConcordanceError(
                f"concordance.models {absent} are not in the distance tables; add them to "
                f"distances.extra_models (or drop the signature methods {', '.join(METHODS)} "
                "from concordance.methods)"
            )
        transfers = [
            m
            for m in models
            if m in catalog.derived and catalog.derived[m].kind in TASK_CHANGING_KINDS
        ]
        if transfers:
            raise ConcordanceError(
                f"concordance.models {transfers} are transfers to another task (a different head); "
                "every model of a concordance must share the task, remove them"
            )
        datasets = {catalog.dataset(m) for m in models}
        if len(datasets) != 1:
            raise ConcordanceError(
                f"concordance.models span data sets {sorted(datasets)}; choose models of one"
            )
        dataset = datasets.pop()
    if len(models) < 3:
        skip(
            f"the concordance needs at least 3 models (3 pairs) for rank correlations, its "
            f"selection gives {len(models)}: {', '.join(models) or 'none'}"
        )
        return None
    methods = resolve_methods(section["methods"], distance_methods)
    pairs = {pair_key(a, b): (a, b) for a, b in itertools.combinations(models, 2)}
    return ConcordancePlan(
        parent, dataset, tuple(models), pairs, tuple(methods), int(section["jobs"])
    )


def chunk_job(config: Mapping[str, Any], plan: ConcordancePlan, chunk: int) -> dict[str, Any]:
    """The keyword arguments of :func:`~modelkin.concordance.pairs.concordance_pairs` for one job's
    pairs, less the checkpoint files (``models`` lists the models whose checkpoints the rule
    passes, in that order). ``config`` is validated."""
    section = config["concordance"]
    if not 0 <= chunk < len(plan.chunks):
        raise ConcordanceError(
            f"concordance job {chunk} is not planned; the plan has jobs 0..{len(plan.chunks) - 1}"
        )
    methods = list(plan.methods)
    stitches = any(m in STITCHING_VARIANTS for m in methods)
    return {
        "pairs": [[key, *plan.pairs[key]] for key in plan.chunks[chunk]],
        "models": plan.chunk_models(chunk),
        "layer": section["layer"],
        "measures": [m for m in methods if method_info(m).kind == "measure"],
        "stitch": stitch_options(section["stitch"]) if stitches else None,
        "images": int(section["images"]),
        "split": section["split"],
        "device": config["device"],
    }


def stitch_options(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stitching options of a concordance's runs, validated: the preset, then the section's
    keys (``epochs``, ``measures``, ...), then its ``options``. ``settings`` is the
    ``concordance.stitch`` section; keys it lacks take the schema's defaults."""
    settings = {**schema_defaults()["stitch"], **(settings or {})}
    extra = dict(settings.pop("options", None) or {})
    merged = {k: v for k, v in settings.items() if v is not None or k == "preset"}
    preset = merged.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConcordanceError(
            f"unknown stitching preset {preset!r} in concordance.stitch; presets: "
            f"{', '.join(PRESETS)}"
        )
    try:
        options = StitchOptions.from_dict(
            {**(PRESETS[preset] if preset else {}), **merged, **extra}
        )
    except ValueError as err:
        raise ConcordanceError(f"concordance.stitch: {err}") from err
    options.preset = preset
    return options.to_dict()
