"""What the workflow's ``modeldiff`` config section plans: the two algorithms, their checkpoints,
every file of the stage and the settings of its jobs.

:class:`ModelDiffPlan` is built once from a validated configuration (``ModelDiffPlan.from_config``),
which raises :class:`~modelkin.config.ConfigError` for a comparison that cannot run; the rules of
``workflow/rules/modeldiff.smk`` take their paths and params from it. No torch, so that planning
the workflow stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, recipe_for
from ..ids import ExternalId, ZooId, checkpoint_path, model_path

ROLES = ("A", "B")
# The two sides of a comparison of the user's own checkpoints (modeldiff.models_a, models_b): the
# names the stage gives its "algorithms" (score files, directions, summary), and the folder that
# stands for the architecture in its paths.
EXTERNAL_ROLES = {"A": "models_a", "B": "models_b"}
EXTERNAL_ARCH = "external"
# What the stage skips for the user's checkpoints, and why (the summary lists it).
EXTERNAL_SKIPPED = {
    "lds": "the LDS retrains models on random subsets of the training data, which needs "
    "modelkin's training recipe and architecture; your own checkpoints have neither, so the LDS "
    "of their TRAK scores is not computed"
}
# Each kind of direction (directions.KINDS) as one name component: the directions file's HDF5
# groups and the image grids' file names. Spelled out here so that planning needs no scikit-learn.
KIND_SLUGS = {"A-minus-B": "A_minus_B", "B-minus-A": "B_minus_A"}
# The TRAK settings that shape a checkpoint's features (out_to_loss is applied when scoring).
FEATURE_SETTINGS = (
    "proj_dim",
    "proj_type",
    "seed",
    "ridge",
    "rescale_inverse",
    "batch_size",
    "max_projection_mib",
    "precision",
)


def seed_pairs(seeds: Iterable[Any]) -> list[tuple[int, int]]:
    """(init, data) seed pairs from ``modeldiff.seeds``: an int s means (s, s), else
    {init, data}."""
    return [(s, s) if isinstance(s, int) else (s["init"], s["data"]) for s in seeds]


def _defined(config: dict[str, Any], algorithm: str) -> bool:
    return algorithm in config["training"]["algorithms"]


def is_external(section: Mapping[str, Any]) -> bool:
    """Whether a ``modeldiff`` section compares the user's own checkpoints (models_a, models_b)."""
    return "models_a" in section or "models_b" in section


