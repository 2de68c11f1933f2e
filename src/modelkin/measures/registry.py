"""Names and metadata of the measures, so that pipelines can pick them from config.

The metadata is what a caller needs to use a value correctly without reading
the formula: which direction means "similar", whether argument order matters,
what the value cannot see (invariances), whether it may be used as a distance
in clustering or embedding (``is_metric``) and its bounds.

Invariance vocabulary (a transformation applied to *either* argument alone
leaves the value unchanged):

* ``"permutation"``       – reordering features (neurons/channels)
* ``"orthogonal"``        – ``X -> X Q`` with Q orthogonal (implies permutation)
* ``"isotropic_scaling"`` – ``X -> a X``, a > 0
* ``"translation"``       – ``X -> X + 1 b^T`` (adding a constant to each feature)
* ``"invertible_linear"`` – ``X -> X A`` with A invertible (implies orthogonal)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .basic import mean_squared_error, reference_l2
from .cca import mean_squared_cca, pwcca, reference_cca, svcca
from .cka import debiased_linear_cka, linear_cka, rbf_cka, reference_cka
from .minibatch import minibatch_cka
from .procrustes import procrustes_distance

INVARIANCES = ("permutation", "orthogonal", "isotropic_scaling", "translation", "invertible_linear")


@dataclass(frozen=True)
class MeasureInfo:
    name: str
    function: Callable[..., float]
    higher_is_similar: bool
    symmetric: bool
    invariances: tuple[str, ...]
    is_metric: bool
    range: tuple[float, float]
    description: str
    # Element-wise measures compare unit by unit and cannot take two layers of
    # different widths; pipelines use this to skip them rather than fail.
    requires_same_shape: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.invariances) - set(INVARIANCES)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown invariances {sorted(unknown)}; valid: {INVARIANCES}"
            )

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters accepted by ``compute(name, X, Y, **params)`` and their defaults."""
        sig = inspect.signature(self.function)
        return {k: v.default for k, v in list(sig.parameters.items())[2:]}


_ROTATION = ("permutation", "orthogonal", "isotropic_scaling", "translation")
_LINEAR = _ROTATION + ("invertible_linear",)

_ENTRIES = [
    MeasureInfo(
        "cka",
        linear_cka,
        True,
        True,
        _ROTATION,
        False,
        (0.0, 1.0),
        "Linear CKA (Kornblith et al. 2019), biased HSIC, column-centred features.",
    ),
    MeasureInfo(
        "rbf_cka",
        rbf_cka,
        True,
        True,
        _ROTATION,
        False,
        (0.0, 1.0),
        "CKA with RBF kernels; bandwidth = threshold x median inter-sample distance (default 0.5).",
    ),
    MeasureInfo(
        "debiased_cka",
        debiased_linear_cka,
        True,
        True,
        _ROTATION,
        False,
        (-1.0, 1.0),
        "Linear CKA with the unbiased HSIC estimator; can be slightly negative for unrelated "
        "inputs.",
    ),
    MeasureInfo(
        "minibatch_cka",
        minibatch_cka,
        True,
        True,
        _ROTATION,
        False,
        (-1.0, 1.0),
        "Minibatch linear CKA (Nguyen et al. 2021): unbiased HSICs of consecutive batches "
        "(batch_size, default 256) averaged; streams over probe sets too large for memory.",
    ),
    MeasureInfo(
        "cca",
        mean_squared_cca,
        True,
        True,
        _LINEAR,
        False,
        (0.0, 1.0),
        "Mean squared canonical correlation (R^2_CCA), centred by default (center=False: notebook "
        "variant).",
    ),
    MeasureInfo(
        "svcca",
        svcca,
        True,
        True,
        _ROTATION,
        False,
        (0.0, 1.0),
        "SVCCA (Raghu et al. 2017): SVD to keep_variance (0.99) or keep_dims, then mean CCA "
        "correlation.",
    ),
    MeasureInfo(
        "pwcca",
        pwcca,
        True,
        False,
        ("permutation", "isotropic_scaling", "translation"),
        False,
        (0.0, 1.0),
        (
            "Projection-weighted CCA (Morcos et al. 2018); weights from the side with fewer "
            "directions."
        ),
    ),
    MeasureInfo(
        "procrustes",
        procrustes_distance,
        False,
        True,
        _ROTATION,
        True,
        (0.0, float(np.sqrt(2.0))),
        "Orthogonal Procrustes distance sqrt(2 - 2||X~^T Y~||_*) of centred unit-norm inputs (not "
        "squared).",
    ),
    MeasureInfo(
        "mse",
        mean_squared_error,
        False,
        True,
        (),
        False,
        (0.0, float("inf")),
        "Mean squared error between equal-shape representations (the references' 'l2').",
        requires_same_shape=True,
    ),
    MeasureInfo(
        "reference_cka",
        reference_cka,
        True,
        True,
        _ROTATION,
        False,
        (0.0, 1.0),
        "The references' CKA: linear, biased, per-sample flattened features (= cka on 2-D input).",
    ),
    MeasureInfo(
        "reference_cca",
        reference_cca,
        True,
        True,
        ("permutation", "orthogonal", "isotropic_scaling", "invertible_linear"),
        False,
        (0.0, 1.0),
        "The references' CCA: mean squared CCA without centring, on per-sample flattened features.",
    ),
    MeasureInfo(
        "reference_l2",
        reference_l2,
        False,
        True,
        (),
        False,
        (0.0, float("inf")),
        "The references' 'l2': mean squared error over arrays of any equal shape (not a Euclidean "
        "norm).",
        requires_same_shape=True,
    ),
]

REGISTRY: dict[str, MeasureInfo] = {m.name: m for m in _ENTRIES}


def get_measure(name: str) -> MeasureInfo:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown similarity measure {name!r}; valid names: {', '.join(sorted(REGISTRY))}"
        ) from None


def compute(name: str, X: Any, Y: Any, **params: Any) -> float:
    """``get_measure(name).function(X, Y, **params)``, with unknown parameters rejected by name."""
    info = get_measure(name)
    accepted = info.params
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(
            f"measure {name!r} does not take parameter(s) {unknown}; "
            f"it accepts {sorted(accepted) if accepted else 'none'}"
        )
    return float(info.function(X, Y, **params))
