"""Turning layer activations into the (n_samples, n_features) matrices the measures take."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import as_array

MODES = ("flatten", "spatial")


def to_matrix(acts: Any, mode: str | None = None) -> np.ndarray:
    """Activations as a float64 (samples, features) matrix.

    ``acts`` is (n, d) or channels-first (n, c, *spatial), e.g. NCHW.

    * ``mode="flatten"``: one sample per input, (n, c*h*w), features in
      C order (the same as ``tensor.flatten(1)``). This is what the reference
      codebases compare.
    * ``mode="spatial"``: every spatial position is a sample, (n*h*w, c). It
      compares channels as features shared across positions, as a 1x1-conv
      stitching layer sees them; both inputs then need the same spatial size.

    There is no default for inputs with spatial axes: the two modes answer
    different questions and can rank layer pairs differently, so the caller
    has to choose. 2-D input is returned unchanged (as float64) for either mode.
    """
    arr = as_array(acts, "acts")
    if mode is not None and mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if arr.ndim == 2:
        return arr
    if arr.ndim < 2:
        raise InputError(f"acts must be (n, d) or (n, c, *spatial), got shape {arr.shape}")
    if mode is None:
        raise InputError(
            f"acts has shape {arr.shape} (n, c, *spatial); pass mode='flatten' for (n, c*h*w) "
            "or mode='spatial' for (n*h*w, c) explicitly"
        )
    if mode == "flatten":
        return arr.reshape(arr.shape[0], -1)
    # Channels last first so that each row is one (sample, position) pair.
    return np.moveaxis(arr, 1, -1).reshape(-1, arr.shape[1])
