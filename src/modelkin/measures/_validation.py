"""Input checking shared by every measure.

Every measure funnels its inputs through here so that the error messages, the
dtype (float64) and the handling of degenerate data are the same everywhere.
"""

from __future__ import annotations

import numbers
from typing import Any, SupportsFloat

import numpy as np

from ..errors import InputError


class DegenerateCCAWarning(UserWarning):
    """CCA was asked for more canonical directions than the samples can support.

    With ``rank(X) + rank(Y) > n`` the two column spaces must intersect, so some
    canonical correlations are exactly 1 whatever the data: the value is finite
    but says more about the sample size than about the representations.
    """


def as_array(a: Any, name: str) -> np.ndarray:
    """Any array-like (numpy, torch, nested lists) as a finite float64 numpy array."""
    # Duck-typed so that importing the measures never imports torch.
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().double().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values (shape {arr.shape})")
    return arr


def as_matrix(a: Any, name: str) -> np.ndarray:
    """A 2-D (n_samples, n_features) float64 matrix, or an InputError saying how to get one."""
    arr = as_array(a, name)
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D (n_samples, n_features) matrix, got shape {arr.shape}; "
            "convert convolutional activations with to_matrix(acts, mode='flatten' or 'spatial')"
        )
    if arr.shape[1] == 0:
        raise InputError(f"{name} has no features (shape {arr.shape})")
    return arr


def flatten_samples(a: Any, name: str) -> np.ndarray:
    """(n, ...) -> (n, prod(...)), the references' per-sample flattening."""
    arr = as_array(a, name)
    if arr.ndim < 2:
        raise InputError(
            f"{name} must have a sample axis and at least one feature axis, got shape {arr.shape}"
        )
    return arr.reshape(arr.shape[0], -1)


def check_pair(X: np.ndarray, Y: np.ndarray, min_samples: int = 2) -> None:
    if X.shape[0] != Y.shape[0]:
        raise InputError(
            "X and Y must have the same number of samples (rows): "
            f"X has shape {X.shape}, Y has shape {Y.shape}"
        )
    if X.shape[0] < min_samples:
        raise InputError(
            f"need at least {min_samples} samples, got X shape {X.shape}, Y shape {Y.shape}"
        )


def center(X: np.ndarray) -> np.ndarray:
    """Column-centred copy; constant columns become exactly zero.

    ``x - mean(x)`` of a constant column is rounding noise of order eps*|x|, which
    for large offsets is not negligible next to the real signal and would show
    up as a spurious direction in SVD-based measures. Zeroing it removes that.
    """
    Xc = X - X.mean(axis=0, keepdims=True)
    constant = np.ptp(X, axis=0) == 0
    if constant.any():
        Xc[:, constant] = 0.0
    return Xc


def unit_max(X: np.ndarray) -> np.ndarray:
    """X / max|X| (unchanged if all zero).

    For measures that are scale invariant anyway: squares and norms of
    activations near 1e+-200 would otherwise overflow or underflow float64.
    """
    peak = np.max(np.abs(X)) if X.size else 0.0
    return X / peak if peak > 0.0 else X


def orthonormal_basis(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of the column space of X and its singular values.

    SVD rather than QR: QR keeps null directions of a rank-deficient matrix as
    arbitrary columns, which would inflate CCA; the SVD lets us drop them with
    numpy's ``matrix_rank`` tolerance.
    """
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return U[:, :0], s[:0]
    tol = s[0] * max(X.shape) * np.finfo(np.float64).eps
    r = int(np.sum(s > tol))
    return U[:, :r], s[:r]


def check_positive_float(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(float(value))
        or value <= 0
    ):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (0 < float(value) <= 1)
    ):
        raise InputError(f"{name} must satisfy 0 < {name} <= 1, got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def finite(value: SupportsFloat, measure: str) -> float:
    """Last line of defence: a measure never hands back NaN or inf silently."""
    value = float(value)
    if not np.isfinite(value):
        raise InputError(
            f"{measure} produced a non-finite value ({value}); the inputs are degenerate"
        )
    return value
