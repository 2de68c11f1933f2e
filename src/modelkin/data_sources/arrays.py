"""Arrays in one file: NPZ (``numpy.savez``) or HDF5, holding ``train_x, train_y, test_x, test_y``
and optionally ``class_names``.

Images are uint8 (N, H, W, C), (N, C, H, W) or (N, H, W) (greyscale), or floats in [0, 1]
(rounded to uint8 as ``round(255 * x)``); labels are integer class indices 0..K-1, K being the
number of class names (the config's ``class_names``, else the file's, else the largest label + 1).
Describing a file reads the images' headers and the labels only.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import DataSource, DataSourceError, Layout
from ._images import convert_array

ARRAYS = ("train_x", "train_y", "test_x", "test_y")
SPLITS = ("train", "test")


class _File:
    """The arrays of an NPZ or HDF5 file: names, shapes and dtypes without reading, and reads."""

    def __init__(self, source: DataSource, handle: Any) -> None:
        self.source = source
        self.handle = handle
        if source.kind == "npz":
            self.headers = {name: _npy_header(handle, member) for name, member in handle.items()}
            self.names = list(self.headers)
        else:
            self.names = [name for name in handle if hasattr(handle[name], "shape")]

    def shape(self, name: str) -> tuple[int, ...]:
        if self.source.kind == "npz":
            return self.headers[name][0]
        return tuple(self.handle[name].shape)

    def dtype(self, name: str) -> np.dtype:
        if self.source.kind == "npz":
            return self.headers[name][1]
        return self.handle[name].dtype

    def read(self, name: str) -> np.ndarray:
        if self.source.kind == "npz":
            with self.handle.zip.open(self.handle[name]) as member:
                try:
                    return np.lib.format.read_array(member, allow_pickle=False)
                except ValueError as err:
                    raise DataSourceError(
                        f"{self.source.where}: array {name} of {self.source.path} cannot be read "
                        f"without pickle ({err}); save plain numeric or string arrays"
                    ) from None
        dataset = self.handle[name]
        if dataset.dtype.kind in ("S", "O"):
            return np.asarray(dataset.asstr()[()])
        return np.asarray(dataset[()])


class _Members(dict):
    """NPZ members by array name, keeping the zip file open."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        super().__init__((n[: -len(".npy")], n) for n in zf.namelist() if n.endswith(".npy"))
        self.zip = zf


def _npy_header(members: _Members, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with members.zip.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape), dtype


@contextlib.contextmanager
def _open(source: DataSource) -> Iterator[_File]:
    """The file of ``source`` open for reading, with one clear line if it is not one."""
    if source.path.is_dir():
        raise DataSourceError(
            f"{source.where}.path: {source.path} is a directory; source: {source.kind} reads "
            "one file (or set source: imagefolder)"
        )
    try:
        if source.kind == "npz":
            opened: Any = zipfile.ZipFile(source.path)
            handle: Any = _Members(opened)
        else:
            import h5py

            opened = handle = h5py.File(source.path, "r")
    except (OSError, zipfile.BadZipFile) as err:
        raise DataSourceError(
            f"{source.where}: cannot read {source.path} as {source.kind.upper()} "
            f"({type(err).__name__}: {err}); check source: and the file"
        ) from None
    with opened:
        try:
            yield _File(source, handle)
        except (OSError, zipfile.BadZipFile, EOFError) as err:
            raise DataSourceError(
                f"{source.where}: {source.path} is damaged ({type(err).__name__}: {err}); "
                "write it again"
            ) from None


def _geometry(source: DataSource, name: str, shape: tuple[int, ...]) -> tuple[str, int, int, int]:
    """The layout of image array ``name`` (``nhw``, ``nhwc`` or ``nchw``) and its (C, H, W)."""
    if len(shape) == 3:
        return "nhw", 1, shape[1], shape[2]
    if len(shape) == 4 and shape[-1] in (1, 3):
        return "nhwc", shape[3], shape[1], shape[2]
    if len(shape) == 4 and shape[1] in (1, 3):
        return "nchw", shape[1], shape[2], shape[3]
    raise DataSourceError(
        f"{source.where}: {name} of {source.path} has shape {shape}; images are (N, H, W, C) or "
        "(N, C, H, W) with 1 or 3 channels, or (N, H, W) for greyscale"
    )


