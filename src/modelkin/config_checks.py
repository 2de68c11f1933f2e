"""Cross-field checks of a validated configuration: what can be wrong before any job runs.

The schema (:func:`modelkin.config.validate_config`) checks each key on its own; these checks
compare keys with each other and with the registries, so that ``snakemake -n`` fails at once
with one line per problem instead of a job failing hours later:

- every model id of every config list goes through :meth:`ModelCatalog.resolve` (no ``..``, no
  absolute path, no seed outside ``zoo.seeds``, no algorithm the zoo does not train), and task
  donors name defined algorithms;
- algorithms named anywhere are defined in ``training.algorithms``; architectures exist;
- layer names exist in the named architectures (a torch-free table: :mod:`modelkin.models.names`);
- ``on_insufficient_reference: error`` has enough independent zoo pairs for every setting the
  distance tables will compare;
- ``device: cuda`` only where CUDA exists;
- image counts within the data set's split; class indices below its number of classes;
- each stage's own planning (similarity, ModelDiff, stitching, concordance, unlearning,
  lineage);
- ``results`` and ``data_root`` are directories (or do not exist yet).

Torch-free: the workflow calls :func:`check_config` while Snakemake parses it.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .config import ConfigError, problems_message
from .errors import ModelkinError


def check_config(
    config: dict[str, Any], *, source: str | None = None, check_device: bool = True
) -> None:
    """:class:`ConfigError` listing every problem of a validated ``config`` (none: returns).

    ``check_device``: whether ``device: cuda`` must find CUDA on this machine (False where jobs run
    elsewhere, e.g. submitted to a cluster).
    """
    problems = config_problems(config, check_device=check_device)
    if problems:
        raise ConfigError(problems_message(problems, source))


def config_problems(config: dict[str, Any], *, check_device: bool = True) -> list[str]:
    """One line per problem of a validated ``config``, in config order."""
    checks: list[Callable[[dict[str, Any]], Iterable[str]]] = [
        _paths,
        _algorithms,
        _model_ids,
        _layers,
        _sizes_and_classes,
        _references,
        _plans,
    ]
    if check_device:
        checks.insert(1, _device)
    problems: list[str] = []
    catalog_error = _catalog_error(config)
    if catalog_error:
        # Without a catalog the other checks cannot run: say what breaks it, by config key where
        # a check knows one, else in the catalog's own words.
        found = [*_paths(config), *_parent_entries(config), *_algorithms(config)]
        return found or [catalog_error]
    for check in checks:
        try:
            found = list(check(config))
        except ModelkinError as err:
            found = [str(err)]
        # A stage's planning may repeat, without the config key, what a check already said.
        problems.extend(p for p in found if not any(_said(p, q) for q in problems))
    return list(dict.fromkeys(problems))


def _said(new: str, old: str) -> bool:
    """Whether problem ``old`` already says ``new`` (perhaps with another key in front)."""
    return new in old or new.split(": ", 1)[-1] in old


# ---------------------------------------------------------------------------------------------


def _catalog(config: dict[str, Any]):
    from .catalog import ModelCatalog

    return ModelCatalog(config)


def _catalog_error(config: dict[str, Any]) -> str | None:
    try:
        _catalog(config)
    except ModelkinError as err:
        return str(err)
    return None


def _paths(config: dict[str, Any]) -> Iterable[str]:
    for key in ("results", "data_root"):
        path = Path(str(config.get(key, "")))
        if path.exists() and not path.is_dir():
            yield f"{key}: {path} is a file, not a directory; set {key} to a directory"


def cuda_visible() -> tuple[bool, str]:
    """Whether this machine shows a CUDA GPU, without importing torch; and why not."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return False, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        return True, ""
    if Path("/dev/kfd").exists():  # ROCm builds of torch answer to "cuda" too
        return True, ""
    return False, "this machine has no NVIDIA driver (/proc/driver/nvidia/version, nvidia-smi)"


def _device(config: dict[str, Any]) -> Iterable[str]:
    if config.get("device") == "cuda":
        ok, why = cuda_visible()
        if not ok:
            yield f"device: cuda, but {why}; set device: auto (CUDA when there is one) or cpu"


def _algorithms(config: dict[str, Any]) -> Iterable[str]:
    from .datasets import DATASETS
    from .models.registry import ARCHITECTURES

    defined = list((config.get("training") or {}).get("algorithms") or {})
    zoo = config.get("zoo") or {}
    for i, algorithm in enumerate(zoo.get("algorithms") or []):
        if algorithm not in defined:
            yield (
                f"zoo.algorithms[{i}]: {algorithm!r} is not defined in training.algorithms "
                f"(defined: {', '.join(defined)}); define it there or remove it"
            )
    tasks = list((config.get("stitching") or {}).get("tasks") or {})
    for i, override in enumerate((config.get("training") or {}).get("overrides") or []):
        for key, known in (
            ("algorithm", defined),
            ("arch", list(ARCHITECTURES)),
            ("dataset", [*DATASETS, *tasks]),
        ):
            if key in override and override[key] not in known:
                yield (
                    f"training.overrides[{i}].{key}: {override[key]!r} matches no model "
                    f"(known: {', '.join(known)}); the override would change nothing"
                )
    modeldiff = config.get("modeldiff") or {}
    if modeldiff.get("arch") is not None and modeldiff["arch"] not in ARCHITECTURES:
        yield (
            f"modeldiff.arch: {modeldiff['arch']!r} is not an architecture "
            f"(allowed: {', '.join(ARCHITECTURES)})"
        )
    lds = (modeldiff.get("lds") or {}).get("algorithm")
    roles = [modeldiff.get("algorithm_a"), modeldiff.get("algorithm_b")]
    if lds is not None and lds not in roles:
        yield (
            f"modeldiff.lds.algorithm: {lds!r} is neither algorithm_a nor algorithm_b "
            f"({', '.join(map(str, roles))})"
        )
    gradfield = config.get("gradfield") or {}
    if (
        "gradfield" in _signature_methods(config)
        and not gradfield.get("selection_models")
        and gradfield.get("selection_algorithm", "standard") not in (zoo.get("algorithms") or [])
    ):
        yield (
            f"gradfield.selection_algorithm: {gradfield.get('selection_algorithm', 'standard')!r} "
            f"is not in zoo.algorithms ({', '.join(zoo.get('algorithms') or [])}); its models "
            "select ModelGiF's reference points: name a zoo algorithm or list "
            "gradfield.selection_models"
        )


