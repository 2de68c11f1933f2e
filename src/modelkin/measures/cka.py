"""Centered kernel alignment (Kornblith et al. 2019).

Formulas follow the CKA authors' reference notebook (google-research,
``representation_similarity``): biased HSIC for ``linear_cka`` and ``rbf_cka``,
the unbiased HSIC estimator for ``debiased_linear_cka``.

The linear variants pick the cheaper of two algebraically identical routes:
feature space (p x p products, for many samples and few features, e.g.
``to_matrix(..., "spatial")``) or sample space (n x n Gram matrices, for
flattened conv features with p >> n).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ._validation import (
    as_matrix,
    center,
    check_pair,
    check_positive_float,
    finite,
    flatten_samples,
    unit_max,
)


def _centred_unit(X: np.ndarray, name: str, measure: str) -> np.ndarray:
    # CKA is scale invariant, so unit Frobenius norm costs nothing and keeps
    # ||X^T Y||^2 (a fourth power of the activations) far from overflow.
    Xc = unit_max(center(X))
    norm = np.linalg.norm(Xc)
    if norm == 0.0:
        raise InputError(
            f"{measure}: {name} is constant across samples (zero variance after centring); CKA is "
            "undefined"
        )
    return Xc / norm


def _use_features(n: int, p1: int, p2: int) -> bool:
    # Costs: n*(p1+p2)^2 in feature space vs n^2*(p1+p2) with Gram matrices.
    return p1 + p2 < n


def linear_cka(X: Any, Y: Any) -> float:
    """Linear CKA with the biased HSIC on column-centred features, in [0, 1].

    ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``. Invariant to orthogonal
    transforms, isotropic scaling and translation of either input.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    Xc, Yc = _centred_unit(X, "X", "linear_cka"), _centred_unit(Y, "Y", "linear_cka")
    if _use_features(X.shape[0], X.shape[1], Y.shape[1]):
        hsic = np.linalg.norm(Xc.T @ Yc) ** 2
        norm_x, norm_y = np.linalg.norm(Xc.T @ Xc), np.linalg.norm(Yc.T @ Yc)
    else:
        K, L = Xc @ Xc.T, Yc @ Yc.T  # already doubly centred because Xc, Yc are
        hsic = np.vdot(K, L)
        norm_x, norm_y = np.linalg.norm(K), np.linalg.norm(L)
    return finite(np.clip(hsic / (norm_x * norm_y), 0.0, 1.0), "linear_cka")