def _class_names(source: DataSource, file: _File) -> tuple[str, ...] | None:
    if source.class_names is not None:
        return source.class_names
    if "class_names" not in file.names:
        return None
    names = file.read("class_names")
    if names.ndim != 1 or names.dtype.kind not in ("U", "S", "O"):
        raise DataSourceError(
            f"{source.where}: class_names of {source.path} must be a 1-d array of strings"
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())


def _labels(source: DataSource, file: _File, split: str, count: int) -> np.ndarray:
    name = f"{split}_y"
    y = file.read(name)
    if y.ndim != 1 or y.dtype.kind not in ("i", "u"):
        raise DataSourceError(
            f"{source.where}: {name} of {source.path} must be a 1-d array of integer class "
            f"indices, not {y.dtype} of shape {y.shape}"
        )
    if len(y) != count:
        raise DataSourceError(
            f"{source.where}: {split}_x of {source.path} holds {count} images but {name} "
            f"{len(y)} labels; give one label per image"
        )
    return y.astype(np.int64)


def _scan(source: DataSource, file: _File) -> tuple[Layout, dict[str, np.ndarray]]:
    missing = [name for name in ARRAYS if name not in file.names]
    if missing:
        raise DataSourceError(
            f"{source.where}: {source.path} has no array {', '.join(missing)}; it must hold "
            f"{', '.join(ARRAYS)} (e.g. numpy.savez(PATH, train_x=..., train_y=..., ...))"
        )
    geometry = {
        split: _geometry(source, f"{split}_x", file.shape(f"{split}_x")) for split in SPLITS
    }
    if geometry["train"][1:] != geometry["test"][1:]:
        raise DataSourceError(
            f"{source.where}: train_x images are (C, H, W) = {geometry['train'][1:]} but test_x "
            f"images {geometry['test'][1:]}; give both splits the same shape"
        )
    labels = {split: _labels(source, file, split, file.shape(f"{split}_x")[0]) for split in SPLITS}
    names = _class_names(source, file)
    top = max((int(y.max()) for y in labels.values() if len(y)), default=-1)
    count = len(names) if names is not None else top + 1
    for split, y in labels.items():
        bad = y[(y < 0) | (y >= count)]
        if len(bad):
            raise DataSourceError(
                f"{source.where}: {split}_y of {source.path} holds label {int(bad[0])}, outside "
                f"0..{count - 1} ({count} classes); labels are class indices"
                + (" below the number of class_names" if names is not None else "")
            )
    _, channels, height, width = geometry["train"]
    size = source.size or (height, width)
    layout = Layout(
        (source.channels or channels, size[0], size[1]),
        names or tuple(str(i) for i in range(count)),
        len(labels["train"]),
        len(labels["test"]),
    )
    return layout, labels


def describe(source: DataSource) -> Layout:
    with _open(source) as file:
        return _scan(source, file)[0]


def files(source: DataSource) -> list[str]:
    return [str(source.path)]


def _images(source: DataSource, file: _File, split: str) -> np.ndarray:
    """Images of ``split`` as uint8 (N, C, H, W), before conversion and resizing."""
    name = f"{split}_x"
    layout = _geometry(source, name, file.shape(name))[0]
    x = file.read(name)
    if x.dtype.kind == "f":
        if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise DataSourceError(
                f"{source.where}: {name} of {source.path} is {x.dtype} with values outside "
                "[0, 1]; give floats in [0, 1] or uint8 pixels 0..255"
            )
        x = np.rint(x * 255.0).astype(np.uint8)
    elif x.dtype.kind in ("i", "u"):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataSourceError(
                f"{source.where}: {name} of {source.path} holds values outside 0..255; give uint8 "
                "pixels or floats in [0, 1]"
            )
        x = x.astype(np.uint8)
    else:
        raise DataSourceError(
            f"{source.where}: {name} of {source.path} is {x.dtype}; give uint8 pixels or floats "
            "in [0, 1]"
        )
    if layout == "nhw":
        return x[:, None]
    return x.transpose(0, 3, 1, 2) if layout == "nhwc" else x


def read(source: DataSource) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with _open(source) as file:
        _, labels = _scan(source, file)
        for split in SPLITS:
            images = _images(source, file, split)
            out[f"{split}_x"] = convert_array(
                images, source.channels, source.size, desc=f"converting {source.name} {split}"
            )
            out[f"{split}_y"] = labels[split]
    return out
