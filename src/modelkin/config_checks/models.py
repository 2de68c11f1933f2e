"""Model ids in every config list, derivation parents, and layer names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ModelkinError
from ._common import _catalog

# -- model ids --------------------------------------------------------------------------------


def _is_path(ref: Any) -> bool:
    return isinstance(ref, str) and ref.endswith(".safetensors")


def _model_ids(config: dict[str, Any]) -> Iterable[str]:
    """Every model id of every config list, resolved: one problem per bad id."""
    from ..derive.plan import resolve_parents
    from ..ids import ModelIdError, ZooId, parse_model_id
    from ..questions.plan import model_reference

    catalog = _catalog(config)
    defined = (config.get("training") or {}).get("algorithms") or {}
    tasks = (config.get("stitching") or {}).get("tasks") or {}

    def resolve(ref: Any, where: str) -> str | None:
        try:
            return catalog.resolve(ref, where)
        except ModelkinError as err:
            problems.append(str(err))
            return None

    problems: list[str] = list(_parent_entries(config))
    for i, ref in enumerate((config.get("distances") or {}).get("extra_models") or []):
        resolve(ref, f"distances.extra_models[{i}]")
    for i, ref in enumerate((config.get("gradfield") or {}).get("selection_models") or []):
        resolve(ref, f"gradfield.selection_models[{i}]")
    for where, entries in _parent_lists(config):
        for i, entry in enumerate(entries):
            try:
                parents = resolve_parents([entry], config)
            except ModelkinError:
                continue  # _parent_entries said why
            for parent in parents:
                if isinstance(parse_model_id(parent), ZooId):
                    resolve(parent, f"{where}[{i}]")
    concordance = config.get("concordance") or {}
    if concordance.get("enabled", "auto") is not False:
        if isinstance(concordance.get("models"), list):
            for i, ref in enumerate(concordance["models"]):
                resolve(ref, f"concordance.models[{i}]")
        if concordance.get("parent"):
            resolve(concordance["parent"], "concordance.parent")
    unlearning = config.get("unlearning") or {}
    if unlearning.get("enabled", "auto") is not False and unlearning.get("parent"):
        resolve(unlearning["parent"], "unlearning.parent")
    for i, entry in enumerate((config.get("similarity") or {}).get("pairs") or []):
        refs = (
            [entry.get("a"), entry.get("b")]
            if isinstance(entry, dict)
            else entry
            if isinstance(entry, list)
            else []
        )
        for side, ref in zip("ab", refs, strict=False):
            resolve(ref, f"similarity.pairs[{i}] ({side})")
    for name, experiment in ((config.get("stitching") or {}).get("experiments") or {}).items():
        for i, pair in enumerate(experiment.get("pairs") or []):
            for number, ref in enumerate(pair, start=1):
                where = f"stitching.experiments.{name}.pairs[{i}] (model {number})"
                if _is_path(ref):
                    continue
                try:  # a name of the models section is its external id
                    model = parse_model_id(model_reference(ref, config, where))
                except ModelIdError as err:
                    problems.append(str(err))
                    continue
                if isinstance(model, ZooId) and model.dataset in tasks:
                    # A task donor: the stitching stage trains it with the zoo's recipe.
                    if model.algorithm not in defined:
                        problems.append(
                            f"{where}: task donor {ref} names algorithm {model.algorithm!r}, "
                            f"which training.algorithms does not define "
                            f"(defined: {', '.join(defined)})"
                        )
                    continue
                resolve(ref, where)
    return problems


def _parent_lists(config: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    derived = config.get("derived") or {}
    lists = [("derived.parents", list(derived.get("parents") or []))]
    for name, raw in (derived.get("derivations") or {}).items():
        lists.append((f"derived.derivations.{name}.parents", list(raw.get("parents") or [])))
    return lists


def _parent_entries(config: dict[str, Any]) -> Iterable[str]:
    """Parent entries of the derived section that name no model (malformed ids, seed clashes)."""
    from ..derive.plan import resolve_parents

    for where, entries in _parent_lists(config):
        for i, entry in enumerate(entries):
            try:
                resolve_parents([entry], config)
            except ModelkinError as err:
                yield f"{where}[{i}]: {err}"


# -- layers -----------------------------------------------------------------------------------


def _arch_and_dataset(config: dict[str, Any], ref: str) -> tuple[str, str] | None:
    """(architecture, data set) of a model reference, without torch; None when unknown. Your own
    models (``external/NAME`` or a name of the models section) are None: their layers are module
    paths of a network only torch can build, so the job checks them (listing the valid ones)."""
    from ..ids import ModelIdError, ZooId, parse_model_id

    if _is_path(ref):
        return None
    try:
        model = parse_model_id(ref)
    except ModelIdError:
        return None
    catalog = _catalog(config)
    if str(model) in catalog.derived:
        planned = catalog.derived[str(model)]
        return planned.arch, planned.dataset
    if isinstance(model, ZooId):
        tasks = (config.get("stitching") or {}).get("tasks") or {}
        dataset = tasks[model.dataset]["dataset"] if model.dataset in tasks else model.dataset
        return model.arch, dataset
    return None


def _unknown_layers(names: Iterable[str], arch: str, dataset: str, where: str) -> Iterable[str]:
    from ..models.names import known_layers

    valid = known_layers(arch, dataset)
    if valid is None:
        return
    missing = [n for n in names if n not in valid]
    if missing:
        yield (
            f"{where}: {arch} has no layer {', '.join(map(repr, missing))}; its layers on "
            f"{dataset}: {', '.join(valid)} (`modelkin layers {arch} --dataset {dataset}`)"
        )


def _layer_spec(spec: Any, arch: str) -> Any:
    """A per-architecture mapping ``{ARCH: selection, default: selection}`` -> ``arch``'s."""
    if isinstance(spec, dict):
        return spec.get(arch, spec.get("default"))
    return spec


