"""HDF5 conventions shared by every store (signatures, probes, TRAK features and scores, ModelDiff).

- Attributes: numbers, strings and lists of strings are plain HDF5 attributes (readable with
  ``h5dump``); dicts, other lists, tuples and None are JSON (keys sorted) and decode back on
  reading.
- Files are byte-reproducible: no timestamps (object times are not tracked) and attributes are
  written in sorted order, so identical inputs give identical files and hashes.
- Datasets over 1 MiB are stored with shuffle + gzip (level 1), chunked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, MissingFileError

COMPRESS_ABOVE_BYTES = 1 << 20


class StoreError(InputError):
    """An HDF5 file that is missing pieces, unreadable or not the modelkin file expected."""


def encode_attr(value: Any) -> Any:
    """The form an attribute value is stored in (see the module docstring)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(jsonable(value), sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def jsonable(value: Any) -> Any:
    """Plain JSON types from dicts, lists, tuples, Paths and numpy values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def decode_attr(value: Any) -> Any:
    """An attribute as written by :func:`encode_attr`."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and (value[:1] in "{[" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_attrs(handle: Any) -> dict[str, Any]:
    return {key: decode_attr(value) for key, value in handle.attrs.items()}


def write_attrs(handle: Any, attrs: Mapping[str, Any]) -> None:
    for key in sorted(attrs):
        handle.attrs[key] = encode_attr(attrs[key])


def create_dataset(
    handle: Any,
    name: str,
    array: Any,
    *,
    compress: bool | None = None,
    chunks: tuple[int, ...] | None = None,
) -> None:
    """One dataset, compressed when large (or as ``compress`` says), without timestamps;
    ``chunks``: its HDF5 chunk shape when compressed (default: h5py's guess)."""
    array = np.asarray(array)
    big = array.nbytes > COMPRESS_ABOVE_BYTES if compress is None else compress
    options: dict[str, Any] = {"track_times": False}
    if big and array.ndim > 0:
        options.update(compression="gzip", compression_opts=1, shuffle=True, chunks=chunks or True)
    handle.create_dataset(name, data=array, **options)


def create_empty_dataset(
    handle: Any,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    chunks: tuple[int, ...] | None = None,
    compress: bool | None = None,
) -> Any:
    """A dataset to be filled block by block (streamed), chunked and compressed as
    :func:`create_dataset` stores large arrays (or as ``compress`` says); returns the h5py
    dataset."""
    dtype = np.dtype(dtype)
    options: dict[str, Any] = {"track_times": False}
    big = int(np.prod(shape)) * dtype.itemsize > COMPRESS_ABOVE_BYTES
    if (big if compress is None else compress) and len(shape) > 0:
        options.update(compression="gzip", compression_opts=1, shuffle=True, chunks=chunks or True)
    elif chunks is not None and len(shape) > 0:
        options["chunks"] = chunks
    return handle.create_dataset(name, shape=shape, dtype=dtype, **options)


class StoredArray:
    """A dataset of an HDF5 file, read slice by slice on demand (``shape``, ``dtype``, ``ndim``,
    ``len`` and ``[...]`` as an array; ``np.asarray`` reads it whole)."""

    def __init__(self, path: str | Path, name: str, shape: tuple[int, ...], dtype: Any):
        self.path = Path(path)
        self.name = name
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r") as handle:
            return np.asarray(handle[self.name][key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[()]
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"StoredArray({str(self.path)!r}, {self.name!r}, shape={self.shape}, {self.dtype})"


@contextmanager
def open_store(
    path: str | Path, what: str, how_to_make: str, error: type[StoreError] = StoreError
) -> Iterator[Any]:
    """Open an HDF5 file for reading, with one clear error (``error``) for a damaged file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist; {how_to_make}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise error(
            f"{path} is not a readable HDF5 {what} ({err}); it is probably truncated or corrupt: "
            f"delete it and {how_to_make}"
        ) from err
    with handle:
        yield handle


@contextmanager
def create_store(path: Path) -> Iterator[Any]:
    """A new HDF5 file at ``path`` (a temporary path: callers write through ``atomic_path``)."""
    import h5py

    with h5py.File(path, "w", track_order=False) as handle:
        yield handle
