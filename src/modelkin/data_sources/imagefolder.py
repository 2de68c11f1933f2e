"""Image folders: ``PATH/train/<class>/...`` and ``PATH/test/<class>/...``.

Classes and files are found as :class:`torchvision.datasets.ImageFolder` finds them: the class
sub-folders sorted by name (label i is the i-th), and each class folder's images walked
recursively, in sorted order, keeping files with an image extension (others are ignored). A
model trained here therefore labels classes as one trained on ``ImageFolder(PATH/train)`` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import DataSource, DataSourceError, Layout
from ._images import image_channels, to_chw

# torchvision.datasets.folder.IMG_EXTENSIONS
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")


def _class_folders(source: DataSource, split: str) -> list[str]:
    folder = source.path / split
    if not folder.is_dir():
        raise DataSourceError(
            f"{source.where}: {folder} is missing; an image folder holds train/<class>/ and "
            "test/<class>/ sub-folders of images"
        )
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise DataSourceError(
            f"{source.where}: {folder} has no class sub-folders; put each class's images in "
            f"{folder}/<class>/"
        )
    return classes


def _images_of(folder: Path) -> list[str]:
    """The image files under ``folder``, in ImageFolder's order."""
    found: list[str] = []
    for root, _, names in sorted(os.walk(folder, followlinks=True)):
        found.extend(
            os.path.join(root, name) for name in sorted(names) if name.lower().endswith(EXTENSIONS)
        )
    return found


def scan(source: DataSource) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """The class names and, per split, the (file, label) pairs of the image folder ``source``;
    :class:`DataSourceError` for a missing split, classes that differ between the splits, or a
    class (or split) without images."""
    if not source.path.is_dir():
        raise DataSourceError(
            f"{source.where}.path: {source.path} is a file; an image folder is a directory with "
            "train/ and test/ sub-folders (or set source: npz or hdf5)"
        )
    classes = {split: _class_folders(source, split) for split in SPLITS}
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise DataSourceError(
            f"{source.where}: train/ and test/ must hold the same class sub-folders; only in "
            f"train/: {', '.join(only_train) or '-'}; only in test/: {', '.join(only_test) or '-'}"
        )
    samples: dict[str, list[tuple[str, int]]] = {}
    for split in SPLITS:
        samples[split] = []
        for label, name in enumerate(classes["train"]):
            files = _images_of(source.path / split / name)
            if not files:
                raise DataSourceError(
                    f"{source.where}: {source.path / split / name} holds no images (extensions "
                    f"{', '.join(EXTENSIONS)}); add some or remove the class from both splits"
                )
            samples[split].extend((f, label) for f in files)
    return classes["train"], samples


def _open(source: DataSource, file: str) -> Any:
    from PIL import Image

    try:
        image = Image.open(file)
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise DataSourceError(
            f"{source.where}: cannot read image {file} ({type(err).__name__}: {err}); "
            "replace or delete it"
        ) from None
    return image


def describe(source: DataSource) -> Layout:
    """Classes and split sizes by listing the folder; the shape from the config, else from the
    first training image (``read`` checks that the others agree)."""
    classes, samples = scan(source)
    channels, size = source.channels, source.size
    if channels is None or size is None:
        first = _open(source, samples["train"][0][0])
        channels = channels or image_channels(first)
        size = size or (first.height, first.width)
    return Layout(
        (channels, size[0], size[1]),
        tuple(classes),
        len(samples["train"]),
        len(samples["test"]),
    )


def files(source: DataSource) -> list[str]:
    _, samples = scan(source)
    return [file for split in SPLITS for file, _ in samples[split]]


def read(source: DataSource) -> dict[str, np.ndarray]:
    """Every image, converted and resized (:func:`modelkin.data_sources._images.to_chw`)."""
    from ..progress import progress

    layout = describe(source)
    _, samples = scan(source)
    channels, height, width = layout.shape
    out: dict[str, np.ndarray] = {}
    first_file = samples["train"][0][0]
    for split in SPLITS:
        pairs = samples[split]
        x = np.empty((len(pairs), channels, height, width), dtype=np.uint8)
        for i, (file, _) in enumerate(
            progress(pairs, desc=f"reading {source.name} {split}", unit="img")
        ):
            image = _open(source, file)
            if source.size is None and (image.height, image.width) != (height, width):
                raise DataSourceError(
                    f"{source.where}: {file} is {image.width}x{image.height} pixels but "
                    f"{first_file} is {width}x{height}; set size: [HEIGHT, WIDTH] to resize them "
                    "all"
                )
            x[i] = to_chw(image, channels, source.size)
        out[f"{split}_x"] = x
        out[f"{split}_y"] = np.array([label for _, label in pairs], dtype=np.int64)
    return out
