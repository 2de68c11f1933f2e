"""The zoo's architectures by name (torch-free): which class builds each, with which options.

Every architecture adapts to a data set's channels, image size and classes. Adding one: a class
in :mod:`modelkin.models.architectures` and an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: str  # a class of modelkin.models.architectures
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _resnet20(width: int) -> Architecture:
    widths = (16 * width, 32 * width, 64 * width)
    return Architecture(
        f"resnet20_w{width}",
        "CifarResNet",
        {"blocks": (3, 3, 3), "widths": widths, "shortcut": "A"},
        f"CIFAR ResNet-20 at width x{width} (option-A shortcuts)",
    )


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("mlp", "MLP", description="two hidden layers of 256 units"),
        Architecture("lenet", "LeNet", description="LeNet-5 (needs at least 16x16 pixels)"),
        Architecture("tiny10", "Tiny10", description="the stitching papers' small CNN"),
        Architecture("tiny10_nobn", "Tiny10", {"batch_norm": False}, "Tiny10 without batch norm"),
        *[_resnet20(k) for k in range(1, 6)],
        Architecture(
            "resnet18",
            "CifarResNet",
            {"blocks": (2, 2, 2, 2), "widths": (64, 128, 256, 512), "shortcut": "B"},
            "ResNet-18 with a CIFAR stem",
        ),
        Architecture(
            "resnet34",
            "CifarResNet",
            {"blocks": (3, 4, 6, 3), "widths": (64, 128, 256, 512), "shortcut": "B"},
            "ResNet-34 with a CIFAR stem",
        ),
        Architecture("vgg11", "VGG", {"config": "vgg11"}, "VGG-11 with batch norm"),
        Architecture("vgg16", "VGG", {"config": "vgg16"}, "VGG-16 with batch norm"),
    ]
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InputError(
            f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
