"""Minibatch CKA (Nguyen, Raghu & Kornblith 2021): linear CKA from the unbiased HSIC of minibatches.

For minibatches i = 1..k of b >= 4 inputs with linear Gram matrices K_i = X_i X_iᵀ and
L_i = Y_i Y_iᵀ,

    CKA_minibatch = (1/k Σ_i HSIC_1(K_i, L_i))
                    / sqrt(1/k Σ_i HSIC_1(K_i, K_i) · 1/k Σ_i HSIC_1(L_i, L_i)),

with HSIC_1 the unbiased estimator of Song et al. (2012), computed here through U-centring
(<U(K), U(L)> = b(b-3) HSIC_1(K, L); the same estimator as
:func:`~modelkin.measures.debiased_linear_cka`, which equals this with one batch of all inputs).
Because the estimator is unbiased per batch, the value does not drift with the batch size as a
biased HSIC would, and it needs only one b × b Gram matrix per layer at a time: it is what
modelkin computes on probe sets whose activations do not fit in memory
(:mod:`modelkin.similarity.streaming`). It is invariant to orthogonal maps, isotropic scaling and
translation of either input, like linear CKA, and lies in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import as_matrix, check_pair, finite

DEFAULT_BATCH_SIZE = 256


def u_centre(gram: np.ndarray) -> np.ndarray:
    """U-centring (Szekely & Rizzo 2014) of a b × b Gram matrix, b >= 4, in float64."""
    b = gram.shape[0]
    if b < 4:
        raise InputError(f"the unbiased HSIC needs at least 4 inputs per batch, got {b}")
    k = np.array(gram, dtype=np.float64, copy=True)
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (b - 2)
    means -= means.sum() / (2 * (b - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0.0)
    return k


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive batches of ``batch_size`` rows; a last batch of fewer than 4 rows joins the one
    before it (every batch has at least 4 rows, the estimator's minimum)."""
    if batch_size < 4:
        raise InputError(f"minibatch CKA needs batch_size >= 4, got {batch_size}")
    if n < 4:
        raise InputError(f"minibatch CKA needs at least 4 inputs, got {n}")
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 4:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


class MinibatchCKA:
    """Running sums of one layer pair's minibatch HSICs: :meth:`update` with the U-centred Gram
    matrices of a batch, :attr:`value` at the end."""

    def __init__(self) -> None:
        self.xy = self.xx = self.yy = 0.0
        self.batches = 0

    def update(self, ux: np.ndarray, uy: np.ndarray) -> None:
        b = ux.shape[0]
        scale = 1.0 / (b * (b - 3))
        self.xy += float(np.vdot(ux, uy)) * scale
        self.xx += float(np.vdot(ux, ux)) * scale
        self.yy += float(np.vdot(uy, uy)) * scale
        self.batches += 1

    @property
    def value(self) -> float:
        if self.batches == 0:
            raise InputError("minibatch CKA saw no batch")
        if not (self.xx > 1e-300 and self.yy > 1e-300):
            raise InputError(
                "minibatch_cka: the unbiased HSIC of "
                f"{'X' if self.xx <= 0.0 else 'Y'} with itself is not positive; the input is "
                "(nearly) constant across samples"
            )
        return finite(np.clip(self.xy / np.sqrt(self.xx * self.yy), -1.0, 1.0), "minibatch_cka")


class BatchGrams:
    """U-centred linear Gram matrices of successive batches of one representation.

    Each batch's features are centred (U-centring ignores it; it only keeps the products small),
    and every batch is scaled by one constant, the inverse of the first batch's largest absolute
    entry: the estimator is scale invariant, so this only keeps extreme activations (1e200 or
    1e-200) from overflowing, without weighting the batches differently.
    """

    def __init__(self) -> None:
        self.scale: float | None = None

    def __call__(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(len(X), -1) - X.reshape(len(X), -1).mean(axis=0)
        if self.scale is None:
            peak = float(np.abs(X).max()) if X.size else 0.0
            self.scale = 1.0 / peak if 0.0 < peak < np.inf else 1.0
        X = X * self.scale
        return u_centre(X @ X.T)


def minibatch_cka(X: Any, Y: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Minibatch linear CKA over consecutive batches of ``batch_size`` rows, in [-1, 1].

    With ``batch_size`` >= the number of rows this is :func:`debiased_linear_cka`; for smaller
    batches it is what :mod:`modelkin.similarity.streaming` computes batch by batch without
    holding the activations.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y, min_samples=4)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size:
        raise InputError(f"batch_size must be an integer, got {batch_size!r}")
    total, grams_x, grams_y = MinibatchCKA(), BatchGrams(), BatchGrams()
    for start, stop in batch_bounds(X.shape[0], int(batch_size)):
        total.update(grams_x(X[start:stop]), grams_y(Y[start:stop]))
    return total.value
