"""Sizes within the data, classes that exist, and references with enough independent models."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from ..errors import ModelkinError
from ._common import _catalog, _signature_methods
from .models import _concordance_models

# -- sizes and classes ------------------------------------------------------------------------


def _sizes_and_classes(config: dict[str, Any]) -> Iterable[str]:
    from ..datasets import DATASETS

    catalog = _catalog(config)
    datasets = list(dict.fromkeys(catalog.dataset(m) for m in catalog.all()))

    def too_many(value: Any, dataset: str, split: str, where: str) -> Iterable[str]:
        size = DATASETS[dataset].split_size(split) if dataset in DATASETS else 0
        if isinstance(value, int) and size and value > size:
            yield (
                f"{where}: {value:,} images asked of {dataset}'s {split} split, which holds "
                f"{size:,}; use at most {size}"
            )

    methods = _signature_methods(config)
    zest = config.get("zest") or {}
    gradfield = config.get("gradfield") or {}
    candidates = gradfield.get("candidates") or {}
    for dataset in datasets:
        if "zest" in methods:
            yield from too_many(
                zest.get("n_images"), dataset, zest.get("split", "train"), "zest.n_images"
            )
        if "gradfield" in methods:
            yield from too_many(
                candidates.get("n_points"),
                dataset,
                candidates.get("split", "train"),
                "gradfield.candidates.n_points",
            )
    if "gradfield" in methods:
        points, kept = candidates.get("n_points"), gradfield.get("reference_points")
        if isinstance(points, int) and isinstance(kept, int) and kept > points:
            yield (
                f"gradfield.reference_points: {kept} points kept of {points} candidates "
                "(gradfield.candidates.n_points); keep at most as many as there are candidates"
            )
    similarity = config.get("similarity") or {}
    if similarity.get("pairs"):
        from ..similarity.pairs import plan_pairs

        try:
            pair_datasets = {p.dataset for p in plan_pairs(config)}
        except ModelkinError:
            pair_datasets = set()
        for dataset in sorted(pair_datasets):
            yield from too_many(
                similarity.get("images"),
                dataset,
                similarity.get("split", "test"),
                "similarity.images",
            )
    concordance = config.get("concordance") or {}
    conc_models = _concordance_models(config)
    if conc_models:
        dataset = catalog.dataset(conc_models[0])
        yield from too_many(
            concordance.get("images"),
            dataset,
            concordance.get("split", "test"),
            "concordance.images",
        )
    modeldiff = config.get("modeldiff") or {}
    trak = modeldiff.get("trak") or {}
    if modeldiff.get("dataset") in DATASETS:
        yield from too_many(
            trak.get("n_targets"),
            modeldiff["dataset"],
            trak.get("targets", "test"),
            "modeldiff.trak.n_targets",
        )

    # Class indices below the data set's number of classes.
    def classes_of(dataset: str) -> int:
        return DATASETS[dataset].num_classes if dataset in DATASETS else 0

    def bad_classes(values: Iterable[Any], dataset: str, where: str) -> Iterable[str]:
        n = classes_of(dataset)
        wrong = [v for v in values if isinstance(v, int) and n and v >= n]
        if wrong:
            yield (
                f"{where}: class {', '.join(map(str, wrong))} does not exist in {dataset} "
                f"({n} classes: 0..{n - 1})"
            )

    for model in catalog.derived.values():
        settings = model.settings
        parent_dataset = catalog.dataset(model.parent)
        where = f"derived.derivations.{model.derivation}"
        if settings.get("classes"):
            yield from bad_classes(settings["classes"], model.dataset, f"{where}.classes")
        if settings.get("forget_class") is not None:
            yield from bad_classes(
                [settings["forget_class"]], parent_dataset, f"{where}.forget_class"
            )
    for dataset in datasets:
        for i, cls in enumerate(candidates.get("classes") or []):
            if "gradfield" in methods:
                yield from bad_classes([cls], dataset, f"gradfield.candidates.classes[{i}]")
    algorithms = (config.get("training") or {}).get("algorithms") or {}
    base = (config.get("training") or {}).get("base") or {}
    zoo_datasets = (config.get("zoo") or {}).get("datasets") or []
    md_dataset = modeldiff.get("dataset")
    for name, recipe in algorithms.items():
        patch = {**base, **(recipe or {})}.get("planted_patch")
        if not isinstance(patch, dict):
            continue
        for dataset in dict.fromkeys([*zoo_datasets, *([md_dataset] if md_dataset else [])]):
            yield from bad_classes(
                [patch.get("target_class")],
                dataset,
                f"training.algorithms.{name}.planted_patch.target_class",
            )
    patch = (modeldiff.get("counterfactual") or {}).get("patch")
    if isinstance(patch, dict) and md_dataset:
        yield from bad_classes(
            [patch.get("target_class")], md_dataset, "modeldiff.counterfactual.patch.target_class"
        )


# -- references -------------------------------------------------------------------------------


def _references(config: dict[str, Any]) -> Iterable[str]:
    """With ``on_insufficient_reference: error``, every setting of zoo models in the distance
    tables needs ``calibration.min_families`` independent families (here: zoo models of the
    setting's profiles; derived models join their root's family). Settings of class subsets are
    checked by the stage itself, which knows the derived models' classes."""
    from ..distances.plan import distance_models
    from ..distances.reference import Setting, Side
    from ..ids import ZooId, parse_model_id

    settings = config.get("distances") or {}
    if settings.get("on_insufficient_reference", "error") != "error":
        return
    if not settings.get("methods"):
        return
    need = int((settings.get("calibration") or {}).get("min_families", 5))
    catalog = _catalog(config)
    zoo = [m for m in map(parse_model_id, distance_models(config, catalog)) if isinstance(m, ZooId)]
    members: dict[tuple[str, Side], set[str]] = {}
    for model in zoo:
        members.setdefault((model.dataset, Side(model.arch, model.algorithm)), set()).add(
            str(model)
        )
    for (dataset_a, side_a), (dataset_b, side_b) in itertools.combinations_with_replacement(
        sorted(members, key=str), 2
    ):
        if dataset_a != dataset_b:
            continue
        families = members[(dataset_a, side_a)] | members[(dataset_b, side_b)]
        if len(families) < need:
            key = Setting.of(dataset_a, side_a, side_b).key
            yield (
                f"distances: the reference of setting {key} would rest on {len(families)} "
                f"independent famil{'y' if len(families) == 1 else 'ies'} of zoo models, fewer "
                f"than distances.calibration.min_families ({need}): add zoo.seeds or "
                "distances.reference_models, lower min_families, or set "
                "distances.on_insufficient_reference: warn"
            )
