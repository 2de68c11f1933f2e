"""The runs that the workflow's ``stitching`` config section asks for.

Model references in experiments are zoo ids (``digits/lenet/standard/i0-d0``),
derived model ids (``derived/...``), ids of task donors whose first part
names a configured task (``digits_inverted/lenet/standard/i1-d1``, trained
by the stitching stage itself), your own models (``external/NAME`` or just
``NAME``, a name of the ``models`` section, imported by the ``import_model``
rule), or checkpoint paths (``*.safetensors``).

An external model names its own layers (``layer2.1``: module paths, checked by
the job, which lists the valid ones), so ``layers: all`` (every common cut point
of two zoo architectures) does not take one, and both models of a pair with an
external model must work on the same data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ids
from ..errors import InputError
from ..ids import DerivedId, ExternalId, ModelIdError, ZooId, parse_model_id
from .options import PRESETS, StitchOptions
from .tasks import Task, parse_task


class PlanError(InputError):
    """A stitching experiment the configuration cannot describe."""


@dataclass(frozen=True)
class PlannedRun:
    experiment: str
    pair: str  # file-name slug of the model pair
    layers: str  # file-name slug of the layer pair
    model1: str
    model2: str
    layer1: str
    layer2: str
    options: dict[str, Any] = field(hash=False)
    train_task: str | None = None
    eval_tasks: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.pair}/{self.layers}"


@dataclass(frozen=True)
class TaskDonor:
    model_id: str
    task: str
    arch: str
    algorithm: str
    init_seed: int
    data_seed: int


def _section(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("stitching") or {}


def named_tasks(config: dict[str, Any]) -> dict[str, Any]:
    return dict(_section(config).get("tasks") or {})


def _is_path(ref: str) -> bool:
    return ref.endswith(".safetensors")


def _model_id(ref: str, config: dict[str, Any] | None = None) -> ids.ModelId:
    """The id a (non-path) model reference names; PlanError naming the accepted forms if none."""
    try:
        return parse_model_id(ref)
    except ModelIdError as err:
        names = ", ".join(map(str, (config or {}).get("models") or {})) or "none"
        raise PlanError(
            f"model {ref!r} is neither a zoo id (DATASET/ARCH/ALGORITHM/iINIT-dDATA), a derived "
            "id, a task donor (TASK/ARCH/ALGORITHM/iINIT-dDATA with TASK in stitching.tasks), a "
            f"name of the models section ({names}) nor a .safetensors path ({err})"
        ) from None


def model_reference(ref: str, config: dict[str, Any]) -> str:
    """A model reference as runs keep it: a name of the ``models`` section becomes its id
    (``victim`` -> ``external/victim``); anything else as written."""
    if isinstance(ref, str) and not _is_path(ref) and ref in (config.get("models") or {}):
        return str(ExternalId(ref))
    return ref


def is_external(ref: str) -> bool:
    """Whether a (normalised) model reference is one of your own models (``external/NAME``)."""
    if _is_path(ref):
        return False
    try:
        return isinstance(parse_model_id(ref), ExternalId)
    except ModelIdError:
        return False


def _donor_id(ref: str, config: dict[str, Any]) -> ZooId | None:
    """The id of a task donor (a zoo-style id whose data set is a configured task), else None."""
    if _is_path(ref):
        return None
    try:
        model = parse_model_id(ref)
    except ModelIdError:
        return None
    if isinstance(model, ZooId) and model.dataset in named_tasks(config):
        return model
    return None


def slug(ref: str) -> str:
    """A model reference as one file-name component."""
    if _is_path(ref):
        return Path(ref).stem
    return ids.slug(_model_id(ref))


def pair_slug(ref1: str, ref2: str) -> str:
    """The file-name component of a model pair: ``SLUG1~SLUG2``."""
    if _is_path(ref1) or _is_path(ref2):
        return f"{slug(ref1)}~{slug(ref2)}"
    return ids.pair_slug(_model_id(ref1), _model_id(ref2))


def checkpoint_for(ref: str, config: dict[str, Any]) -> str:
    """Where the checkpoint of a model reference lives (or will be written by the workflow)."""
    results = config["results"]
    if _is_path(ref):
        return ref
    if _donor_id(ref, config) is not None:
        return ids.model_path(ref, results, "stitching/donors", ".safetensors")
    return ids.checkpoint_path(ref, results)


def task_donor(ref: str, config: dict[str, Any]) -> TaskDonor | None:
    """The donor the stitching stage trains itself for ``ref``, or None for zoo, derived and path
    models."""
    model = _donor_id(ref, config)
    if model is None:
        return None
    return TaskDonor(
        ref, model.dataset, model.arch, model.algorithm, model.init_seed, model.data_seed
    )


def task_donors(config: dict[str, Any]) -> list[TaskDonor]:
    out: dict[str, TaskDonor] = {}
    for run in planned_runs(config):
        for ref in (run.model1, run.model2):
            donor = task_donor(ref, config)
            if donor is not None:
                out[donor.model_id] = donor
    return list(out.values())


def profile(ref: str, config: dict[str, Any]) -> tuple[str, str]:
    """(data set, architecture) of a model reference, without loading weights."""
    if _is_path(ref):
        from ..checkpoint import read_metadata

        if not Path(ref).exists():
            raise PlanError(f"checkpoint {ref} (in stitching.experiments) does not exist")
        meta = read_metadata(ref)
        return meta["dataset"], meta["arch"]
    model = _model_id(ref, config)
    if isinstance(model, ExternalId):
        from ..questions.plan import external_models

        spec = external_models(config).get(str(model))
        if spec is None:
            names = ", ".join(map(str, config.get("models") or {})) or "none"
            raise PlanError(
                f"{ref} is not a model of the models section (its names: {names}); add it there "
                "with its source, weights and data set"
            )
        return spec.dataset, spec.source
    if isinstance(model, DerivedId):
        from ..catalog import ModelCatalog

        planned = ModelCatalog(config).derived
        if ref not in planned:
            raise PlanError(
                f"{ref} is not among the derived models that the config plans (derived section)"
            )
        return planned[ref].dataset, planned[ref].arch
    if not isinstance(model, ZooId):
        raise PlanError(f"model {ref!r} is not a model stitching can take")
    tasks = named_tasks(config)
    dataset = tasks[model.dataset]["dataset"] if model.dataset in tasks else model.dataset
    return dataset, model.arch


def dataset_of_task(name: str, config: dict[str, Any]) -> str:
    return parse_task(name, named_tasks(config)).dataset


def default_train_task(ref: str, config: dict[str, Any]) -> str:
    """Model 1's own task: a configured task for task donors, else the data set."""
    donor = _donor_id(ref, config)
    if donor is not None:
        return donor.dataset
    return profile(ref, config)[0]


