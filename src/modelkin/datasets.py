"""The data set registry: each data set by name with its shape,
classes, normalisation, augmentation, default attack budget and source.
Torch-free, so that planning the workflow does not import torch.

Preparing and loading data sets is :mod:`modelkin.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Augmentation:
    """A training augmentation: each image shifted by a random whole number of pixels in
    [-max_shift, max_shift] along each axis (the uncovered border filled with zeros: random
    crops of the zero-padded image), and mirrored left-right with probability 1/2 if ``flip``."""

    name: str
    max_shift: int
    flip: bool
    description: str


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in [
        Augmentation("none", 0, False, "no augmentation: `augment: true` is an error"),
        Augmentation(
            "shift",
            2,
            False,
            "random shifts by up to 2 pixels (half a pixel of the 8x8 originals of digits); no "
            "flip, which would change what a digit means",
        ),
        Augmentation(
            "crop",
            4,
            False,
            "random 4-pixel-padded crops, no flip (SVHN: a mirrored digit is another sign)",
        ),
        Augmentation("crop_flip", 4, True, "random 4-pixel-padded crops and horizontal flips"),
    ]
}


class AugmentationError(InputError):
    """A recipe that asks for augmentation on a data set that has none."""


def check_augmentation(info: DatasetInfo, augment: bool, where: str = "the recipe") -> None:
    """``augment: true`` on a data set without an augmentation is an error, not a no-op."""
    if augment and info.augmentation == "none":
        with_one = [name for name, d in DATASETS.items() if d.augmentation != "none"]
        raise AugmentationError(
            f"{where} sets augment: true, but data set {info.name!r} has no training augmentation "
            f"(augmentation 'none' in modelkin.datasets); set augment: false, or use a data set "
            f"that has one ({', '.join(with_one)})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]  # (channels, height, width) of the prepared images
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str  # a key of AUGMENTATIONS
    default_epsilon: float  # L-inf budget in [0, 1] pixel units used when a recipe says null
    # "sklearn" (bundled, offline), "torchvision" (downloaded by the user), or the kind of a user
    # data set of the config's ``datasets:`` section (modelkin.data_sources.SOURCES)
    source: str
    description: str = ""
    class_names: tuple[str, ...] = field(default_factory=tuple)
    train_size: int = 0  # images in the prepared train split (0: unknown)
    test_size: int = 0  # images in the prepared test split (0: unknown)

    def split_size(self, split: str) -> int:
        """Images in the prepared ``split`` (``train`` or ``test``); 0 when unknown."""
        return {"train": self.train_size, "test": self.test_size}.get(split, 0)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "digits",
            (1, 32, 32),
            10,
            (0.3053,),
            (0.3236,),
            "shift",
            0.1,
            "sklearn",
            "scikit-learn's bundled 8x8 handwritten digits (1,797 images) "
            "upsampled bilinearly to 32x32; fixed stratified split of "
            "1,200 train / 597 test images (seed 0). Needs no network.",
            tuple(str(i) for i in range(10)),
            train_size=1200,
            test_size=597,
        ),
        DatasetInfo(
            "mnist",
            (1, 28, 28),
            10,
            (0.1307,),
            (0.3081,),
            "none",
            0.3,
            "torchvision",
            "MNIST",
            train_size=60000,
            test_size=10000,
        ),
        DatasetInfo(
            "fashion",
            (1, 28, 28),
            10,
            (0.2860,),
            (0.3530,),
            "none",
            0.1,
            "torchvision",
            "Fashion-MNIST",
            train_size=60000,
            test_size=10000,
        ),
        DatasetInfo(
            "cifar10",
            (3, 32, 32),
            10,
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            "crop_flip",
            8 / 255,
            "torchvision",
            "CIFAR-10",
            train_size=50000,
            test_size=10000,
        ),
        DatasetInfo(
            "cifar100",
            (3, 32, 32),
            100,
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
            "crop_flip",
            8 / 255,
            "torchvision",
            "CIFAR-100",
            train_size=50000,
            test_size=10000,
        ),
        DatasetInfo(
            "svhn",
            (3, 32, 32),
            10,
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            "crop",
            8 / 255,
            "torchvision",
            "SVHN (train and test splits; extra is not used)",
            train_size=73257,
            test_size=26032,
        ),
    ]
}

# A second offline data set: the digits in negative, with the digits' split, classes and spread.
DATASETS["digits_negative"] = replace(
    DATASETS["digits"],
    name="digits_negative",
    mean=(round(1 - DATASETS["digits"].mean[0], 4),),
    description="the digits data set's images in negative (255 - x: white digits become black "
    "on white), same split and labels: a second offline data set, e.g. to transfer a digits "
    "model to. Needs no network.",
)
DIGITS_TRAIN_SIZE = DATASETS["digits"].train_size

# The data sets modelkin knows by itself; the config's ``datasets:`` section adds users' own to
# DATASETS (modelkin.data_sources.register_config_datasets), never under one of these names.
BUILTIN_DATASETS: frozenset[str] = frozenset(DATASETS)


def get_augmentation(name: str) -> Augmentation:
    try:
        return AUGMENTATIONS[name]
    except KeyError:
        raise InputError(
            f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}"
        ) from None


def get_dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, or define it in the "
            "config's datasets: section (a job or command sees it once that config is loaded)"
        ) from None


def prepared_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / "data" / f"{name}.safetensors"
