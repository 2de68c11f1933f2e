"""Reference distances and normalisation (Zest's README; offered for ModelGiF too).

For a pair setting (data set, architecture and training algorithm of each side)
the *reference distance* is the mean distance over independently seeded pairs
of that setting; a pair under test is reported as distance / reference mean,
and called ``related`` when that ratio is below a threshold (1.0 by default).
The reference's spread (std, n) travels with every normalised value: a ratio of
0.9 means little when independent pairs spread by 0.2.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

ON_INSUFFICIENT = ("error", "warn", "quiet")  # quiet: mark it insufficient, say nothing
VERDICTS = ("related", "unrelated", "unknown")


class InsufficientReference(InputError):
    """Fewer independent pairs than a reference distance needs."""


class InsufficientReferenceWarning(UserWarning):
    """A reference distance from fewer independent pairs than configured
    (``on_insufficient_reference: warn``)."""


@dataclass(frozen=True)
class Setting:
    """What a reference distance is specific to: the data
    set and each side's (arch, algorithm), unordered."""

    dataset: str
    side_a: tuple[str, str]
    side_b: tuple[str, str]

    @classmethod
    def of(
        cls, dataset: str, arch_a: str, algorithm_a: str, arch_b: str, algorithm_b: str
    ) -> Setting:
        a, b = sorted([(str(arch_a), str(algorithm_a)), (str(arch_b), str(algorithm_b))])
        return cls(str(dataset), a, b)

    @property
    def key(self) -> str:
        return f"{self.dataset}:{'/'.join(self.side_a)}~{'/'.join(self.side_b)}"

    @classmethod
    def from_key(cls, key: str) -> Setting:
        try:
            dataset, rest = key.split(":", 1)
            a, b = rest.split("~", 1)
            return cls.of(dataset, *a.split("/", 1), *b.split("/", 1))
        except ValueError:
            raise InputError(
                f"{key!r} is not a setting key (DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM)"
            ) from None

    def __str__(self) -> str:
        return self.key


@dataclass
class ReferenceDistance:
    """Mean and spread of one distance over independent pairs of one setting."""

    metric: str
    setting: str
    mean: float
    std: float
    n: int
    min_pairs: int
    pairs: list[tuple[str, str]] = field(default_factory=list)
    sufficient: bool = True

    @property
    def coefficient_of_variation(self) -> float:
        return self.std / self.mean if self.mean and self.n > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pairs"] = [list(p) for p in self.pairs]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReferenceDistance:
        values = dict(values)
        values["pairs"] = [tuple(p) for p in values.get("pairs", [])]
        return cls(**values)


def reference_distance(
    distances: Sequence[float],
    *,
    metric: str,
    setting: str | Setting,
    min_pairs: int = 5,
    on_insufficient: str = "error",
    pairs: Iterable[tuple[str, str]] = (),
) -> ReferenceDistance:
    """The reference of ``setting`` from the distances of its independent pairs.

    Fewer than ``min_pairs`` distances: :class:`InsufficientReference` (``on_insufficient="error"``)
    or an :class:`InsufficientReferenceWarning` and a reference marked ``sufficient=False``
    (``"warn"``). With no pair at all the mean is NaN and every verdict against it ``unknown``.
    """
    if on_insufficient not in ON_INSUFFICIENT:
        raise InputError(
            f"on_insufficient must be one of {ON_INSUFFICIENT}, got {on_insufficient!r}"
        )
    if min_pairs < 1:
        raise InputError(f"min_pairs must be at least 1, got {min_pairs}")
    values = np.asarray([d for d in distances if np.isfinite(d)], dtype=np.float64)
    n = int(values.size)
    sufficient = n >= min_pairs
    if not sufficient:
        message = (
            f"the reference distance for {setting} ({metric}) rests on {n} independently seeded "
            f"pair(s), fewer than the {min_pairs} required: train more independent seeds of "
            "this setting (zoo.seeds in config.yaml), lower distances.min_reference_pairs, or "
            "set distances.on_insufficient_reference: warn to accept a weaker reference"
        )
        if on_insufficient == "error":
            raise InsufficientReference(message)
        if on_insufficient == "warn":
            warnings.warn(message, InsufficientReferenceWarning, stacklevel=2)
            log.warning(message)
    mean = float(values.mean()) if n else float("nan")
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    return ReferenceDistance(
        metric=metric,
        setting=str(setting),
        mean=mean,
        std=std,
        n=n,
        min_pairs=int(min_pairs),
        pairs=[(a, b) for a, b in pairs],
        sufficient=sufficient,
    )


@dataclass
class Normalised:
    """A distance against its reference: ratio, verdict, and the reference's spread."""

    metric: str
    distance: float
    reference_mean: float
    reference_std: float
    reference_n: int
    normalised: float
    threshold: float
    verdict: str  # related | unrelated | unknown

    @property
    def normalised_spread(self) -> float:
        """The reference's std in normalised units (independent pairs spread this much around 1)."""
        return self.reference_std / self.reference_mean if self.reference_mean else float("nan")

    def describe(self) -> str:
        if self.verdict == "unknown":
            return f"{self.metric}: {self.distance:.6g} (no usable reference)"
        spread = "" if math.isnan(self.normalised_spread) else f" +- {self.normalised_spread:.3f}"
        return (
            f"{self.metric}: {self.distance:.6g} = {self.normalised:.3f} x reference "
            f"{self.reference_mean:.6g} (independent pairs: 1{spread}, "
            f"n={self.reference_n}) -> {self.verdict} (threshold {self.threshold:g})"
        )


def normalise(
    distance: float,
    reference: ReferenceDistance,
    *,
    threshold: float = 1.0,
    higher_is_similar: bool = False,
) -> Normalised:
    """``distance / reference.mean``; ``related`` when below ``threshold``.

    Only distances can be normalised this way (a similarity
    divided by its reference has no such reading).
    """
    if higher_is_similar:
        raise InputError(
            f"{reference.metric} is a similarity (higher is "
            "similar); reference normalisation divides distances"
        )
    if threshold <= 0:
        raise InputError(f"the relatedness threshold must be positive, got {threshold}")
    usable = (
        reference.n > 0
        and np.isfinite(reference.mean)
        and reference.mean > 0
        and np.isfinite(distance)
    )
    ratio = float(distance) / reference.mean if usable else float("nan")
    verdict = ("related" if ratio < threshold else "unrelated") if usable else "unknown"
    return Normalised(
        metric=reference.metric,
        distance=float(distance),
        reference_mean=reference.mean,
        reference_std=reference.std,
        reference_n=reference.n,
        normalised=ratio,
        threshold=float(threshold),
        verdict=verdict,
    )
