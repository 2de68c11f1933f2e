"""Element-wise comparison of representations that live in the same coordinates.

Only meaningful when both activations index the same units (e.g. a stitching
layer's output against the genuine activation it imitates), which is why it
requires equal shapes instead of aligning anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import as_array, as_matrix, finite


def _same_shape(X: np.ndarray, Y: np.ndarray, measure: str) -> None:
    if X.shape != Y.shape:
        raise InputError(
            f"{measure} needs X and Y of the same shape: X has shape {X.shape}, Y has shape "
            f"{Y.shape}"
        )
    if X.size == 0:
        raise InputError(f"{measure}: X and Y are empty (shape {X.shape})")


def mean_squared_error(X: Any, Y: Any) -> float:
    """``mean((X - Y)^2)`` over all entries of two equal-shape matrices; 0 iff identical.

    This is what the reference codebases report as "l2": a mean squared error,
    not the Euclidean norm ``||X - Y||``. Invariant to nothing.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    _same_shape(X, Y, "mean_squared_error")
    return finite(np.mean((X - Y) ** 2), "mean_squared_error")


def reference_l2(X: Any, Y: Any) -> float:
    """The references' "l2": ``mean_squared_error`` on arrays of any (equal) shape, e.g. NCHW."""
    X, Y = as_array(X, "X"), as_array(Y, "Y")
    _same_shape(X, Y, "reference_l2")
    return finite(np.mean((X - Y) ** 2), "reference_l2")