def external_sides(config: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """``{"A": ids, "B": ids}`` of ``modeldiff.models_a``/``models_b``: names or ids of the
    ``models`` section, checked (known, on ``modeldiff.dataset``, no repeats);
    :class:`ConfigError` otherwise."""
    from ..questions.plan import external_models

    section = config["modeldiff"]
    specs = external_models(config)
    names = ", ".join(spec.name for spec in specs.values()) or "none"
    sides: dict[str, tuple[str, ...]] = {}
    for role, key in EXTERNAL_ROLES.items():
        entries = section.get(key) or []
        if not entries:
            raise ConfigError(
                f"modeldiff.{key} lists no checkpoints; give at least one model of the models "
                "section per side"
            )
        ids = []
        for entry in entries:
            text = str(entry)
            model_id = text if text.startswith("external/") else f"external/{text}"
            if model_id not in specs:
                raise ConfigError(
                    f"modeldiff.{key}: {text!r} is not a model of the models section (its names: "
                    f"{names}); add it there with its source, weights and data set"
                )
            spec = specs[model_id]
            if spec.dataset != section["dataset"]:
                raise ConfigError(
                    f"modeldiff.{key}: {spec.name} is a model of data set {spec.dataset!r}, not "
                    f"modeldiff.dataset {section['dataset']!r}; ModelDiff attributes both sides' "
                    "predictions to the same training data (set modeldiff.dataset to the data set "
                    "the models were trained on)"
                )
            ids.append(model_id)
        repeated = sorted({m for m in ids if ids.count(m) > 1})
        if repeated:
            raise ConfigError(f"modeldiff.{key} lists {', '.join(repeated)} more than once")
        sides[role] = tuple(ids)
    if set(sides["A"]) == set(sides["B"]):
        raise ConfigError(
            "modeldiff.models_a and models_b are the same checkpoints; ModelDiff compares two sets"
        )
    return sides


def _check(config: dict[str, Any], roles: Mapping[str, str]) -> None:
    """The configuration errors that stop the workflow before any job."""
    section = config["modeldiff"]
    defined = config["training"]["algorithms"]
    for role, algorithm in roles.items():
        if section["run_by_default"] and algorithm not in defined:
            raise ConfigError(
                f"modeldiff.algorithm_{role.lower()} is {algorithm!r}, which training.algorithms "
                f"does not define (defined: {', '.join(defined)}); define it there, or set "
                "modeldiff.run_by_default: false to skip ModelDiff"
            )
    if roles["A"] == roles["B"]:
        raise ConfigError(
            "modeldiff.algorithm_a and algorithm_b are the same algorithm; ModelDiff compares two"
        )


def planted_patch(
    config: dict[str, Any], roles: Mapping[str, str], seeds: Iterable[tuple[int, int]]
) -> dict[str, Any] | None:
    """Algorithm B's planted patch, else A's (None if neither plants one, or if ModelDiff does not
    run by default and an algorithm is undefined), as their recipes for the first seeds give it."""
    section = config["modeldiff"]
    if not section["run_by_default"] and not all(_defined(config, a) for a in roles.values()):
        return None
    init_seed, data_seed = next(iter(seeds))
    for algorithm in (roles["B"], roles["A"]):
        recipe = recipe_for(
            config,
            dataset=section["dataset"],
            arch=section["arch"],
            algorithm=algorithm,
            init_seed=init_seed,
            data_seed=data_seed,
        )
        if recipe.get("planted_patch"):
            return recipe["planted_patch"]
    return None


@dataclass(frozen=True)
class ModelDiffPlan:
    """The ModelDiff stage of one configuration: algorithms A and B, seeds, files, job settings."""

    results: str
    section: dict[str, Any]  # the validated ``modeldiff`` config section
    roles: dict[str, str]  # {"A": algorithm A, "B": algorithm B}
    seeds: tuple[tuple[int, int], ...]  # (init, data) per checkpoint; position = projection index
    planted_patch: dict[str, Any] | None  # B's planted patch, else A's
    device: str
    memory_budget_mb: float | None = None  # None: the schema's default
    # The user's own checkpoints per role (models_a, models_b), ids of the models section; None
    # when the stage trains its checkpoints (algorithm_a, algorithm_b, seeds).
    external: dict[str, tuple[str, ...]] | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelDiffPlan:
        """The plan of a validated configuration; :class:`ConfigError` if it cannot run."""
        section = config["modeldiff"]
        if is_external(section):
            return cls._external(config)
        roles = {role: section[f"algorithm_{role.lower()}"] for role in ROLES}
        _check(config, roles)
        seeds = tuple(seed_pairs(section["seeds"]))
        return cls(
            results=str(config["results"]),
            section=section,
            roles=roles,
            seeds=seeds,
            planted_patch=planted_patch(config, roles, seeds),
            device=config["device"],
            memory_budget_mb=config.get("memory_budget_mb"),
        )

    @classmethod
    def _external(cls, config: dict[str, Any]) -> ModelDiffPlan:
        """The plan of a comparison of the user's own checkpoints. The patch planted on the
        attributed examples (``trak.plant_targets``) is ``counterfactual.patch``, if given: the
        workflow cannot know what the user's algorithms planted before the checkpoints exist."""
        section = config["modeldiff"]
        sides = external_sides(config)
        return cls(
            results=str(config["results"]),
            section=section,
            roles=dict(EXTERNAL_ROLES),
            seeds=(),
            planted_patch=section["counterfactual"]["patch"],
            device=config["device"],
            memory_budget_mb=config.get("memory_budget_mb"),
            external=sides,
        )

    # -- what is compared ----------------------------------------------------------------------

    @property
    def dataset(self) -> str:
        return self.section["dataset"]

    @property
    def arch(self) -> str:
        """The checkpoints' architecture; ``external`` for the user's own checkpoints (the folder
        that stands for it in the stage's paths)."""
        return EXTERNAL_ARCH if self.external else self.section["arch"]

    @property
    def components(self) -> int:
        return self.section["components"]

    @property
    def target_patch(self) -> dict[str, Any] | None:
        """The patch planted on the attributed (target) examples: the algorithms' planted patch
        when ``trak.plant_targets``, else None."""
        return self.planted_patch if self.section["trak"]["plant_targets"] else None

    @property
    def lds_algorithm(self) -> str:
        """The algorithm whose TRAK scores the LDS checks (default: A)."""
        return self.section["lds"]["algorithm"] or self.roles["A"]

    def role_of(self, algorithm: str) -> str:
        for role, name in self.roles.items():
            if name == algorithm:
                return role
        raise ConfigError(f"{algorithm!r} is neither side of this ModelDiff ({self.roles})")

    def models(self, algorithm: str) -> list[ZooId] | list[ExternalId]:
        """The checkpoints of ``algorithm`` that the stage compares, in seed order (the user's
        own: in the order of modeldiff.models_a or models_b)."""
        if self.external:
            return [ExternalId(m.split("/", 1)[1]) for m in self.external[self.role_of(algorithm)]]
        return [ZooId(self.dataset, self.arch, algorithm, i, d) for i, d in self.seeds]

    def external_names(self, algorithm: str) -> list[str]:
        """The models-section names of the user's checkpoints on side ``algorithm``."""
        if not self.external:
            return []
        return [m.split("/", 1)[1] for m in self.external[self.role_of(algorithm)]]

    # -- files ---------------------------------------------------------------------------------

    @property
    def directory(self) -> str:
        """The comparison's folder, ``{results}/modeldiff/{dataset}/{arch}/{A}-vs-{B}``."""
        pair = f"{self.roles['A']}-vs-{self.roles['B']}"
        return f"{self.results}/modeldiff/{self.dataset}/{self.arch}/{pair}"

    @property
    def skipped(self) -> dict[str, str]:
        """The steps the stage leaves out, and why (the summary lists them)."""
        return dict(EXTERNAL_SKIPPED) if self.external else {}

    def checkpoints(self, algorithm: str) -> list[str]:
        return [checkpoint_path(model, self.results) for model in self.models(algorithm)]

    def features(self, algorithm: str) -> list[str]:
        """The TRAK features file of each checkpoint of ``algorithm``."""
        if self.external:
            return [
                self.external_features(algorithm, name) for name in self.external_names(algorithm)
            ]
        return [
            model_path(m, self.results, "modeldiff/trak", ".h5") for m in self.models(algorithm)
        ]

    def external_features(self, algorithm: str, name: str) -> str:
        """The TRAK features file of the user's checkpoint ``name`` on side ``algorithm``
        (``models_a``/``models_b``): per side, since its projection matrix is its position there."""
        return f"{self.results}/modeldiff/trak-external/{self.dataset}/{algorithm}/{name}.h5"

    def scores(self, algorithm: str) -> str:
        """The ensemble's TRAK scores file of ``algorithm``."""
        return f"{self.results}/modeldiff/scores/{self.dataset}/{self.arch}/{algorithm}.h5"

    def lds_directory(self, dataset: str, arch: str, algorithm: str) -> str:
        return f"{self.results}/modeldiff/lds/{dataset}/{arch}/{algorithm}"

    def lds_subsets(self, dataset: str, arch: str, algorithm: str) -> list[str]:
        """The retrained-subset files the LDS of ``algorithm``'s scores needs."""
        folder = self.lds_directory(dataset, arch, algorithm)
        return [f"{folder}/subset{j}.h5" for j in range(self.section["lds"]["n_subsets"])]

    @property
    def lds_summary(self) -> str | None:
        """The LDS summary the stage's summary includes (None when the LDS is disabled)."""
        if not self.section["lds"]["enabled"] or self.external:
            return None
        return f"{self.lds_directory(self.dataset, self.arch, self.lds_algorithm)}/lds.json"

    @property
    def grid_keys(self) -> list[tuple[str, int]]:
        """(kind, component) of every image grid, in the order of :attr:`grids`."""
        return [(kind, c) for kind in KIND_SLUGS for c in range(self.components)]

    @property
    def grids(self) -> list[str]:
        return [f"{self.directory}/grids/{KIND_SLUGS[k]}_{c}.png" for k, c in self.grid_keys]

    @property
    def outputs(self) -> list[str]:
        """The stage's final outputs (the ``modeldiff`` target)."""
        names = ("summary.json", "summary.png", "directions.csv", "surfaced.csv")
        return [
            *(f"{self.directory}/{name}" for name in names),
            f"{self.directory}/counterfactual.csv",
            *self.grids,
        ]

    # -- job settings --------------------------------------------------------------------------

    def trak_features_job(self, init_seed: int, data_seed: int) -> dict[str, Any]:
        """What :func:`modelkin.attribution.jobs.featurize_checkpoint_file` needs besides its
        files, for the checkpoint with these seeds (its projection matrix: its seeds' position)."""
        seeds = (init_seed, data_seed)
        if seeds not in self.seeds:
            raise ConfigError(
                f"checkpoint i{init_seed}-d{data_seed} is not among modeldiff.seeds "
                f"{self.section['seeds']}; its projection matrix index is its position in that list"
            )
        return self._features_job(self.seeds.index(seeds))

    def external_features_job(self, algorithm: str, name: str) -> dict[str, Any]:
        """:meth:`trak_features_job` for the user's checkpoint ``name`` on side ``algorithm``
        (its projection matrix: its position in modeldiff.models_a or models_b)."""
        names = self.external_names(algorithm)
        if name not in names:
            raise ConfigError(
                f"{name} is not among the checkpoints of modeldiff.{algorithm} ({names})"
            )
        return {**self._features_job(names.index(name)), "external": True}

    def _features_job(self, checkpoint_index: int) -> dict[str, Any]:
        trak = self.section["trak"]
        return {
            "settings": {key: trak[key] for key in FEATURE_SETTINGS},
            "checkpoint_index": checkpoint_index,
            "train_data": trak["train_data"],
            "targets": trak["targets"],
            "n_targets": trak["n_targets"],
            "target_patch": self.target_patch,
            "device": self.device,
            "memory_budget_mb": self.memory_budget_mb,
        }

    def lds_subset_job(self, subset_index: int) -> dict[str, Any]:
        """What :func:`modelkin.attribution.lds.train_subset_file` needs besides its files."""
        lds, trak = self.section["lds"], self.section["trak"]
        return {
            "subset_index": subset_index,
            "alpha": lds["alpha"],
            "seed": lds["seed"],
            "models_per_subset": lds["models_per_subset"],
            "targets": trak["targets"],
            "n_targets": trak["n_targets"],
            "target_patch": self.target_patch,
            "device": self.device,
        }