def check_pair(
    ref1: str, ref2: str, spec: Any, config: dict[str, Any], where: str, *, references: bool = True
) -> None:
    """What can be wrong with one pair of an experiment before any model is built: references
    that name no model (unless ``references`` is False), ``layers: all`` with an external model,
    external models of two data sets (``ref1``/``ref2`` normalised by :func:`model_reference`).
    Torch-free."""
    try:
        (dataset1, _), (dataset2, _) = profile(ref1, config), profile(ref2, config)
    except PlanError as err:
        if not references:
            return
        raise PlanError(f"{where}: {err}") from None
    external = [ref for ref in (ref1, ref2) if is_external(ref)]
    if not external:
        return
    if spec == "all":
        raise PlanError(
            f"{where}: layers: all (every common cut point) needs two zoo architectures, and "
            f"{external[0]} is one of your own models; list the layers to stitch, the same on "
            "both sides or [layer1, layer2] pairs (e.g. layers: [layer2.1]; `modelkin layers "
            "CHECKPOINT` lists a model's layers)"
        )
    if dataset1 != dataset2:
        raise PlanError(
            f"{where}: {ref1} works on {dataset1} and {ref2} on {dataset2}; the stitched network "
            "trains and is evaluated on one data set, so both models must work on the same one "
            "(the models section's dataset:)"
        )


def check_experiments(config: dict[str, Any]) -> None:
    """:func:`check_pair` for every pair of every experiment (the config checks call it; their
    model id check names the references that name no model)."""
    for name, experiment in (_section(config).get("experiments") or {}).items():
        for i, pair in enumerate(experiment.get("pairs") or []):
            if len(pair) == 2:
                ref1, ref2 = (model_reference(ref, config) for ref in pair)
                where = f"stitching.experiments.{name}.pairs[{i}]"
                layers = experiment.get("layers", "all")
                check_pair(ref1, ref2, layers, config, where, references=False)


