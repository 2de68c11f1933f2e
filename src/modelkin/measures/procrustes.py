"""Orthogonal Procrustes shape distance (Williams et al. 2021, "Generalized shape metrics").

Convention: the *distance itself*, not its square,

    d(X, Y) = min_Q ||X~ - Y~ Q||_F = sqrt(2 - 2 ||X~^T Y~||_*),   Q orthogonal,

where X~, Y~ are column-centred and scaled to unit Frobenius norm, so
0 <= d <= sqrt(2). The square is not a metric; d is (it is the quotient
distance on the unit sphere modulo rotations), so the triangle inequality holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import as_matrix, center, check_pair, finite, unit_max


def _normalised(X: np.ndarray, name: str) -> np.ndarray:
    Xc = unit_max(center(X))
    norm = np.linalg.norm(Xc)
    if norm == 0.0:
        raise InputError(
            f"procrustes_distance: {name} is constant across samples; its shape cannot be "
            "normalised"
        )
    Xc /= norm
    n, p = Xc.shape
    if p > n:
        # X V = U S is X rotated within its own feature space, so the distance is
        # unchanged, and everything after this is O(n^3) instead of O(p^3).
        U, s, _ = np.linalg.svd(Xc, full_matrices=False)
        Xc = U * s
    return Xc


def _pad(X: np.ndarray, p: int) -> np.ndarray:
    # Embedding the narrower representation with zero columns keeps every
    # pairwise distance the same whatever width they are padded to.
    return X if X.shape[1] == p else np.pad(X, ((0, 0), (0, p - X.shape[1])))


def procrustes_distance(X: Any, Y: Any) -> float:
    """Orthogonal Procrustes distance between centred, unit-norm X and Y, in [0, sqrt(2)].

    0 exactly when Y is a rotated/reflected, translated, rescaled copy of X.
    A metric (symmetric, triangle inequality). Feature counts may differ: the
    narrower side is zero-padded.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Xn, Yn = _normalised(X, "X"), _normalised(Y, "Y")
    p = max(Xn.shape[1], Yn.shape[1])
    Xn, Yn = _pad(Xn, p), _pad(Yn, p)
    U, _, Vt = np.linalg.svd(Yn.T @ Xn)
    # The residual of the optimal rotation, rather than sqrt(2 - 2 * nuclear
    # norm): that difference cancels catastrophically for near-identical inputs.
    return finite(np.linalg.norm(Xn - Yn @ (U @ Vt)), "procrustes_distance")
