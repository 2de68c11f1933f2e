"""Model zoo, named layers and checkpoints."""

from __future__ import annotations

import torch

from ..data import DatasetInfo, get_dataset_info
from .architectures import ARCHITECTURES, Classifier


def build_model(
    arch: str, dataset: str | DatasetInfo, num_classes: int | None = None
) -> Classifier:
    """Instantiate architecture ``arch`` for data set ``dataset`` (weights from the current torch RNG)."""
    info = dataset if isinstance(dataset, DatasetInfo) else get_dataset_info(dataset)
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return factory(info.shape, num_classes or info.num_classes, info.mean, info.std)


def seeded_model(
    arch: str, dataset: str | DatasetInfo, init_seed: int, num_classes: int | None = None
) -> Classifier:
    """Build ``arch`` with weights drawn from ``init_seed`` only (the global RNG state is restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return build_model(arch, dataset, num_classes)


__all__ = ["ARCHITECTURES", "Classifier", "build_model", "seeded_model"]