def _layer_pairs(
    spec: Any, ref1: str, ref2: str, config: dict[str, Any], flatten: bool
) -> list[tuple[str, str]]:
    if spec == "all":
        from ..models import build_model
        from .model import common_stitch_points

        (d1, a1), (d2, a2) = profile(ref1, config), profile(ref2, config)
        pairs = common_stitch_points(build_model(a1, d1), build_model(a2, d2), flatten=flatten)
        if not pairs:
            raise PlanError(
                f"{ref1} and {ref2} have no common cut point with stitchable shapes; list layer "
                "pairs"
            )
        return pairs
    out = []
    for entry in spec:
        if isinstance(entry, str):
            out.append((entry, entry))
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            out.append((str(entry[0]), str(entry[1])))
        else:
            raise PlanError(f"a layer entry is a name or a [layer1, layer2] pair, not {entry!r}")
    return out


def experiment_options(config: dict[str, Any], experiment: dict[str, Any]) -> dict[str, Any]:
    """defaults, then the experiment's preset, then its options; validated."""
    section = _section(config)
    defaults = dict(section.get("defaults") or {})
    preset = experiment.get("preset", defaults.pop("preset", None))
    defaults.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise PlanError(f"unknown stitching preset {preset!r}; presets: {', '.join(PRESETS)}")
    merged = {
        **defaults,
        **(PRESETS[preset] if preset else {}),
        **(experiment.get("options") or {}),
    }
    options = StitchOptions.from_dict(merged)
    options.preset = preset
    return options.to_dict()


def planned_runs(config: dict[str, Any]) -> list[PlannedRun]:
    section = _section(config)
    runs: dict[str, PlannedRun] = {}
    for name, experiment in (section.get("experiments") or {}).items():
        options = experiment_options(config, experiment)
        train_task = experiment.get("train_task")
        eval_tasks = tuple(experiment.get("eval_tasks") or ())
        for task in ([train_task] if train_task else []) + list(eval_tasks):
            parse_task(task, named_tasks(config))  # fail early on a typo
        for i, pair in enumerate(experiment["pairs"]):
            if len(pair) != 2:
                raise PlanError(
                    f"stitching.experiments.{name}.pairs: each entry is [model1, model2], not "
                    f"{pair!r}"
                )
            ref1, ref2 = (model_reference(ref, config) for ref in pair)
            # unknown references, external models on two data sets, ... fail here, before any job
            check_pair(
                ref1,
                ref2,
                experiment.get("layers", "all"),
                config,
                f"stitching.experiments.{name}.pairs[{i}]",
            )
            for layer1, layer2 in _layer_pairs(
                experiment.get("layers", "all"), ref1, ref2, config, options["flatten"]
            ):
                run = PlannedRun(
                    name,
                    pair_slug(ref1, ref2),
                    layer1 if layer1 == layer2 else f"{layer1}~{layer2}",
                    ref1,
                    ref2,
                    layer1,
                    layer2,
                    options,
                    train_task,
                    eval_tasks,
                )
                runs[run.key] = run
    return list(runs.values())


def run_datasets(run: PlannedRun, config: dict[str, Any]) -> list[str]:
    """The data sets whose prepared files a run reads."""
    train = run.train_task or default_train_task(run.model1, config)
    names = [dataset_of_task(t, config) for t in [train, *run.eval_tasks]]
    return list(dict.fromkeys(names))


def run_job(run: PlannedRun, config: dict[str, Any]) -> dict[str, Any]:
    """The settings a run's rule passes to :func:`modelkin.stitching.run.stitch_models`."""
    return {
        "layer1": run.layer1,
        "layer2": run.layer2,
        "options": run.options,
        "train_task": run.train_task,
        "eval_tasks": list(run.eval_tasks),
        "tasks": named_tasks(config),
        "device": config.get("device", "auto"),
        "memory_budget_mb": config.get("memory_budget_mb"),
        "provenance": {
            "experiment": run.experiment,
            "pair": run.pair,
            "models": [run.model1, run.model2],
        },
    }


def task_of(name: str, config: dict[str, Any]) -> Task:
    return parse_task(name, named_tasks(config))
