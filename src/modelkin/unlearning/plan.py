"""What the ``unlearning`` section plans: the original model, the unlearning methods, the probes,
the independent models, the files and what each job is given (torch-free).

Paths, under ``{results}/unlearning/``:

- ``{method}.csv`` and ``{method}.json``: one unlearning method's trajectory (a row per epoch) and
  the record of what was measured (rule ``unlearning_trajectory``);
- ``independent.csv`` and ``independent.json``: the same measurements of independent zoo models
  (rule ``unlearning_independent``), the distance an unrelated model has;
- ``probes/{signature method}.h5``: the probe of each signature method (rule ``unlearning_probe``):
  the first training images of every class (``probe: all``) or of the forgotten class only
  (``probe: forget_class``), without ModelGiF's selection of points by independent models (which
  would pick the points on which the very models this stage compares with differ most);
- ``trajectory.csv`` and ``trajectory.png``: every row together, and the figure (rule
  ``unlearning_table``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..datasets import get_dataset_info
from ..derive.kinds import get_kind
from ..errors import InputError
from ..ids import DerivedId, ZooId, parse_model_id
from ..signatures.plan import signature_job
from ..signatures.registry import get_method

if TYPE_CHECKING:
    from ..catalog import ModelCatalog

log = logging.getLogger(__name__)

# Unlearning method -> the derivation kind that makes it (modelkin.derive.kinds).
METHOD_KINDS = {
    "relabel": "unlearn_relabel",
    "ascent": "unlearn_ascent",
    "retrain": "retrain_without_class",
}
INDEPENDENT = "independent"
PROBES = ("all", "forget_class")
# The signature methods whose probes this stage makes (of every class or of one).
CLASS_PROBES = ("zest", "gradfield")


class UnlearningError(InputError):
    """An ``unlearning`` section that cannot be planned."""


@dataclass(frozen=True)
class UnlearningPlan:
    """One unlearning verification: the original model, what unlearns it, and how it is measured."""

    results: str
    parent: str  # the original model's id
    dataset: str
    forget_class: int
    epochs: int
    lr_factor: float | None  # relabel and ascent (None: the kinds' default)
    methods: tuple[str, ...]
    signature_methods: tuple[str, ...]
    probe: str  # "all" or "forget_class": the images the probes are made of
    independent: tuple[str, ...]  # zoo models with no shared lineage or seed
    seed: int
    device: str
    signature_settings: dict[str, dict[str, Any]]  # per signature method: signature_job's settings
    probe_settings: dict[str, dict[str, Any]]  # per signature method: its probe's settings

    @property
    def directory(self) -> str:
        return f"{self.results}/unlearning"

    def trajectory_path(self, method: str) -> str:
        return f"{self.directory}/{method}.csv"

    def record_path(self, method: str) -> str:
        return f"{self.directory}/{method}.json"

    @property
    def table_path(self) -> str:
        return f"{self.directory}/trajectory.csv"

    @property
    def plot_path(self) -> str:
        return f"{self.directory}/trajectory.png"

    @property
    def parts(self) -> list[str]:
        """The unlearning methods, then ``independent`` when there are independent models."""
        return [*self.methods, *([INDEPENDENT] if self.independent else [])]

    def probe_file(self, method: str) -> str | None:
        """The probe a signature method's signatures are computed on (None: it reads none)."""
        if get_method(method).probe_kind is None:
            return None
        return f"{self.directory}/probes/{method}.h5"

    @property
    def probe_files(self) -> dict[str, str]:
        files = {m: self.probe_file(m) for m in self.signature_methods}
        return {m: path for m, path in files.items() if path is not None}

    def student_id(self, method: str) -> str:
        """The id the unlearned model would have as a derived model (its torch seeds come from
        it, :func:`modelkin.derive.kinds.student_seeds`)."""
        kind = METHOD_KINDS[method]
        return str(DerivedId(self.dataset, kind, parse_model_id(self.parent), self.seed))

    def derivation_settings(self, method: str) -> dict[str, Any]:
        """The ``derived``-style settings of an unlearning method (its kind's defaults apply)."""
        settings: dict[str, Any] = {
            "kind": METHOD_KINDS[method],
            "forget_class": self.forget_class,
            "recipe": {"epochs": self.epochs},
        }
        if self.lr_factor is not None and get_kind(METHOD_KINDS[method]).lr_factor is not None:
            settings["lr_factor"] = self.lr_factor
        return settings

    def trajectory_job(self, method: str) -> dict[str, Any]:
        """What the ``unlearning_trajectory`` rule passes to
        :func:`modelkin.unlearning.trajectory.trajectory_files`."""
        return {
            "method": method,
            "settings": self.derivation_settings(method),
            "model_id": self.student_id(method),
            **self._measure_job(),
        }

    def independent_job(self) -> dict[str, Any]:
        """What the ``unlearning_independent`` rule passes to
        :func:`modelkin.unlearning.trajectory.independent_files`."""
        return {"models": list(self.independent), **self._measure_job()}

    def _measure_job(self) -> dict[str, Any]:
        return {
            "parent_id": self.parent,
            "forget_class": self.forget_class,
            "signature_methods": list(self.signature_methods),
            "signature_settings": self.signature_settings,
            "probe": self.probe,
            "probes": self.probe_files,
            "device": self.device,
        }


