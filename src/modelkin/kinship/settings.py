"""The ``lineage`` section's settings, with the schema's defaults (one source per default)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

CUES = ("task", "sparsity", "kurtosis", "centrality", "mask", "weight_path")
COMBINATIONS = ("holm", "fisher")


class KinshipError(InputError):
    """A family-tree input that cannot be used (a missing table column, an unknown cue)."""


@functools.cache
def _schema_section() -> dict[str, Any]:
    from ..config import validate_config

    return validate_config({})["lineage"]


def schema_defaults() -> dict[str, Any]:
    """The ``lineage`` section of an empty configuration after validation (a fresh copy)."""
    return copy.deepcopy(_schema_section())


@dataclass(frozen=True)
class DirectionSettings:
    """How an edge's direction is decided (the schema's ``lineage.direction``)."""

    cues: tuple[str, ...]
    weights: Mapping[str, float]
    min_confidence: float
    path_tolerance: float
    intermediate_margin: float
    path_cosine: float
    mask_tolerance: float
    kurtosis_order: str
    kurtosis_scale: float
    sparsity_margin: float
    centrality_scale: float

    def weight(self, cue: str) -> float:
        return float(self.weights.get(cue, 1.0))


@dataclass(frozen=True)
class KinshipSettings:
    """Edge threshold, p-value combination and direction settings of one family-tree run."""

    alpha: float = field(default_factory=lambda: float(_schema_section()["alpha"]))
    combine: str = "holm"
    direction: DirectionSettings = field(
        default_factory=lambda: KinshipSettings.from_dict({}).direction
    )

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any] | None = None, *, alpha: float | None = None
    ) -> KinshipSettings:
        """Settings from a ``lineage`` section (missing keys: the schema's defaults); ``alpha``
        stands in where the section sets none (``modelkin lineage`` passes ``--alpha``), before
        the schema's default."""
        merged = schema_defaults()
        values = dict(values or {})
        direction = {**merged["direction"], **dict(values.pop("direction", None) or {})}
        merged.update(values)
        unknown = [c for c in direction["cues"] if c not in CUES]
        if unknown:
            raise KinshipError(f"unknown direction cues {unknown}; known: {', '.join(CUES)}")
        if merged["combine"] not in COMBINATIONS:
            raise KinshipError(
                f"combine {merged['combine']!r} is not one of {', '.join(COMBINATIONS)}"
            )
        chosen = values.get("alpha")
        if chosen is None:
            chosen = alpha
        if chosen is None:
            chosen = _schema_section()["alpha"]
        return cls(
            alpha=float(chosen),
            combine=str(merged["combine"]),
            direction=DirectionSettings(
                cues=tuple(direction["cues"]),
                weights=dict(direction["weights"]),
                min_confidence=float(direction["min_confidence"]),
                path_tolerance=float(direction["path_tolerance"]),
                intermediate_margin=float(direction["intermediate_margin"]),
                path_cosine=float(direction["path_cosine"]),
                mask_tolerance=float(direction["mask_tolerance"]),
                kurtosis_order=str(direction["kurtosis_order"]),
                kurtosis_scale=float(direction["kurtosis_scale"]),
                sparsity_margin=float(direction["sparsity_margin"]),
                centrality_scale=float(direction["centrality_scale"]),
            ),
        )
