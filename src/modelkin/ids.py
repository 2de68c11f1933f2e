"""Model ids: the one place where a model's name is parsed, formatted and turned into a path.

Every model of a run has an id, and every file about it lives under a path made from that id:

==========  ======================================================  ================================
kind        id                                                      made by
==========  ======================================================  ================================
zoo         ``DATASET/ARCH/ALGORITHM/iINIT-dDATA``                  the ``train`` rule (stitching's
                                                                    task donors use a task name in
                                                                    place of ``DATASET``)
derived     ``derived/DATASET/DERIVATION/PARENT_ID/sSEED``          the ``derive`` rule
external    ``external/NAME``                                       a user's own checkpoint
==========  ======================================================  ================================

Each part is a *name*: letters, digits, ``.``, ``_``, ``+`` and ``-``, starting with a letter or
digit. So no id can hold ``..``, an absolute path or an empty part, and no path made from an id
leaves the results directory. This module needs neither torch nor numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import InputError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]*")
DERIVED_PREFIX = "derived"
EXTERNAL_PREFIX = "external"
_SEEDS = re.compile(r"i(?P<init>\d+)-d(?P<data>\d+)")
_STUDENT_SEED = re.compile(r"s(?P<seed>\d+)")
FORMATS = (
    "DATASET/ARCH/ALGORITHM/iINIT-dDATA (zoo), derived/DATASET/DERIVATION/PARENT_ID/sSEED "
    "(derived) or external/NAME (external)"
)


class ModelIdError(InputError):
    """A string that is not a model id, or names a model the configuration does not plan."""


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a valid id part (see the module docstring), else :class:`ModelIdError`."""
    text = str(value)
    if not NAME.fullmatch(text) or text in (".", ".."):
        raise ModelIdError(
            f"{what} {text!r} is not a valid name: use letters, digits, '.', '_', '+' and '-', "
            "starting with a letter or digit"
        )
    return text