def _layers(config: dict[str, Any]) -> Iterable[str]:
    from ..ids import ModelIdError

    similarity = config.get("similarity") or {}
    default_layers = similarity.get("layers", "relu")
    for i, entry in enumerate(similarity.get("pairs") or []):
        if isinstance(entry, list) and len(entry) == 2:
            entry = {"a": entry[0], "b": entry[1]}
        if not isinstance(entry, dict):
            continue
        for side in ("a", "b"):
            spec = entry.get(f"layers_{side}", entry.get("layers", default_layers))
            try:
                found = _arch_and_dataset(config, entry[side])
            except ModelIdError:
                continue
            if found is None:
                continue
            arch, dataset = found
            chosen = _layer_spec(spec, arch)
            where = f"similarity.pairs[{i}] ({side}: {entry[side]})"
            if chosen is None:
                yield (
                    f"{where}: the layer mapping has no entry for {arch} and no 'default' "
                    f"(entries: {', '.join(map(str, spec))})"
                )
            elif isinstance(chosen, list):
                yield from _unknown_layers(chosen, arch, dataset, where)
    for name, experiment in ((config.get("stitching") or {}).get("experiments") or {}).items():
        spec = experiment.get("layers", "all")
        if not isinstance(spec, list):
            continue
        for pair in experiment.get("pairs") or []:
            if len(pair) != 2:
                continue
            for index, ref in enumerate(pair):
                found = _arch_and_dataset(config, ref)
                if found is None:
                    continue
                names = [
                    (e if isinstance(e, str) else e[index])
                    for e in spec
                    if isinstance(e, (str, list))
                ]
                where = f"stitching.experiments.{name}.layers (model {index + 1}: {ref})"
                yield from _unknown_layers(names, *found, where)
    concordance = config.get("concordance") or {}
    if concordance.get("enabled", "auto") is not False:
        layer = concordance.get("layer", "relu3")
        for ref in _concordance_models(config):
            found = _arch_and_dataset(config, ref)
            if found is None:
                continue
            arch, dataset = found
            chosen = _layer_spec(layer, arch)
            if chosen is None:
                yield (
                    f"concordance.layer: no entry for {arch} (of {ref}) and no 'default' "
                    f"(entries: {', '.join(map(str, layer))})"
                )
            else:
                yield from _unknown_layers([chosen], arch, dataset, f"concordance.layer ({ref})")


def _concordance_models(config: dict[str, Any]) -> list[str]:
    """The models of the concordance (as the stage plans them), or [] when it is off."""
    from ..concordance import plan_concordance
    from ..distances.plan import distance_models

    catalog = _catalog(config)
    try:
        plan = plan_concordance(config, catalog, distance_models(config, catalog))
    except ModelkinError:
        return []  # _plans reports it
    return list(plan.models) if plan else []
