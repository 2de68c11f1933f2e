"""Users' own data sets: the config's ``datasets:`` section, next to the built-in registry.

A user data set is an image folder (``PATH/train/<class>/*.png``, ``PATH/test/<class>/*.png``), an
NPZ file or an HDF5 file of ``train_x, train_y, test_x, test_y``. Once registered
(:func:`register_config_datasets`) it is a :class:`~modelkin.datasets.DatasetInfo` like the
built-in ones, so every stage, id and check that takes a data set name takes it, and
:func:`modelkin.data.prepare_dataset` turns it into the same prepared file (uint8 images
(N, C, H, W), int64 labels).

Registration happens wherever a configuration is read: :func:`modelkin.config.validate_config`
(before the schema's ``"@datasets"`` lists are filled, so ``zoo.datasets`` may name a user data
set) and :func:`modelkin.workflow.snakemake_job` (each job runs in its own process). It is cheap:
image folders are listed and one image's header is read; arrays' headers and labels are read.
The images themselves are read only when the data set is prepared.

Torch-free: Snakemake registers the data sets while it parses the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets import AUGMENTATIONS, BUILTIN_DATASETS, DATASETS, DatasetInfo
from ..errors import InputError, MissingFileError, ModelkinError

SOURCES = ("imagefolder", "npz", "hdf5")

# Normalisation of a user data set without mean/std in its config entry. Only models of the zoo
# trained on it use it (they normalise inside); external models bring their own normalisation.
NEUTRAL_MEAN = 0.5
NEUTRAL_STD = 0.5
# L-inf budget in [0, 1] pixel units when a recipe says epsilon: null (CIFAR's and SVHN's).
DEFAULT_EPSILON = 8 / 255


class DataSourceError(InputError):
    """A user data set whose files cannot be prepared as its config entry says."""


@dataclass(frozen=True)
class DataSource:
    """One entry of the config's ``datasets:`` section, with the schema's meaning of null."""

    name: str
    kind: str  # one of SOURCES
    path: Path
    size: tuple[int, int] | None = None  # (height, width) to resize to; None: keep
    channels: int | None = None  # 1 (L) or 3 (RGB); None: the data's own
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augmentation: str = "none"
    default_epsilon: float | None = None

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any]) -> DataSource:
        """The data source of config entry ``datasets.<name>`` (a mapping the schema accepts;
        registration runs before the schema fills defaults, so missing keys mean null)."""

        def tuple_or_none(key: str, kind: type) -> Any:
            value = entry.get(key)
            return None if value is None else tuple(kind(v) for v in value)

        return cls(
            name=name,
            kind=str(entry["source"]),
            path=Path(str(entry["path"])),
            size=tuple_or_none("size", int),
            channels=None if entry.get("channels") is None else int(entry["channels"]),
            class_names=tuple_or_none("class_names", str),
            mean=tuple_or_none("mean", float),
            std=tuple_or_none("std", float),
            augmentation=str(entry.get("augmentation") or "none"),
            default_epsilon=(
                None if entry.get("default_epsilon") is None else float(entry["default_epsilon"])
            ),
        )

    @property
    def where(self) -> str:
        """The config key of this data set, for messages."""
        return f"datasets.{self.name}"


@dataclass(frozen=True)
class Layout:
    """What a source holds, found without reading its images: the prepared shape, the classes
    and the split sizes (0: unknown until prepared)."""

    shape: tuple[int, int, int]  # (C, H, W) after conversion and resizing
    class_names: tuple[str, ...]
    train_size: int = 0
    test_size: int = 0


def _reader(kind: str) -> Any:
    """The module that reads sources of ``kind``: ``describe``, ``files`` and ``read``."""
    if kind == "imagefolder":
        from . import imagefolder

        return imagefolder
    if kind in ("npz", "hdf5"):
        from . import arrays

        return arrays
    raise DataSourceError(f"unknown data source {kind!r}; choose one of {', '.join(SOURCES)}")


def check_source(source: DataSource) -> None:
    """:class:`DataSourceError` for a config entry that contradicts itself or names a missing
    path; what its files hold is checked by :func:`describe`."""
    if source.name in BUILTIN_DATASETS:
        raise DataSourceError(
            f"{source.where}: {source.name!r} is a built-in data set; give yours another name"
        )
    if not source.path.exists():
        raise MissingFileError(
            f"{source.where}.path: {source.path} does not exist (relative paths start in the "
            "directory Snakemake runs in); correct the path or create it"
        )
    if source.augmentation not in AUGMENTATIONS:
        raise DataSourceError(
            f"{source.where}.augmentation: unknown augmentation {source.augmentation!r}; choose "
            f"one of {', '.join(AUGMENTATIONS)}"
        )
    for key in ("mean", "std"):
        values = getattr(source, key)
        if values is not None and source.channels is not None and len(values) != source.channels:
            raise DataSourceError(
                f"{source.where}.{key}: {len(values)} values for {source.channels} channel(s); "
                f"give one per channel"
            )
    if source.kind == "imagefolder" and source.class_names is not None:
        raise DataSourceError(
            f"{source.where}.class_names: an image folder's classes are its sub-folder names; "
            "remove class_names (rename the folders instead)"
        )


def describe(source: DataSource) -> Layout:
    """The prepared shape, classes and split sizes of ``source``, reading no more than headers
    and labels; :class:`DataSourceError` (one line, naming the file) for what cannot work."""
    check_source(source)
    layout = _reader(source.kind).describe(source)
    for key in ("mean", "std"):
        values = getattr(source, key)
        if values is not None and len(values) != layout.shape[0]:
            raise DataSourceError(
                f"{source.where}.{key}: {len(values)} values for the {layout.shape[0]} channel(s) "
                "of its images; give one per channel (or set channels)"
            )
    return layout


def source_files(source: DataSource) -> list[str]:
    """The files ``source`` is prepared from (every image of a folder): the workflow's input of
    its preparation, so that adding, removing or changing one prepares it again."""
    if not source.path.exists():
        return [str(source.path)]  # Snakemake then says the input is missing
    return _reader(source.kind).files(source)


def read_source(source: DataSource) -> dict[str, Any]:
    """``train_x, train_y, test_x, test_y`` of ``source`` as numpy arrays: uint8 (N, C, H, W)
    images, converted to ``channels`` and resized to ``size``, and int64 labels."""
    check_source(source)
    return _reader(source.kind).read(source)


def dataset_info(source: DataSource, layout: Layout) -> DatasetInfo:
    """The registry entry of ``source``: its shape and classes, and mean and std from its config
    entry (else the neutral 0.5, only used by zoo models trained on it)."""
    channels = layout.shape[0]
    return DatasetInfo(
        name=source.name,
        shape=layout.shape,
        num_classes=len(layout.class_names),
        mean=source.mean or (NEUTRAL_MEAN,) * channels,
        std=source.std or (NEUTRAL_STD,) * channels,
        augmentation=source.augmentation,
        default_epsilon=(
            DEFAULT_EPSILON if source.default_epsilon is None else source.default_epsilon
        ),
        source=source.kind,
        description=f"user data set: {source.kind} at {source.path}",
        class_names=layout.class_names,
        train_size=layout.train_size,
        test_size=layout.test_size,
    )


def _placeholder(source: DataSource) -> DatasetInfo:
    """A registry entry for a source that cannot be described (its problem is reported by the
    config checks): the name stays known, so the only message is the real problem."""
    channels = source.channels or 3
    height, width = source.size or (0, 0)
    layout = Layout((channels, height, width), ())
    return dataset_info(source, layout)


# The data sources registered from a configuration, by name (the registry holds their infos).
CONFIG_SOURCES: dict[str, DataSource] = {}


def _sources(config: Mapping[str, Any]) -> list[DataSource]:
    """The well-formed entries of the config's ``datasets:`` section (the schema reports the
    others)."""
    section = config.get("datasets") if isinstance(config, Mapping) else None
    if not isinstance(section, Mapping):
        return []
    out = []
    for name, entry in section.items():
        if not isinstance(entry, Mapping) or entry.get("source") not in SOURCES:
            continue
        if not isinstance(entry.get("path"), str):
            continue
        try:
            out.append(DataSource.from_config(str(name), entry))
        except (TypeError, ValueError):
            continue  # a value of the wrong type: the schema says which
    return out


def register_config_datasets(config: Mapping[str, Any]) -> list[str]:
    """Add the data sets of ``config["datasets"]`` to :data:`modelkin.datasets.DATASETS` (by
    name, replacing an earlier registration of the same name); returns their names.

    Never raises for a bad entry: one that the schema rejects is skipped, one whose files cannot
    be described is registered by its config alone (so the name stays usable), and
    :func:`config_dataset_problems` (a config check) reports both in one line each. A name of a
    built-in data set is never replaced.
    """
    names = []
    for source in _sources(config):
        if source.name in BUILTIN_DATASETS:
            continue
        try:
            info = dataset_info(source, describe(source))
        except ModelkinError:  # DataSourceError, MissingFileError
            info = _placeholder(source)
        DATASETS[source.name] = info
        CONFIG_SOURCES[source.name] = source
        names.append(source.name)
    return names


def forget_config_datasets() -> None:
    """Remove every registered user data set (tests, and processes that load another config)."""
    for name in list(CONFIG_SOURCES):
        DATASETS.pop(name, None)
        del CONFIG_SOURCES[name]


def config_source(name: str) -> DataSource | None:
    """The registered user data source ``name`` (None: a built-in or unknown data set)."""
    return CONFIG_SOURCES.get(name)


def config_dataset_problems(config: Mapping[str, Any]) -> list[str]:
    """One line per user data set that cannot be prepared as configured (a config check)."""
    problems = []
    for source in _sources(config):
        try:
            describe(source)
        except ModelkinError as err:
            problems.append(str(err))
    return problems


__all__ = [
    "CONFIG_SOURCES",
    "DEFAULT_EPSILON",
    "NEUTRAL_MEAN",
    "NEUTRAL_STD",
    "SOURCES",
    "DataSource",
    "DataSourceError",
    "Layout",
    "config_dataset_problems",
    "config_source",
    "dataset_info",
    "describe",
    "forget_config_datasets",
    "read_source",
    "register_config_datasets",
    "source_files",
]
