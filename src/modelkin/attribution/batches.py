"""TRAK's data: a Split, an (x, y) pair of tensors, or a re-iterable of (x, y) batches (a
DataLoader)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .settings import AttributionError


def batch_source(
    data, batch_size: int
) -> tuple[Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]], int | None]:
    """A function returning a fresh iterator of (x, y) batches, and the number of examples if
    known."""
    from ..data import Split

    if isinstance(data, Split):
        x, y = data.x, data.y
    elif (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
    else:
        _check_loader(data)
        size = None
        dataset = getattr(data, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            size = len(dataset)

        def loader_batches():
            for batch in data:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise AttributionError(
                        f"each batch must be (images, labels), got {type(batch).__name__}; wrap "
                        "the data set so that it yields (x, y) pairs"
                    )
                yield batch[0], batch[1]

        return loader_batches, size
    if len(x) != len(y):
        raise AttributionError(f"{len(x)} images but {len(y)} labels")

    def tensor_batches():
        for start in range(0, len(y), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

    return tensor_batches, len(y)


def _check_loader(loader) -> None:
    if iter(loader) is loader:
        raise AttributionError(
            "TRAK reads the data more than once, but got a one-shot iterator; pass a DataLoader, a "
            "list of (x, y) batches, a modelkin Split or an (x, y) pair of tensors"
        )
    sampler = getattr(loader, "sampler", None)
    if sampler is not None and isinstance(sampler, torch.utils.data.RandomSampler):
        raise AttributionError(
            "the data loader shuffles (RandomSampler): scores would be attributed to the wrong "
            "examples; build it with shuffle=False and without augmentation"
        )


def count_examples(batches: Callable[[], Iterator]) -> int:
    return sum(len(y) for _, y in batches())
