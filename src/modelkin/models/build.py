"""Building a zoo architecture for a data set, optionally from a seed."""

from __future__ import annotations

import torch

from ..datasets import DatasetInfo, get_dataset_info
from . import architectures
from .architectures import Classifier
from .normalisation import Normalisation
from .registry import get_architecture


def build_model(
    arch: str,
    dataset: str | DatasetInfo,
    num_classes: int | None = None,
    normalisation: Normalisation | None = None,
) -> Classifier:
    """Instantiate ``arch`` for data set ``dataset`` (weights drawn from the current torch RNG).

    ``normalisation``: the statistics the model normalises its inputs with (None: the data set's;
    ``Normalisation.none()``: none).
    """
    info = dataset if isinstance(dataset, DatasetInfo) else get_dataset_info(dataset)
    norm = (normalisation or Normalisation.of_dataset(info)).for_channels(info.shape[0])
    entry = get_architecture(arch)
    factory = getattr(architectures, entry.builder)
    return factory(
        info.shape, num_classes or info.num_classes, norm.mean, norm.std, **entry.options
    )


def seeded_model(
    arch: str,
    dataset: str | DatasetInfo,
    init_seed: int,
    num_classes: int | None = None,
    normalisation: Normalisation | None = None,
) -> Classifier:
    """Build ``arch`` with weights drawn from ``init_seed`` only (the global RNG is restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return build_model(arch, dataset, num_classes, normalisation)
