"""A model's own input normalisation: the mean and std it subtracts and divides by, or none.

Every modelkin model takes images in [0, 1] and normalises inside (``Classifier.input_mean`` and
``input_std``). Which statistics it uses belongs to the model, not to the data set it is run on: a
zoo model takes its data set's, a transfer keeps its parent's, an imported model takes what its
training pipeline used (``modelkin import-checkpoint --mean/--std`` or ``--no-normalisation``).

The checkpoint records it under the metadata key ``normalisation``: ``{"mean": [...], "std":
[...]}`` or ``"none"``. A checkpoint written before this key existed has none of it and keeps
loading with its data set's statistics. Torch-free (reading a model's buffers needs only the
model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..datasets import DatasetInfo

METADATA_KEY = "normalisation"
NONE = "none"


class NormalisationError(InputError):
    """Normalisation statistics that cannot be used (wrong length, std not positive)."""


@dataclass(frozen=True)
class Normalisation:
    """Per-channel ``mean`` and ``std`` (one value, or one per channel); ``(0,), (1,)`` is none."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mean or not self.std:
            raise NormalisationError("normalisation needs at least one mean and one std value")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise NormalisationError(f"normalisation values must be finite, got {self}")
        if any(s <= 0 for s in self.std):
            raise NormalisationError(f"every std must be positive, got {list(self.std)}")

    @classmethod
    def none(cls) -> Normalisation:
        """No normalisation: the model sees the images in [0, 1] as they are."""
        return cls((0.0,), (1.0,))

    @classmethod
    def of(cls, mean: Sequence[float], std: Sequence[float]) -> Normalisation:
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    @classmethod
    def of_dataset(cls, info: DatasetInfo) -> Normalisation:
        """The data set's statistics (what a model made for that data set uses by default)."""
        return cls.of(info.mean, info.std)

    @property
    def is_none(self) -> bool:
        return all(v == 0.0 for v in self.mean) and all(v == 1.0 for v in self.std)

    def for_channels(self, channels: int) -> Normalisation:
        """Checked against the model's input channels (each list has 1 or ``channels`` values)."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise NormalisationError(
                    f"normalisation {name} has {len(values)} values but the model takes "
                    f"{channels}-channel images; give 1 or {channels} values"
                )
        return self

    def to_meta(self) -> dict[str, list[float]] | str:
        """What a checkpoint records: ``"none"`` or ``{"mean": [...], "std": [...]}``."""
        if self.is_none:
            return NONE
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_meta(cls, value: Any) -> Normalisation:
        """The inverse of :meth:`to_meta`."""
        if value == NONE:
            return cls.none()
        if isinstance(value, Mapping) and set(value) == {"mean", "std"}:
            return cls.of(value["mean"], value["std"])
        raise NormalisationError(
            f"checkpoint metadata {METADATA_KEY!r} must be 'none' or {{mean: [...], std: [...]}}, "
            f"got {value!r}; re-import the checkpoint with `modelkin import-checkpoint` and "
            "--mean/--std or --no-normalisation"
        )


def checkpoint_normalisation(meta: Mapping[str, Any]) -> Normalisation:
    """The normalisation a checkpoint's metadata records; its data set's statistics for a
    checkpoint written before checkpoints recorded it."""
    if METADATA_KEY in meta:
        return Normalisation.from_meta(meta[METADATA_KEY])
    from ..datasets import get_dataset_info

    return Normalisation.of_dataset(get_dataset_info(meta["dataset"]))


def normalisation_of(model: Any) -> Normalisation | None:
    """The normalisation inside a modelkin model (its ``input_mean``/``input_std`` buffers);
    None for a model without them."""
    mean = getattr(model, "input_mean", None)
    std = getattr(model, "input_std", None)
    if mean is None or std is None:
        return None
    mean_values = _shortest(mean.detach().reshape(-1).cpu().numpy())
    std_values = _shortest(std.detach().reshape(-1).cpu().numpy())
    if len(set(mean_values)) == 1 and len(set(std_values)) == 1:
        mean_values, std_values = mean_values[:1], std_values[:1]
    return Normalisation.of(mean_values, std_values)


def _shortest(values: Any) -> list[float]:
    """float32 buffer values as the shortest decimals that give them back (0.3053, not
    0.30529999732971191)."""
    import numpy as np

    return [float(np.format_float_positional(np.float32(v), unique=True)) for v in values]
