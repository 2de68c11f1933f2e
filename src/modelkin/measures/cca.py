"""Canonical correlation analysis measures: mean squared CCA, SVCCA, PWCCA.

All of them work from orthonormal bases of the column spaces (SVD, null
directions dropped), because the canonical correlations are exactly the
singular values of ``Qx^T Qy``. That is the numerically sound form of
"whiten, then correlate": no covariance matrix is ever inverted, so constant
channels, duplicated channels and other rank deficiencies just reduce the
number of canonical directions instead of producing NaN.

When the combined rank exceeds the samples' degrees of freedom (typically
n < p on flattened conv features) some correlations are 1 by construction;
the value stays finite but a ``DegenerateCCAWarning`` says so. Use ``svcca``
(which reduces the dimension first) or more samples there.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import (
    DegenerateCCAWarning,
    as_matrix,
    check_fraction,
    check_pair,
    check_positive_int,
    finite,
    flatten_samples,
    orthonormal_basis,
)
from ._validation import (
    center as centre_columns,
)


def _basis(Z: np.ndarray, centred: bool, name: str, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of Z (already centred if ``centred``), or an InputError if Z is null."""
    Q, s = orthonormal_basis(Z)
    if Q.shape[1] == 0:
        what = "constant across samples" if centred else "all zero"
        raise InputError(
            f"{measure}: {name} is {what} (shape {Z.shape}); it has no canonical directions"
        )
    return Q, s


def _maybe_centre(X: np.ndarray, centred: bool) -> np.ndarray:
    return centre_columns(X) if centred else X


def _warn_if_overfit(rx: int, ry: int, n_eff: int, measure: str) -> None:
    if rx + ry > n_eff:
        warnings.warn(
            f"{measure}: rank(X) + rank(Y) = {rx} + {ry} exceeds the {n_eff} degrees of freedom of "
            f"the samples, so at least {rx + ry - n_eff} canonical correlation(s) are 1 by "
            "construction; use more samples than features, or svcca with fewer dimensions",
            DegenerateCCAWarning,
            stacklevel=3,
        )


def _correlations(Qx: np.ndarray, Qy: np.ndarray) -> np.ndarray:
    # Rounding can push a singular value of two orthonormal bases past 1.
    return np.clip(np.linalg.svd(Qx.T @ Qy, compute_uv=False), 0.0, 1.0)


