"""What a model brought from elsewhere expects of its input: size, channels, value range and
normalisation.

Every modelkin stage hands a model a float batch in [0, 1] at its data set's resolution. A
torchvision, timm or user model was trained on its own pipeline's input instead (often 224x224,
sometimes 0-255 pixel values, usually ImageNet statistics); :class:`Preprocessing` records that
pipeline so that :class:`modelkin.models.external.ExternalModel` can turn modelkin's input into
what the model was trained on. The checkpoint keeps it under the metadata key ``preprocessing``
(:meth:`Preprocessing.to_meta`), so a loaded model sees exactly what it saw when imported.

Torch-free: the command line and the workflow planner read it without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .normalisation import Normalisation

METADATA_KEY = "preprocessing"
# The value ranges a pipeline may scale [0, 1] images to, by their command-line spelling.
VALUE_RANGES: dict[str, tuple[float, float]] = {"0-1": (0.0, 1.0), "0-255": (0.0, 255.0)}
_META_KEYS = {"input_size", "channels", "value_range", "normalisation"}


class PreprocessingError(InputError):
    """Preprocessing settings that cannot be used (a bad size, channel count or value range)."""


@dataclass(frozen=True)
class Preprocessing:
    """The input pipeline a model was trained with.

    - ``input_size``: the (H, W) the model takes; images of another size are resized (bilinear)
      to it. None: the model runs on images as given (at its data set's resolution).
    - ``channels``: how many channels its images have (3 for RGB, 1 for grey).
    - ``value_range``: (0, 1) or (0, 255): the range the pipeline scales pixel values to before
      normalising them.
    - ``normalisation``: the mean and std subtracted and divided by *in that value range* (e.g.
      ImageNet's ``(0.485, 0.456, 0.406)`` for a (0, 1) pipeline, ``(123.675, 116.28, 103.53)``
      for a (0, 255) one), or none.
    """

    input_size: tuple[int, int] | None = None
    channels: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    normalisation: Normalisation = Normalisation.none()

    def __post_init__(self) -> None:
        if isinstance(self.channels, bool) or not isinstance(self.channels, int):
            raise PreprocessingError(f"channels must be a whole number, got {self.channels!r}")
        if self.channels < 1:
            raise PreprocessingError(f"channels must be at least 1, got {self.channels}")
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size
            ):
                raise PreprocessingError(
                    f"input size must be two positive whole numbers (height, width), got "
                    f"{self.input_size!r}; e.g. --input-size 224 224"
                )
            object.__setattr__(self, "input_size", size)
        value_range = tuple(float(v) for v in self.value_range)
        if value_range not in VALUE_RANGES.values():
            raise PreprocessingError(
                f"value range must be one of {', '.join(VALUE_RANGES)}, got {self.value_range!r}"
            )
        object.__setattr__(self, "value_range", value_range)
        if not isinstance(self.normalisation, Normalisation):
            raise PreprocessingError(
                f"normalisation must be a Normalisation, got {type(self.normalisation).__name__}"
            )
        try:
            self.normalisation.for_channels(self.channels)
        except InputError as err:
            raise PreprocessingError(
                f"{err} (preprocessing with {self.channels} channels)"
            ) from None

    @property
    def scale(self) -> float:
        """What [0, 1] images are multiplied by to reach the value range (1 or 255)."""
        return self.value_range[1]

    def in_shape(self, image_size: Sequence[int] | None) -> tuple[int, int, int]:
        """The model's input shape (C, H, W): ``input_size``, else the data set's ``image_size``."""
        size = self.input_size or (tuple(image_size) if image_size is not None else None)
        if size is None:
            raise PreprocessingError(
                "the model's input size is unknown: give it (--input-size H W, or "
                "Preprocessing(input_size=(H, W))), or bind the model to a data set whose image "
                "size modelkin knows"
            )
        height, width = (int(v) for v in size)
        return (self.channels, height, width)

    def to_meta(self) -> dict[str, Any]:
        """What a checkpoint records (JSON): ``{input_size: [H, W] | null, channels: C,
        value_range: [0, 1] | [0, 255], normalisation: "none" | {mean, std}}``."""
        return {
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "channels": self.channels,
            "value_range": [_plain(v) for v in self.value_range],
            "normalisation": self.normalisation.to_meta(),
        }

    @classmethod
    def from_meta(cls, value: Any) -> Preprocessing:
        """The inverse of :meth:`to_meta`."""
        if not isinstance(value, Mapping) or set(value) != _META_KEYS:
            raise PreprocessingError(
                f"checkpoint metadata {METADATA_KEY!r} must be a mapping with exactly the keys "
                f"{sorted(_META_KEYS)}, got {value!r}; re-import the model with "
                "`modelkin import-checkpoint`"
            )
        size = value["input_size"]
        return cls(
            input_size=tuple(size) if size is not None else None,
            channels=value["channels"],
            value_range=tuple(value["value_range"]),
            normalisation=Normalisation.from_meta(value["normalisation"]),
        )


def parse_value_range(text: str) -> tuple[float, float]:
    """A command line's ``0-1`` or ``0-255`` as a value range."""
    try:
        return VALUE_RANGES[text.strip()]
    except KeyError:
        raise PreprocessingError(
            f"unknown value range {text!r}; give one of {', '.join(VALUE_RANGES)}"
        ) from None


def _plain(value: float) -> int | float:
    """0.0 -> 0 and 255.0 -> 255 in the metadata (the ranges are whole numbers)."""
    return int(value) if float(value).is_integer() else value
