"""HDF5 files of the attribution stage: per-checkpoint TRAK features, ensemble scores, ModelDiff
results.

Every file carries ``modelkin_kind``, ``method``, ``params`` (JSON), ``axes`` (JSON: dataset name ->
axis names), ``modelkin_version`` and its inputs' provenance (checkpoint paths and sha256s).
Scalars and strings are plain HDF5 attributes (readable with ``h5dump``); dicts and lists are JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError, MissingFileError
from ..io import atomic_path

FEATURES_KIND = "modelkin-trak-features"
SCORES_KIND = "modelkin-trak-scores"


class AttributionFileError(InputError):
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


def _encode(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(_plain(value), sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in "{[n":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


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
    import h5py

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
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    clash = set(header) & set(attrs or {})
    if clash:
        raise InputError(f"attrs may not override {sorted(clash)}")
    header.update(attrs or {})
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for name, array in arrays.items():
                _dataset(handle, name, np.asarray(array))
            for group, members in (groups or {}).items():
                target = handle.create_group(group)
                for name, array in members.items():
                    _dataset(target, name, np.asarray(array))
            for key, value in header.items():
                handle.attrs[key] = _encode(value)
    return path


def _dataset(handle, name: str, array: np.ndarray) -> None:
    options = (
        {"compression": "gzip", "compression_opts": 1, "shuffle": True}
        if array.nbytes > 1 << 20
        else {}
    )
    handle.create_dataset(name, data=array, **options)


def read_arrays(path: str | Path, kind: str, how_to_make: str) -> StoredArrays:
    """Read a file written by :func:`write_arrays`, refusing one of another kind."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist; {how_to_make}")
    try:
        with h5py.File(path, "r") as handle:
            attrs = {key: _decode(value) for key, value in handle.attrs.items()}
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
    except OSError as err:
        raise AttributionFileError(
            f"{path} is not a readable HDF5 file ({err}); it is probably truncated: delete it and "
            f"{how_to_make}"
        ) from err
    return StoredArrays(arrays, attrs, path)