def canonical_correlations(X: Any, Y: Any, center: bool = True) -> np.ndarray:
    """Canonical correlations of X and Y, descending, length min(rank X, rank Y).

    ``center=False`` skips column centring (the CKA notebook's and the
    references' variant), which makes each representation's mean part of its
    column space.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Qx, _ = _basis(_maybe_centre(X, center), center, "X", "canonical_correlations")
    Qy, _ = _basis(_maybe_centre(Y, center), center, "Y", "canonical_correlations")
    _warn_if_overfit(Qx.shape[1], Qy.shape[1], X.shape[0] - int(center), "canonical_correlations")
    return _correlations(Qx, Qy)


def mean_squared_cca(X: Any, Y: Any, center: bool = True) -> float:
    """Mean of the squared canonical correlations (Yanai's R^2_CCA), in [0, 1].

    Equals ``||Qx^T Qy||_F^2 / min(rank X, rank Y)``. With ``center=False`` it
    reproduces the CKA notebook's ``cca()``, which skips centring. Invariant to
    any invertible linear map of either input (and, when centred, translation).
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Qx, _ = _basis(_maybe_centre(X, center), center, "X", "mean_squared_cca")
    Qy, _ = _basis(_maybe_centre(Y, center), center, "Y", "mean_squared_cca")
    _warn_if_overfit(Qx.shape[1], Qy.shape[1], X.shape[0] - int(center), "mean_squared_cca")
    rho = _correlations(Qx, Qy)
    return finite(np.mean(rho**2), "mean_squared_cca")


def _svd_reduce(
    X: np.ndarray, keep_variance: float, keep_dims: int | None, name: str
) -> np.ndarray:
    Q, s = _basis(centre_columns(X), True, name, "svcca")
    if keep_dims is not None:
        k = min(keep_dims, Q.shape[1])
    else:
        power = (s / s[0]) ** 2  # relative, so that s**2 cannot overflow
        explained = np.cumsum(power) / np.sum(power)
        # Smallest k explaining keep_variance; the slack lets keep_variance=1
        # keep every direction despite the cumulative sum rounding below 1.
        k = min(int(np.searchsorted(explained, keep_variance - 1e-12)) + 1, Q.shape[1])
    # The reduced data U_k S_k span the same space as U_k, and CCA only sees spans.
    return Q[:, :k]


def svcca(X: Any, Y: Any, keep_variance: float = 0.99, keep_dims: int | None = None) -> float:
    """SVCCA (Raghu et al. 2017): SVD-reduce each side, then mean canonical correlation, in [0, 1].

    Each centred representation keeps its top singular directions: the
    smallest number explaining ``keep_variance`` of its variance, or, if
    ``keep_dims`` is given, that many (it takes precedence; capped at the
    rank). The result is the mean (not squared) of the min(kx, ky) canonical
    correlations of the reduced representations. With all dimensions kept it
    equals mean CCA correlation and is invariant to invertible linear maps;
    with truncation only to orthogonal maps, isotropic scaling and translation.
    """
    keep_variance = check_fraction(keep_variance, "keep_variance")
    if keep_dims is not None:
        keep_dims = check_positive_int(keep_dims, "keep_dims")
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Qx = _svd_reduce(X, keep_variance, keep_dims, "X")
    Qy = _svd_reduce(Y, keep_variance, keep_dims, "Y")
    _warn_if_overfit(Qx.shape[1], Qy.shape[1], X.shape[0] - 1, "svcca")
    return finite(np.mean(_correlations(Qx, Qy)), "svcca")


def pwcca(X: Any, Y: Any) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), in [0, 1]. Not symmetric.

    ``sum_i alpha_i rho_i`` where ``alpha_i`` is proportional to
    ``sum_j |<h_i, z_j>|``: how much of the neurons ``z_j`` (centred columns)
    the canonical variate ``h_i`` accounts for. The variates are taken on the
    side with fewer canonical directions (smaller rank; X on a tie), as in
    the authors' ``compute_pwcca``, which is where the asymmetry comes from.
    This is the paper's definition; the authors' code differs from it (it
    forms the "variates" without the whitening step and its Y branch reads
    ``acts1``), so values need not match that code.
    Weights depend on the neuron basis, so it is invariant to permutations
    and isotropic scaling of the neurons but not to general rotations.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Xc, Yc = centre_columns(X), centre_columns(Y)
    Qx, _ = _basis(Xc, True, "X", "pwcca")
    Qy, _ = _basis(Yc, True, "Y", "pwcca")
    _warn_if_overfit(Qx.shape[1], Qy.shape[1], X.shape[0] - 1, "pwcca")
    U, rho, Vt = np.linalg.svd(Qx.T @ Qy, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    if Qx.shape[1] <= Qy.shape[1]:
        variates, acts = Qx @ U, Xc  # orthonormal already: no QR needed, unlike the reference
    else:
        variates, acts = Qy @ Vt.T, Yc
    weights = np.abs(variates.T @ acts).sum(axis=1)
    total = weights.sum()
    if total <= 0.0:
        raise InputError("pwcca: projection weights are all zero; the input is degenerate")
    return finite(np.clip(np.dot(weights / total, rho), 0.0, 1.0), "pwcca")


def reference_cca(X: Any, Y: Any) -> float:
    """The reference codebases' CCA: mean squared CCA without centring, on per-sample flattened
    features.

    Accepts (n, ...) arrays; equals ``mean_squared_cca(X, Y, center=False)``
    on 2-D input. Not translation invariant.
    """
    return mean_squared_cca(flatten_samples(X, "X"), flatten_samples(Y, "Y"), center=False)