def _signature_methods(config: dict[str, Any]) -> list[str]:
    """The signature methods some stage of this configuration computes."""
    from .signatures.registry import METHODS

    used = set((config.get("distances") or {}).get("methods") or [])
    used |= {m for m in METHODS if (config.get(m) or {}).get("build_for_zoo")}
    concordance = config.get("concordance") or {}
    used |= {m for m in (concordance.get("methods") or []) if m in METHODS}
    return [m for m in METHODS if m in used]


# -- model ids --------------------------------------------------------------------------------


def _is_path(ref: Any) -> bool:
    return isinstance(ref, str) and ref.endswith(".safetensors")


def _model_ids(config: dict[str, Any]) -> Iterable[str]:
    """Every model id of every config list, resolved: one problem per bad id."""
    from .derive.plan import resolve_parents
    from .ids import ModelIdError, ZooId, parse_model_id

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
                try:
                    model = parse_model_id(ref)
                except ModelIdError as err:
                    problems.append(f"{where}: {err}")
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
    from .derive.plan import resolve_parents

    for where, entries in _parent_lists(config):
        for i, entry in enumerate(entries):
            try:
                resolve_parents([entry], config)
            except ModelkinError as err:
                yield f"{where}[{i}]: {err}"


# -- layers -----------------------------------------------------------------------------------


def _arch_and_dataset(config: dict[str, Any], ref: str) -> tuple[str, str] | None:
    """(architecture, data set) of a model reference, without torch; None when unknown."""
    from .ids import ModelIdError, ZooId, parse_model_id

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
    from .models.names import known_layers

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
    from .ids import ModelIdError

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
    from .concordance import plan_concordance
    from .distances.plan import distance_models

    catalog = _catalog(config)
    try:
        plan = plan_concordance(config, catalog, distance_models(config, catalog))
    except ModelkinError:
        return []  # _plans reports it
    return list(plan.models) if plan else []


# -- sizes and classes ------------------------------------------------------------------------


def _sizes_and_classes(config: dict[str, Any]) -> Iterable[str]:
    from .datasets import DATASETS

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
        from .similarity.pairs import plan_pairs

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
    from .distances.plan import distance_models
    from .distances.reference import Setting, Side
    from .ids import ZooId, parse_model_id

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


# -- the stages' own planning -----------------------------------------------------------------


def _plans(config: dict[str, Any]) -> Iterable[str]:
    """The errors each stage's planning raises (one per stage), so that all show at once."""
    from .distances.plan import distance_models
    from .modeldiff.plan import ModelDiffPlan
    from .similarity.pairs import plan_pairs

    catalog = _catalog(config)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("similarity", lambda: plan_pairs(config)),
        ("modeldiff", lambda: ModelDiffPlan.from_config(config)),
        ("stitching", lambda: _stitching_plan(config)),
        ("unlearning", lambda: _unlearning_plan(config, catalog)),
        ("lineage", lambda: _lineage_plan(config, catalog)),
    ]
    try:
        compared = distance_models(config, catalog)
    except ModelkinError:
        compared = None  # _model_ids reports the bad extra model
    if compared is not None:
        from .concordance import plan_concordance

        steps.append(("concordance", lambda: plan_concordance(config, catalog, compared)))
    for _, step in steps:
        try:
            step()
        except ModelkinError as err:
            yield str(err)


def _unlearning_plan(config: dict[str, Any], catalog: Any) -> None:
    from .unlearning.plan import unlearning_plan

    unlearning_plan(config, catalog)


def _lineage_plan(config: dict[str, Any], catalog: Any) -> None:
    from .kinship.plan import lineage_plan

    lineage_plan(config, catalog)


def _stitching_plan(config: dict[str, Any]) -> None:
    """The stitching section's own checks (tasks, presets, options), without planning ``layers:
    all`` (which builds models)."""
    from .stitching.plan import experiment_options, named_tasks
    from .stitching.tasks import parse_task

    section = config.get("stitching") or {}
    for name, experiment in (section.get("experiments") or {}).items():
        try:
            experiment_options(config, experiment)
            for task in [experiment.get("train_task"), *(experiment.get("eval_tasks") or [])]:
                if task:
                    parse_task(task, named_tasks(config))
        except (ModelkinError, ValueError) as err:
            raise ConfigError(f"stitching.experiments.{name}: {err}") from None
