"""Conversion shared by every source: PIL images or uint8 arrays to uint8 (C, H, W) of the
configured channels and size.

PIL does both steps for every source (``convert`` to L or RGB, then a bilinear ``resize``), so
that an image folder and the same pixels in an NPZ file prepare to the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODES = {1: "L", 3: "RGB"}


def image_channels(image: Any) -> int:
    """1 for a greyscale PIL image (with or without alpha), else 3."""
    bands = image.getbands()
    return 1 if bands[0] in ("L", "1", "I", "F") and len(bands) <= 2 else 3


def to_chw(image: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """The PIL ``image`` converted to ``channels`` (L or RGB) and resized (bilinear) to ``size``
    (height, width; None: kept), as uint8 (C, H, W)."""
    from PIL import Image

    image = image.convert(MODES[channels])
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def convert_array(
    images: np.ndarray, channels: int | None, size: tuple[int, int] | None, desc: str = ""
) -> np.ndarray:
    """uint8 ``images`` (N, C, H, W) with C in (1, 3) converted and resized as :func:`to_chw`
    does; returned as they are when nothing changes (arrays round-trip exactly)."""
    from PIL import Image

    from ..progress import progress

    n, c, h, w = images.shape
    target_channels = channels or c
    if target_channels == c and (size is None or tuple(size) == (h, w)):
        return np.ascontiguousarray(images)
    height, width = size or (h, w)
    out = np.empty((n, target_channels, height, width), dtype=np.uint8)
    for i in progress(range(n), desc=desc or "converting images", unit="img"):
        pixels = images[i, 0] if c == 1 else images[i].transpose(1, 2, 0)
        out[i] = to_chw(Image.fromarray(pixels, MODES[c]), target_channels, size)
    return out
