"""Offline example data for ``datasets:``: the built-in ``digits`` data set written out as an
image folder (``OUT/train/<digit>/*.png``, ``OUT/test/<digit>/*.png``).

The images are the prepared split of ``digits`` (32x32, 1,200 train / 597 test), so a user can
try an image-folder data set without a network, and check that preparing the folder gives back
the built-in data set's pixels.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from . import DataSourceError


def write_digits_image_folder(out: str | Path, channels: int = 3) -> Path:
    """Write the prepared ``digits`` splits as PNGs under ``out`` (greyscale L for ``channels``
    1, the grey value in R, G and B for 3); :class:`DataSourceError` if ``out`` already holds
    files. Written under a temporary name and renamed, so an interrupted export leaves nothing
    that looks complete."""
    from PIL import Image

    from ..data import _digits_arrays
    from ..progress import progress

    if channels not in (1, 3):
        raise DataSourceError(f"channels must be 1 or 3, not {channels}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataSourceError(f"{out} already exists and is not empty; remove it or choose another")
    arrays = _digits_arrays()
    tmp = out.with_name(f".{out.name}.part-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for split in ("train", "test"):
            x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
            for i in progress(range(len(y)), desc=f"writing digits {split}", unit="img"):
                folder = tmp / split / str(int(y[i]))
                folder.mkdir(parents=True, exist_ok=True)
                grey = x[i, 0]
                pixels = grey if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
                Image.fromarray(pixels, "L" if channels == 1 else "RGB").save(
                    folder / f"{i:04d}.png"
                )
        if out.exists():
            out.rmdir()  # empty (checked above)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