def _double_centre(K: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n, without forming H."""
    row = K.mean(axis=0)
    return K - row[None, :] - row[:, None] + row.mean()


def _rbf_gram(X: np.ndarray, threshold: float, name: str) -> np.ndarray:
    # Distances are translation invariant; centring first only reduces
    # cancellation in the squared distances of far-off-origin data.
    # The bandwidth is relative to the median, so rescaling is free and keeps
    # squared distances of extreme activations finite.
    from scipy.spatial.distance import pdist, squareform  # 0.3-1 s to import: only here

    sq = squareform(pdist(unit_max(center(X)), "sqeuclidean"))
    # Median over the full matrix, zero diagonal included, as in the notebook:
    # this is what makes the golden value (0.65483) come out.
    median = np.median(sq)
    if median == 0.0:
        raise InputError(
            f"rbf_cka: the median squared distance between samples of {name} is 0 "
            "(at least half of the pairs are identical); the RBF bandwidth is undefined"
        )
    return np.exp(-sq / (2.0 * threshold**2 * median))


def rbf_cka(X: Any, Y: Any, threshold: float = 0.5) -> float:
    """CKA with RBF kernels ``exp(-|x-y|^2 / (2 threshold^2 median_sq_dist))``, in [0, 1].

    ``threshold`` is the bandwidth as a fraction of the median distance between
    samples (computed separately for X and Y), exactly as in the CKA authors'
    notebook; the default 0.5 is the value their examples use. Needs two n x n
    matrices, so it scales as O(n^2) memory.
    """
    threshold = check_positive_float(threshold, "threshold")
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y)
    K = _double_centre(_rbf_gram(X, threshold, "X"))
    L = _double_centre(_rbf_gram(Y, threshold, "Y"))
    denom = np.linalg.norm(K) * np.linalg.norm(L)
    if denom == 0.0:
        raise InputError("rbf_cka: a centred kernel matrix is zero; CKA is undefined")
    return finite(np.clip(np.vdot(K, L) / denom, 0.0, 1.0), "rbf_cka")


def _unbiased_centre(K: np.ndarray) -> np.ndarray:
    """U-centring (Szekely & Rizzo 2014); <U(K), U(L)> is n(n-3) x unbiased HSIC."""
    n = K.shape[0]
    K = K.copy()
    np.fill_diagonal(K, 0.0)
    means = K.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    K -= means[:, None]
    K -= means[None, :]
    np.fill_diagonal(K, 0.0)
    return K


def _debiased_dot(
    xty: float, rows_x: np.ndarray, rows_y: np.ndarray, sq_x: float, sq_y: float, n: int
) -> float:
    # Feature-space form of the unbiased HSIC (up to a constant that cancels in
    # the ratio), from the notebook's _debiased_dot_product_similarity_helper.
    return xty - n / (n - 2.0) * rows_x.dot(rows_y) + sq_x * sq_y / ((n - 1) * (n - 2))


def debiased_linear_cka(X: Any, Y: Any) -> float:
    """Linear CKA with the unbiased HSIC estimator (Song et al. 2012), in [-1, 1].

    Same as the notebook's ``feature_space_linear_cka(debiased=True)``. Less
    biased towards 1 than ``linear_cka`` when p is large relative to n, and
    can be slightly negative for unrelated representations. Needs n >= 4.
    """
    X, Y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_pair(X, Y, min_samples=4)
    n = X.shape[0]
    Xc, Yc = (
        _centred_unit(X, "X", "debiased_linear_cka"),
        _centred_unit(Y, "Y", "debiased_linear_cka"),
    )
    if _use_features(n, X.shape[1], Y.shape[1]):
        rows_x, rows_y = np.einsum("ij,ij->i", Xc, Xc), np.einsum("ij,ij->i", Yc, Yc)
        sq_x, sq_y = rows_x.sum(), rows_y.sum()
        hsic = _debiased_dot(np.linalg.norm(Xc.T @ Yc) ** 2, rows_x, rows_y, sq_x, sq_y, n)
        var_x = _debiased_dot(np.linalg.norm(Xc.T @ Xc) ** 2, rows_x, rows_x, sq_x, sq_x, n)
        var_y = _debiased_dot(np.linalg.norm(Yc.T @ Yc) ** 2, rows_y, rows_y, sq_y, sq_y, n)
    else:
        K, L = _unbiased_centre(Xc @ Xc.T), _unbiased_centre(Yc @ Yc.T)
        hsic, var_x, var_y = np.vdot(K, L), np.vdot(K, K), np.vdot(L, L)
    # The unbiased self-HSIC is a squared norm in exact arithmetic but can
    # round to <= 0 when a representation is (nearly) degenerate.
    if var_x <= 0.0 or var_y <= 0.0:
        raise InputError(
            f"debiased_linear_cka: the unbiased HSIC of {'X' if var_x <= 0.0 else 'Y'} with itself "
            f"is not positive; the input is too degenerate (X shape {X.shape}, Y shape {Y.shape})"
        )
    return finite(np.clip(hsic / np.sqrt(var_x * var_y), -1.0, 1.0), "debiased_linear_cka")


def reference_cka(X: Any, Y: Any) -> float:
    """The reference codebases' CKA: linear, biased, on per-sample flattened features.

    Accepts (n, ...) arrays and flattens each sample to C*H*W features; on 2-D
    input it is exactly ``linear_cka`` (and on 4-D input it equals
    ``linear_cka(to_matrix(X, "flatten"), to_matrix(Y, "flatten"))``).
    """
    return linear_cka(flatten_samples(X, "X"), flatten_samples(Y, "Y"))
