"""Data sets by name: shapes, classes, normalisation, prepared splits and deterministic batches.

Every data set is prepared once into a single safetensors file of uint8 images
(N, C, H, W) and int64 labels for both splits. Models take images in [0, 1] and
normalise internally, so adversarial budgets are in pixel units and "0 in
normalised space" (Zest's hidden superpixels, ModelGiF's baseline) is the
data set's mean colour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import (
    DIGITS_TRAIN_SIZE,
    DatasetInfo,
    check_augmentation,
    get_augmentation,
    get_dataset_info,
)
from .errors import InputError, MissingFileError, ModelkinError
from .io import save_safetensors

# ---------------------------------------------------------------------------------------------
# Preparation


def prepare_dataset(
    name: str, output: str | Path, data_root: str | Path = "data", download: bool = True
) -> Path:
    """Write ``output`` (safetensors with train_x, train_y, test_x, test_y) for data set
    ``name``: a built-in one, or a user data set of the config's ``datasets:`` section (registered
    by :func:`modelkin.data_sources.register_config_datasets`, read from its own files).

    Everything is read and checked before the file is written (atomically), so a bad image or
    label leaves no prepared file behind."""
    from .data_sources import config_source, read_source

    info = get_dataset_info(name)
    source = config_source(name)
    if source is not None:
        arrays = read_source(source)
    elif info.source == "sklearn":
        arrays = _digits_arrays()
        if name == "digits_negative":
            arrays = {k: 255 - v if k.endswith("_x") else v for k, v in arrays.items()}
    else:
        arrays = _torchvision_arrays(name, Path(data_root), download)
    for split in ("train", "test"):
        x = arrays[f"{split}_x"]
        if tuple(x.shape[1:]) != info.shape:
            raise InputError(
                f"{name} {split} images have shape {tuple(x.shape[1:])}, registry says "
                f"{info.shape}"
                + (" (its files changed since the config was loaded: run again)" if source else "")
            )
    tensors = {k: torch.as_tensor(v).contiguous() for k, v in arrays.items()}
    metadata = {"dataset": name, "shape": "x: (N, C, H, W) uint8, y: (N,) int64"}
    return save_safetensors(tensors, output, metadata)


def _digits_arrays() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = (
        torch.tensor(digits.images, dtype=torch.float64).unsqueeze(1) / 16.0
    )  # (N, 1, 8, 8) in [0, 1]
    large = torch.nn.functional.interpolate(
        small, size=(32, 32), mode="bilinear", align_corners=False
    )
    images = (large.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, train_size=DIGITS_TRAIN_SIZE, random_state=0, stratify=labels
    )
    train_idx.sort()
    test_idx.sort()
    return {
        "train_x": images[train_idx],
        "train_y": labels[train_idx],
        "test_x": images[test_idx],
        "test_y": labels[test_idx],
    }


def _torchvision_arrays(name: str, root: Path, download: bool) -> dict[str, np.ndarray]:
    import torchvision.datasets as tvd

    constructors = {
        "mnist": lambda train: tvd.MNIST(root, train=train, download=download),
        "fashion": lambda train: tvd.FashionMNIST(root, train=train, download=download),
        "cifar10": lambda train: tvd.CIFAR10(root, train=train, download=download),
        "cifar100": lambda train: tvd.CIFAR100(root, train=train, download=download),
        "svhn": lambda train: tvd.SVHN(
            root / "svhn", split="train" if train else "test", download=download
        ),
    }
    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = constructors[name](train)
        except Exception as err:  # network errors surface as URLError, RuntimeError, OSError ...
            raise MissingFileError(
                f"cannot load {name} ({type(err).__name__}: {err}). Without network access, "
                f"download the torchvision '{name}' files on a connected machine and put them "
                f"under {root.resolve()} (the layout torchvision.datasets expects), then re-run."
            ) from None
        if name == "svhn":
            x, y = np.asarray(ds.data), np.asarray(ds.labels)
        else:
            x, y = np.asarray(ds.data), np.asarray(ds.targets)
        if x.ndim == 3:  # MNIST-like (N, H, W)
            x = x[:, None]
        elif x.shape[-1] == 3:  # CIFAR (N, H, W, C)
            x = x.transpose(0, 3, 1, 2)
        out[f"{split}_x"] = np.ascontiguousarray(x, dtype=np.uint8)
        out[f"{split}_y"] = y.astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class Split:
    """One split in memory: images as float32 in [0, 1], labels as int64."""

    x: torch.Tensor
    y: torch.Tensor
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> Split:
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index], self.info)

    def to(self, device) -> Split:
        return Split(self.x.to(device), self.y.to(device), self.info)


def split_size(path: str | Path, split: str) -> int:
    """How many images the ``split`` of a prepared data set holds, without loading them."""
    with _open_prepared(path, split) as handle:
        return int(handle.get_slice(f"{split}_y").get_shape()[0])


@contextlib.contextmanager
def _open_prepared(path: str | Path, split: str) -> Iterator[Any]:
    """The prepared data set file open for reading, with one clear error for a bad split, a
    missing file or an unreadable one."""
    from safetensors import safe_open

    path = Path(path)
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', not {split!r}")
    if not path.exists():
        raise MissingFileError(
            f"prepared data set {path} does not exist; run `snakemake {path}` or "
            "`modelkin prepare-data NAME`"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except ModelkinError:
        raise
    except Exception as err:
        raise InputError(
            f"{path} is not a readable prepared data set ({err}); delete it and prepare it again"
        ) from err


def load_split(path: str | Path, split: str, limit: int | None = None) -> Split:
    """Load the ``train`` or ``test`` split of a prepared data set file."""
    path = Path(path)
    with _open_prepared(path, split) as handle:
        meta = handle.metadata() or {}
        x = handle.get_tensor(f"{split}_x")
        y = handle.get_tensor(f"{split}_y")
    info = get_dataset_info(meta.get("dataset", path.stem))
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1 image (or None: all), got {limit}")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return Split(x.float().div_(255.0), y.long(), info)


def relabel_classes(split: Split, classes: list[int]) -> Split:
    """The images of ``classes`` only, labelled by their position in ``classes`` (0..k-1)."""
    classes = [int(c) for c in classes]
    top = int(split.y.max()) + 1 if len(split) else 0
    missing = [c for c in classes if not (split.y == c).any()]
    if missing:
        raise InputError(
            f"class(es) {missing} have no images in this {split.info.name} split "
            f"(classes 0..{top - 1})"
        )
    mapping = torch.full((max(top, max(classes) + 1),), -1, dtype=torch.long)
    mapping[torch.as_tensor(classes)] = torch.arange(len(classes))
    keep = torch.nonzero(mapping[split.y] >= 0).flatten()
    return Split(split.x[keep], mapping[split.y[keep]], split.info)


def without_class(split: Split, forget_class: int) -> Split:
    """``split`` without the images of ``forget_class``."""
    return split.subset(torch.nonzero(split.y != int(forget_class)).flatten())


# ---------------------------------------------------------------------------------------------
# Batches


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    augment: bool = False,
    device: torch.device | str = "cpu",
):
    """Yield (x, y) batches on ``device``; order and augmentation depend only on ``generator``.

    ``augment``: the data set's training augmentation (an error for a data set without one).
    """
    check_augmentation(split.info, augment)
    n = len(split)
    if shuffle:
        if generator is None:
            raise InputError(
                "shuffle=True needs a seeded generator so that the batch order is reproducible"
            )
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        x, y = split.x[index], split.y[index]
        if augment:
            x = augment_batch(x, split.info.augmentation, generator)
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """The augmentation ``kind`` (:data:`modelkin.datasets.AUGMENTATIONS`) of a batch, seeded:
    each image shifted by a random number of pixels in [-max_shift, max_shift] per axis (a random
    crop of the zero-padded image), then mirrored left-right with probability 1/2 if it flips."""
    augmentation = get_augmentation(kind)
    if augmentation.max_shift == 0 and not augmentation.flip:
        raise InputError(
            f"augmentation {kind!r} does nothing; check the data set (modelkin.datasets.DATASETS) "
            "before augmenting"
        )
    n, _, h, w = x.shape
    padding = augmentation.max_shift
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    if augmentation.flip:
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


# ---------------------------------------------------------------------------------------------
# Planted features (ModelDiff's case study: a spurious patch added to some images of one class)


@dataclass(frozen=True)
class PlantedPatch:
    target_class: int
    fraction: float = 0.5
    size: int = 4
    color: tuple[float, ...] = (1.0,)
    position: tuple[int, int] = (0, 0)  # top-left corner (row, col)
    seed: int = 0

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> PlantedPatch:
        """The patch a config entry describes (``planted_patch`` of a training algorithm,
        ``modeldiff.counterfactual.patch``).

        YAML and JSON give ``color`` and ``position`` as lists; the patch holds tuples, so that it
        stays hashable and compares equal however it was written.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(
                f"a planted patch has no setting {', '.join(map(repr, unknown))}; "
                f"its settings are {', '.join(sorted(known))}"
            )
        if "target_class" not in settings:
            raise InputError("a planted patch needs its target_class")
        values = dict(settings)
        for key in ("color", "position"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Return a copy of ``x`` (N, C, H, W) with the patch drawn on every image."""
        self.check_fits(tuple(x.shape[1:]))
        out = x.clone()
        r, c = self.position
        color = torch.as_tensor(self.color, dtype=x.dtype, device=x.device)
        if color.numel() == 1:
            color = color.expand(x.shape[1])
        out[:, :, r : r + self.size, c : c + self.size] = color[None, :, None, None]
        return out

    def chosen_indices(self, y: torch.Tensor) -> torch.Tensor:
        """Indices of the training images that get the patch (a seeded fraction of the target
        class)."""
        candidates = torch.nonzero(y == self.target_class).flatten()
        g = torch.Generator().manual_seed(self.seed)
        k = int(round(self.fraction * len(candidates)))
        return candidates[torch.randperm(len(candidates), generator=g)[:k]].sort().values

    def check_fits(self, shape: tuple[int, ...], where: str = "the planted patch") -> None:
        """The patch lies inside images of ``shape`` (C, H, W) with a colour per channel (or one
        for all): a patch outside the image would silently change nothing."""
        channels, height, width = shape
        r, c = self.position
        if self.size < 1 or r + self.size > height or c + self.size > width:
            raise InputError(
                f"{where}: a {self.size}x{self.size} patch at (row {r}, column {c}) does not fit "
                f"in {height}x{width} images; choose a smaller size or position"
            )
        if len(self.color) not in (1, channels):
            raise InputError(
                f"{where}: color has {len(self.color)} values but the images have {channels} "
                f"channels; give 1 or {channels}"
            )

    def plant(self, split: Split) -> tuple[Split, torch.Tensor]:
        """``split`` with the patch on the chosen images of the target class, and their indices."""
        self.check_fits(tuple(split.x.shape[1:]))  # also when no image is chosen
        if not bool((split.y == self.target_class).any()):
            raise InputError(
                f"the planted patch's target_class {self.target_class} has no images in this "
                f"{split.info.name} split (classes 0..{split.info.num_classes - 1}); the patch "
                "would change nothing"
            )
        index = self.chosen_indices(split.y)
        x = split.x.clone()
        x[index] = self.apply(split.x[index])
        return Split(x, split.y.clone(), split.info), index
