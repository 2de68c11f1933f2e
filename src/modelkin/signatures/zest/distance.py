"""Zest distances between LIME signatures (ΣF_i, C), with Zest's greedy class alignment.

Two models may order their classes differently or have different class sets
(a transfer to a class subset). Before comparing, for the chosen metric:

1. build the C_small x C_large matrix of distances between every class column
   of the model with fewer classes and every class column of the other one;
2. greedily take the global minimum, assign that pair, strike its row and
   column, and repeat until every column of the smaller model is assigned;
3. reorder the larger model's columns accordingly (its unassigned columns drop out);
4. flatten both row-major and take cos = 1 - <a, b> / (|a| |b|) or lp = |a - b|_p.

With equal class counts the first argument's columns are the rows of the
matrix; the global-minimum order makes the result symmetric except for exact
ties. A zero vector has cosine 0 to everything (distance 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError

METRICS = ("cos", "l1", "l2", "linf")


def as_weights(signature: Any) -> np.ndarray:
    """The (ΣF_i, C) float64 weight matrix of a Zest signature (a Signature object or an array)."""
    data = getattr(signature, "data", signature)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise InputError(
            f"a Zest signature is a (superpixels, classes) matrix; got shape {data.shape}"
        )
    return data


def class_distance_matrix(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(C_a, C_b): the metric between every class
    column of ``a`` and every class column of ``b``."""
    _check_metric(metric)
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"Zest signatures have {a.shape[0]} and {b.shape[0]} "
            "superpixel rows; they were not computed on the same probe"
        )
    if metric == "cos":
        return 1.0 - _unit_columns(a).T @ _unit_columns(b)
    diff = a[:, :, None] - b[:, None, :]  # (F, C_a, C_b); C is small, so this stays small
    if metric == "l1":
        return np.abs(diff).sum(axis=0)
    if metric == "l2":
        return np.sqrt((diff**2).sum(axis=0))
    return np.abs(diff).max(axis=0)


def greedy_assignment(cost: np.ndarray) -> np.ndarray:
    """For a (m, n) cost matrix with m <= n: column assigned to each row, by repeated global minima.

    Ties go to the first entry in row-major order.
    """
    cost = np.asarray(cost, dtype=np.float64)
    m, n = cost.shape
    if m > n:
        raise InputError(f"greedy assignment needs no more rows than columns, got {cost.shape}")
    work = cost.copy()
    assigned = np.full(m, -1, dtype=np.int64)
    for _ in range(m):
        row, col = np.unravel_index(np.argmin(work), work.shape)
        assigned[row] = col
        work[row, :] = np.inf
        work[:, col] = np.inf
    return assigned


def align_classes(a: Any, b: Any, metric: str = "cos") -> tuple[np.ndarray, np.ndarray]:
    """Both signatures with columns in corresponding order, (ΣF_i, C_small) each."""
    a, b = as_weights(a), as_weights(b)
    if a.shape[1] <= b.shape[1]:
        return a, b[:, greedy_assignment(class_distance_matrix(a, b, metric))]
    return a[:, greedy_assignment(class_distance_matrix(b, a, metric))], b


def zest_distance(a: Any, b: Any, metric: str = "cos", *, align: bool = True) -> float:
    """Zest's distance ``metric`` (cos, l1, l2, linf) between two signatures, after class alignment.

    ``align=False`` compares the columns in their stored order (both must have the same classes).
    """
    _check_metric(metric)
    if align:
        a, b = align_classes(a, b, metric)
    else:
        a, b = as_weights(a), as_weights(b)
        if a.shape != b.shape:
            raise InputError(
                "without class alignment the signatures must have "
                f"the same shape, got {a.shape} and {b.shape}"
            )
    x, y = a.reshape(-1), b.reshape(-1)
    if metric == "cos":
        norms = np.linalg.norm(x) * np.linalg.norm(y)
        return float(1.0 - (x @ y) / norms) if norms > 0 else 1.0
    diff = np.abs(x - y)
    if metric == "l1":
        return float(diff.sum())
    if metric == "l2":
        return float(np.sqrt((diff**2).sum()))
    return float(diff.max())


def zest_cos(a, b) -> float:
    return zest_distance(a, b, "cos")


def zest_l1(a, b) -> float:
    return zest_distance(a, b, "l1")


def zest_l2(a, b) -> float:
    return zest_distance(a, b, "l2")


def zest_linf(a, b) -> float:
    return zest_distance(a, b, "linf")


def _unit_columns(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=0, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InputError(f"unknown Zest metric {metric!r}; choose one of {', '.join(METRICS)}")
