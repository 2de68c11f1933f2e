"""HDF5 files of the attribution stage: per-checkpoint TRAK features, ensemble scores, ModelDiff
results.

Every file carries ``modelkin_kind``, ``method``, ``params`` (JSON), ``axes`` (JSON: dataset name ->
axis names), ``modelkin_version`` and its inputs' provenance (checkpoint paths and sha256s).
Attributes follow modelkin's HDF5 conventions (:mod:`modelkin.hdf5`): plain where h5dump can show
them, JSON otherwise; no timestamps, so identical inputs give identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..hdf5 import StoreError, create_dataset, create_store, open_store, read_attrs, write_attrs
from ..io import atomic_path

FEATURES_KIND = "modelkin-trak-features"
SCORES_KIND = "modelkin-trak-scores"


class AttributionFileError(StoreError):
    """A file that is missing, damaged or not the kind of attribution file expected."""


@dataclass
class StoredArrays:
    """An attribution file read back: its arrays and decoded attributes."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    path: Path

    @property
    def params(self) -> dict[str, Any]:
        return self.attrs.get("params", {})

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def write_arrays(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    kind: str,
    method: str,
    params: Mapping[str, Any],
    axes: Mapping[str, tuple[str, ...] | list[str]],
    attrs: Mapping[str, Any] | None = None,
    groups: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> Path:
    """Write ``arrays`` (and optional groups of arrays) with provenance attributes, atomically."""

    path = Path(path)
    names = set(arrays) | {f"{g}/{n}" for g, members in (groups or {}).items() for n in members}
    missing_axes = sorted(n for n in names if n not in axes)
    if missing_axes:
        raise InputError(f"no axis names given for {missing_axes}")
    for name in names:
        group, _, leaf = name.rpartition("/")
        array = np.asarray((groups or {})[group][leaf] if group else arrays[name])
        if array.ndim != len(axes[name]):
            raise InputError(
                f"{name} has {array.ndim} dimensions {array.shape} but axes {tuple(axes[name])}"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(
                f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values; not writing "
                f"{path}"
            )
    header = {
        "modelkin_kind": kind,
        "method": method,
        "params": dict(params),
        "axes": {k: list(v) for k, v in axes.items()},
        "modelkin_version": __version__,
    }
    clash = set(header) & set(attrs or {})
    if clash:
        raise InputError(f"attrs may not override {sorted(clash)}")
    header.update(attrs or {})
    with atomic_path(path) as tmp, create_store(tmp) as handle:
        for name, array in arrays.items():
            create_dataset(handle, name, array)
        for group, members in (groups or {}).items():
            target = handle.create_group(group)
            for name, array in members.items():
                create_dataset(target, name, array)
        write_attrs(handle, header)
    return path


def read_arrays(path: str | Path, kind: str, how_to_make: str) -> StoredArrays:
    """Read a file written by :func:`write_arrays`, refusing one of another kind."""
    import h5py

    path = Path(path)
    with open_store(path, "attribution file", how_to_make, AttributionFileError) as handle:
        attrs = read_attrs(handle)
        if attrs.get("modelkin_kind") != kind:
            raise AttributionFileError(
                f"{path} is not a {kind} file (it says {attrs.get('modelkin_kind')!r}); "
                f"{how_to_make}"
            )
        arrays: dict[str, np.ndarray] = {}

        def collect(name, obj):
            if isinstance(obj, h5py.Dataset):
                arrays[name] = obj[()]

        handle.visititems(collect)
    return StoredArrays(arrays, attrs, path)