@dataclass(frozen=True)
class ZooId:
    """A model the workflow trains from scratch: data
    set (or task), architecture, algorithm, seeds."""

    dataset: str
    arch: str
    algorithm: str
    init_seed: int
    data_seed: int

    kind = "zoo"

    def __post_init__(self) -> None:
        for field_name in ("dataset", "arch", "algorithm"):
            check_name(getattr(self, field_name), field_name)
        for field_name in ("init_seed", "data_seed"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ModelIdError(f"{field_name} must be a non-negative integer, got {value!r}")

    def __str__(self) -> str:
        return f"{self.dataset}/{self.arch}/{self.algorithm}/i{self.init_seed}-d{self.data_seed}"

    @property
    def parent(self) -> None:
        return None

    @property
    def seeds(self) -> tuple[int, int]:
        return self.init_seed, self.data_seed

    @property
    def profile(self) -> tuple[str, str, str]:
        """(data set, architecture, algorithm): what independently seeded models share."""
        return self.dataset, self.arch, self.algorithm


@dataclass(frozen=True)
class DerivedId:
    """A model derived from a parent (fine-tuned, pruned, extracted, ...) on ``dataset``."""

    dataset: str
    derivation: str
    parent: ModelId
    seed: int

    kind = "derived"

    def __post_init__(self) -> None:
        check_name(self.dataset, "dataset")
        check_name(self.derivation, "derivation")
        if not isinstance(self.parent, (ZooId, DerivedId, ExternalId)):
            raise ModelIdError(
                f"the parent of a derived model must be a model id, got {self.parent!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ModelIdError(f"seed must be a non-negative integer, got {self.seed!r}")

    def __str__(self) -> str:
        return f"{DERIVED_PREFIX}/{self.dataset}/{self.derivation}/{self.parent}/s{self.seed}"

    @property
    def root(self) -> ModelId:
        """The first model of the lineage (a zoo or external model)."""
        model: ModelId = self
        while isinstance(model, DerivedId):
            model = model.parent
        return model

    @property
    def generation(self) -> int:
        """1 for a child of a root model, 2 for a grandchild, ..."""
        depth = 0
        model: ModelId = self
        while isinstance(model, DerivedId):
            depth, model = depth + 1, model.parent
        return depth


@dataclass(frozen=True)
class ExternalId:
    """A user's model, named in the configuration's ``models`` section."""

    name: str

    kind = "external"

    def __post_init__(self) -> None:
        check_name(self.name, "external model name")

    def __str__(self) -> str:
        return f"{EXTERNAL_PREFIX}/{self.name}"

    @property
    def parent(self) -> None:
        return None


ModelId = ZooId | DerivedId | ExternalId


def parse_model_id(text: str | ModelId) -> ModelId:
    """The id ``text`` names (an id passes through); :class:`ModelIdError` for anything else."""
    if isinstance(text, (ZooId, DerivedId, ExternalId)):
        return text
    if not isinstance(text, str):
        raise ModelIdError(f"a model id is a string ({FORMATS}), not {text!r}")
    parts = text.split("/")
    if parts[0] == DERIVED_PREFIX:
        return _parse_derived(text, parts)
    if parts[0] == EXTERNAL_PREFIX:
        if len(parts) != 2:
            raise ModelIdError(f"{text!r} is not a model id; external ids are external/NAME")
        return ExternalId(_name(parts[1], text))
    if len(parts) != 4:
        raise ModelIdError(f"{text!r} is not a model id; ids are {FORMATS}")
    seeds = _SEEDS.fullmatch(parts[3])
    if not seeds:
        raise ModelIdError(
            f"{text!r} is not a model id: its last part must be iINIT-dDATA, e.g. i0-d0"
        )
    dataset, arch, algorithm = (_name(p, text) for p in parts[:3])
    return ZooId(dataset, arch, algorithm, int(seeds["init"]), int(seeds["data"]))


def _parse_derived(text: str, parts: list[str]) -> DerivedId:
    if len(parts) < 5:
        raise ModelIdError(
            f"{text!r} is not a derived model id (derived/DATASET/DERIVATION/PARENT_ID/sSEED)"
        )
    seed = _STUDENT_SEED.fullmatch(parts[-1])
    if not seed:
        raise ModelIdError(
            f"{text!r} is not a derived model id: its last part must be sSEED, e.g. s0"
        )
    parent = parse_model_id("/".join(parts[3:-1]))
    return DerivedId(_name(parts[1], text), _name(parts[2], text), parent, int(seed["seed"]))


def _name(part: str, text: str) -> str:
    if not NAME.fullmatch(part) or part in (".", ".."):
        raise ModelIdError(
            f"{text!r} is not a model id: its part {part!r} is not a name (letters, "
            "digits, '.', '_', '+', '-', starting with a letter or digit)"
        )
    return part


def is_derived_id(text: str) -> bool:
    """Whether ``text`` is a derived model id (False for anything else, ids or not)."""
    try:
        return isinstance(parse_model_id(text), DerivedId)
    except ModelIdError:
        return False


def is_model_id(text: str) -> bool:
    try:
        parse_model_id(text)
    except ModelIdError:
        return False
    return True


def model_path(model: str | ModelId, results: str, folder: str, suffix: str) -> str:
    """``{results}/{folder}/{id}{suffix}``: where a file about ``model`` lives (a checked id)."""
    path = PurePosixPath(results, folder, f"{parse_model_id(model)}{suffix}")
    return str(path)


def checkpoint_path(model: str | ModelId, results: str) -> str:
    """Where the workflow keeps ``model``'s checkpoint."""
    return model_path(model, results, "models", ".safetensors")


def slug(model: str | ModelId) -> str:
    """``model`` as one file-name component (``/`` -> ``.``), for files about pairs of models."""
    return str(parse_model_id(model)).replace("/", ".")


def pair_slug(model_a: str | ModelId, model_b: str | ModelId, separator: str = "~") -> str:
    """One file-name component for an ordered pair of models."""
    return f"{slug(model_a)}{separator}{slug(model_b)}"


def id_dataset(model: str | ModelId) -> str | None:
    """The data set (or task) an id names; None for an
    external model (its data set is configured)."""
    model = parse_model_id(model)
    return None if isinstance(model, ExternalId) else model.dataset


def display_order(model: str | ModelId) -> tuple:
    """Sort key: zoo and external models first, then
    derived models grouped by parent and derivation."""
    model = parse_model_id(model)
    if isinstance(model, DerivedId):
        return (1, str(model.parent), model.derivation, model.seed)
    return (0, str(model), "", 0)


def short_label(model: str | ModelId) -> str:
    """A compact label for plots: ``lenet/standard/i0-d0``
    or ``finetune s0 <- lenet/standard/i0-d0``."""
    model = parse_model_id(model)
    if isinstance(model, DerivedId):
        parent = str(model.parent).split("/", 1)[-1]
        return f"{model.derivation} s{model.seed} <- {parent}"
    return str(model).split("/", 1)[-1]