def unlearning_plan(config: dict[str, Any], catalog: ModelCatalog) -> UnlearningPlan | None:
    """The plan of the ``unlearning`` section, or None when it is off (``enabled: false``, or
    ``auto`` without a parent or without independent models to compare with).

    The original is ``unlearning.parent``, else the first of ``derived.parents``. Bad settings
    (a parent the config does not plan, a class the data set lacks) are errors either way."""
    section = config.get("unlearning") or {}
    enabled = section.get("enabled", "auto")
    if enabled is False:
        return None
    strict = enabled is True

    def skip(reason: str) -> None:
        if strict:
            raise UnlearningError(
                f"{reason}; or set unlearning.enabled: auto (skip quietly) or false"
            )
        log.info("unlearning stage skipped: %s", reason)

    if section.get("parent"):
        parent = catalog.resolve(section["parent"], "unlearning.parent")
    elif catalog.derived_parents:
        parent = catalog.derived_parents[0]
    else:
        skip("unlearning needs an original model: set unlearning.parent or derived.parents")
        return None
    dataset, arch, algorithm = catalog.profile(parent)
    info = get_dataset_info(dataset)
    forget_class = int(section["forget_class"])
    if not 0 <= forget_class < info.num_classes:
        raise UnlearningError(
            f"unlearning.forget_class: class {forget_class} does not exist in {dataset}; choose "
            f"one of 0..{info.num_classes - 1}"
        )
    methods = tuple(dict.fromkeys(section["methods"]))
    for method in methods:
        if method not in METHOD_KINDS:
            raise UnlearningError(
                f"unlearning.methods: unknown method {method!r}; choose from "
                f"{', '.join(METHOD_KINDS)}"
            )
        get_kind(METHOD_KINDS[method])
    signature_methods = tuple(dict.fromkeys(section["signature_methods"]))
    probe = section["probe"]
    if probe not in PROBES:
        raise UnlearningError(f"unlearning.probe: {probe!r} is not one of {', '.join(PROBES)}")
    settings: dict[str, dict[str, Any]] = {}
    probes: dict[str, dict[str, Any]] = {}
    for method in signature_methods:
        entry = get_method(method)
        job = signature_job(config, method, parent)
        settings[method] = {**job["settings"], "chunk_size": job["chunk_size"]}
        if entry.probe_kind is not None:
            if method not in CLASS_PROBES:
                raise UnlearningError(
                    f"the unlearning stage makes probes for {', '.join(CLASS_PROBES)} only, not "
                    f"{method}; leave {method} out of unlearning.signature_methods"
                )
            classes = [forget_class] if probe == "forget_class" else None
            probes[method] = unlearning_probe_settings(config, method, classes)
        if "target" in entry.signature_keys:
            # ModelGiF's unlearning verification: the true label, the same class for every model
            # (an unlearned model's own prediction on the forgotten class is another class)
            settings[method]["target"] = "label"
    independent = independent_models(catalog, parent, (dataset, arch, algorithm))
    if section["independent"] and not independent:
        skip(
            f"unlearning.independent needs zoo models of {dataset}/{arch}/{algorithm} that share "
            f"no seed with {parent}: add zoo.seeds, or set unlearning.independent: false"
        )
        return None
    return UnlearningPlan(
        results=str(config["results"]),
        parent=parent,
        dataset=dataset,
        forget_class=forget_class,
        epochs=int(section["epochs"]),
        lr_factor=None if section["lr_factor"] is None else float(section["lr_factor"]),
        methods=methods,
        signature_methods=signature_methods,
        probe=probe,
        independent=tuple(independent) if section["independent"] else (),
        seed=int(section["seed"]),
        device=str(config.get("device", "auto")),
        signature_settings=settings,
        probe_settings=probes,
    )


def unlearning_probe_settings(
    config: dict[str, Any], method: str, classes: list[int] | None
) -> dict[str, Any]:
    """The settings of a probe of the first training images of ``classes`` (None: every class):
    Zest's probe settings, or ModelGiF's first ``reference_points`` images (no selection)."""
    section = dict(config.get(method) or {})
    if method == "zest":
        keys = get_method(method).probe_keys
        return {**{k: section[k] for k in keys if k in section}, "classes": classes}
    return {
        "split": section["candidates"]["split"],
        "n_points": int(section["reference_points"]),
        "classes": classes,
    }


def independent_models(
    catalog: ModelCatalog, parent: str, profile: tuple[str, str, str]
) -> list[str]:
    """Zoo models of the parent's setting that share no init or data seed with its root."""
    root = parse_model_id(parent)
    while isinstance(root, DerivedId):
        root = root.parent
    seeds = set(root.seeds) if isinstance(root, ZooId) else set()
    out = []
    for model in catalog.zoo_of(*profile):
        zoo = parse_model_id(model)
        if isinstance(zoo, ZooId) and not seeds & {zoo.init_seed, zoo.data_seed}:
            out.append(model)
    return out
