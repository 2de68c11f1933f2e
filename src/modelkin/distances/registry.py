"""Named signature distances with the metadata a caller needs to use a value correctly.

Every entry says which signature method it applies to, its direction
(``higher_is_similar`` is False for all of them: they are distances), whether
argument order matters, its range, and whether it satisfies the triangle
inequality (``is_metric``), so that tables, ROC AUC and normalisation can
treat every distance alike without reading its formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import gradfield as _gradfield
from . import zest as _zest


@dataclass(frozen=True)
class DistanceInfo:
    name: str  # unique key: "<method>/<metric>"
    method: str  # the signature method it applies to ("zest", "gradfield")
    metric: str  # the metric's short name within its method ("cos", "l2", ...)
    function: Callable[[np.ndarray, np.ndarray], float]
    higher_is_similar: bool
    symmetric: bool
    is_metric: bool
    range: tuple[float, float]
    description: str

    @property
    def larger_means_less_similar(self) -> bool:
        return not self.higher_is_similar

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.function(a, b))


_INF = float("inf")

_ENTRIES = [
    DistanceInfo(
        "zest/cos",
        "zest",
        "cos",
        _zest.zest_cos,
        False,
        True,
        False,
        (0.0, 2.0),
        "Zest's headline distance: 1 - cosine of the class-aligned, row-major flattened LIME weights "
        "(greedy class alignment on per-class cosine distances).",
    ),
    # The lp norms are metrics for a fixed class correspondence (zest_distance(..., align=False)), but
    # Zest's greedy alignment picks a correspondence per pair and can break the triangle inequality
    # (tests/test_distances.py shows one), so the aligned distances are not declared metrics.
    DistanceInfo(
        "zest/l1",
        "zest",
        "l1",
        _zest.zest_l1,
        False,
        True,
        False,
        (0.0, _INF),
        "L1 norm of the difference of the class-aligned, flattened LIME weights (alignment on per-class L1).",
    ),
    DistanceInfo(
        "zest/l2",
        "zest",
        "l2",
        _zest.zest_l2,
        False,
        True,
        False,
        (0.0, _INF),
        "Euclidean norm of the difference of the class-aligned, flattened LIME weights (alignment on per-class L2).",
    ),
    DistanceInfo(
        "zest/linf",
        "zest",
        "linf",
        _zest.zest_linf,
        False,
        True,
        False,
        (0.0, _INF),
        "Largest absolute difference of the class-aligned LIME weights (alignment on per-class L-inf).",
    ),
    DistanceInfo(
        "gradfield/cos",
        "gradfield",
        "cos",
        _gradfield.field_cos,
        False,
        True,
        False,
        (0.0, 2.0),
        "ModelGiF's distance: mean over reference points and path steps of 1 - cos(F^A_{i,k}, F^B_{i,k}).",
    ),
    DistanceInfo(
        "gradfield/euclidean",
        "gradfield",
        "euclidean",
        _gradfield.field_euclidean,
        False,
        True,
        True,
        (0.0, _INF),
        "Mean over reference points and steps of |F^A_{i,k} - F^B_{i,k}|_2 (scale-sensitive).",
    ),
    DistanceInfo(
        "gradfield/cos_max_step",
        "gradfield",
        "cos_max_step",
        _gradfield.field_cos_max_step,
        False,
        True,
        False,
        (0.0, 2.0),
        "Per reference point the largest 1 - cos over the path steps, then the mean over points.",
    ),
    DistanceInfo(
        "gradfield/zscore",
        "gradfield",
        "zscore",
        _gradfield.field_zscore,
        False,
        True,
        True,
        (0.0, 2.0),
        "Mean over points and steps of the root-mean-square difference of the z-scored field vectors "
        "(each F_{i,k} standardised over its entries): blind to each model's gradient scale and offset; "
        "equals the mean of sqrt(2 (1 - Pearson r)).",
    ),
]

REGISTRY: dict[str, DistanceInfo] = {d.name: d for d in _ENTRIES}
HEADLINE = {"zest": "cos", "gradfield": "cos"}


def methods() -> list[str]:
    return sorted({d.method for d in _ENTRIES})


def distances_for(method: str) -> list[DistanceInfo]:
    """Every distance that applies to signatures of ``method``, headline first."""
    found = [d for d in _ENTRIES if d.method == method]
    if not found:
        raise ValueError(
            f"no distances for signature method {method!r}; methods with distances: {', '.join(methods())}"
        )
    return sorted(found, key=lambda d: d.metric != HEADLINE.get(method))


def get_distance(method: str, metric: str | None = None) -> DistanceInfo:
    """``get_distance("zest", "cos")`` or ``get_distance("zest/cos")``."""
    if metric is None and "/" in method:
        method, metric = method.split("/", 1)
    metric = metric or HEADLINE.get(method)
    entry = REGISTRY.get(f"{method}/{metric}")
    if entry is None:
        valid = ", ".join(d.metric for d in distances_for(method))
        raise ValueError(f"unknown {method} distance {metric!r}; valid: {valid}")
    return entry
