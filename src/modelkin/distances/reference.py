"""Settings, their references, and the verdict a pair gets against them.

A *setting* is what a comparison is specific to: the data set of the probe, and for each side
its architecture, its training algorithm (a derived model counts with its root model's) and its
class set (a transfer to classes 5-9 is compared with 5-class models, not 10-class ones; a model
retrained without class 3, or made to forget it, with models that do not predict 3 either).

The *reference* of a setting is its unrelated pairs (no shared lineage, no shared seed): their
mean distance (the normalised distance is distance / mean, as in Zest's README: 1 = as far as
unrelated pairs) and the calibrated null (:mod:`.calibration`) that turns a distance into a
p-value and a verdict at false-positive rate ``alpha``. Verdicts: ``related``, ``unrelated``, or
``not enough independent models`` (never a guess).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..lineage import Lineage
from .calibration import NOT_ENOUGH, Judgement

log = logging.getLogger(__name__)

ON_INSUFFICIENT = ("error", "warn")
_SIDE = re.compile(
    r"^(?P<arch>[^/\[\]@]+)/(?P<algorithm>[^/\[\]@]+)(?:\[(?P<classes>[\d,]*)\])?"
    r"(?:@(?P<home>[a-z][a-z0-9_]*))?$"
)


class InsufficientReference(InputError):
    """A setting whose unrelated models are too few for calibrated verdicts."""


class InsufficientReferenceWarning(UserWarning):
    """A setting with too few unrelated models (``on_insufficient_reference: warn``)."""


@dataclass(frozen=True, order=True)
class Side:
    """One side of a comparison: architecture, algorithm, class set (None: all classes of the
    probe's data set) and, for a model trained on another data set than the probe's, that data
    set (``home``; its classes are then the probe's classes it predicts, matched by name)."""

    arch: str
    algorithm: str
    classes: tuple[int, ...] | None = None
    home: str | None = None

    @property
    def key(self) -> str:
        base = f"{self.arch}/{self.algorithm}"
        if self.classes is not None:
            base = f"{base}[{','.join(map(str, self.classes))}]"
        return base if self.home is None else f"{base}@{self.home}"

    @classmethod
    def from_key(cls, key: str) -> Side:
        match = _SIDE.match(key)
        if not match:
            raise InputError(
                f"{key!r} is not a setting side (ARCH/ALGORITHM, optionally followed by [C,..] "
                "and @DATASET)"
            )
        classes = match["classes"]
        parsed = tuple(int(c) for c in classes.split(",") if c) if classes is not None else None
        return cls(match["arch"], match["algorithm"], parsed, match["home"])

    @classmethod
    def of_lineage(cls, lineage: Lineage) -> Side:
        """A model's side: its architecture and algorithm (a derived model's root's), and the
        classes it predicts (:attr:`~modelkin.lineage.Lineage.task_classes`)."""
        return cls(*lineage.profile, lineage.task_classes)

    @classmethod
    def on_probe(cls, lineage: Lineage, probe_dataset: str) -> Side:
        """A model's side on ``probe_dataset``'s probe: :meth:`of_lineage` on its own data set's;
        on another's, the probe's classes it predicts (matched by name) and its own data set."""
        if lineage.dataset == probe_dataset:
            return cls.of_lineage(lineage)
        from ..signatures.store import probe_class_columns

        _, classes = probe_class_columns(lineage, probe_dataset)
        return cls.guest(lineage, classes)

    @classmethod
    def guest(cls, lineage: Lineage, probe_classes: Sequence[int] | None) -> Side:
        """The side of a model of another data set, from the probe's classes it predicts."""
        classes = None if probe_classes is None else tuple(probe_classes)
        return cls(*lineage.profile, classes, lineage.dataset)


@dataclass(frozen=True)
class Setting:
    """What a reference is specific to: the probe's data set and the two sides, unordered."""

    dataset: str
    side_a: Side
    side_b: Side

    @classmethod
    def of(cls, dataset: str, side_a: Side, side_b: Side) -> Setting:
        a, b = sorted(
            [side_a, side_b], key=lambda s: (s.arch, s.algorithm, s.classes or (), s.home or "")
        )
        return cls(str(dataset), a, b)

    @property
    def key(self) -> str:
        return f"{self.dataset}:{self.side_a.key}~{self.side_b.key}"

    @classmethod
    def from_key(cls, key: str) -> Setting:
        try:
            dataset, rest = key.split(":", 1)
            a, b = rest.split("~", 1)
        except ValueError:
            raise InputError(
                f"{key!r} is not a setting key (DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM)"
            ) from None
        return cls.of(dataset, Side.from_key(a), Side.from_key(b))

    def __str__(self) -> str:
        return self.key


@dataclass
class ReferenceDistance:
    """Mean and spread of one distance over the unrelated pairs of one setting."""

    metric: str
    setting: str
    mean: float
    std: float
    n: int  # unrelated pairs
    families: int  # independent families among them
    min_families: int
    sufficient: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReferenceDistance:
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)


def reference_distance(
    distances: Sequence[float],
    *,
    metric: str,
    setting: str | Setting,
    families: int,
    min_families: int = 5,
    on_insufficient: str = "warn",
    quiet: bool = False,
) -> ReferenceDistance:
    """The reference of ``setting`` from the distances of its unrelated pairs.

    Fewer than ``min_families`` independent families: :class:`InsufficientReference`
    (``on_insufficient="error"``) or a warning and a reference marked ``sufficient=False``; its
    pairs then get the verdict ``not enough independent models``.
    """
    if on_insufficient not in ON_INSUFFICIENT:
        raise InputError(
            f"on_insufficient must be one of {ON_INSUFFICIENT}, got {on_insufficient!r}"
        )
    values = np.asarray([d for d in distances if np.isfinite(d)], dtype=np.float64)
    n = int(values.size)
    sufficient = families >= min_families
    if not sufficient and not quiet:
        message = (
            f"the reference for {setting} ({metric}) has {families} independent famil"
            f"{'y' if families == 1 else 'ies'} of unrelated models, fewer than the {min_families} "
            "that calibrated verdicts need: train more independent seeds of this setting "
            "(zoo.seeds or distances.reference_models in config.yaml), or lower "
            "distances.calibration.min_families; its pairs get no verdict"
        )
        if on_insufficient == "error":
            raise InsufficientReference(message)
        warnings.warn(message, InsufficientReferenceWarning, stacklevel=2)
        log.warning(message)
    return ReferenceDistance(
        metric=metric,
        setting=str(setting),
        mean=float(values.mean()) if n else float("nan"),
        std=float(values.std(ddof=1)) if n > 1 else float("nan"),
        n=n,
        families=int(families),
        min_families=int(min_families),
        sufficient=sufficient,
    )


@dataclass
class Verdict:
    """A distance against its setting's reference: the normalised distance, the calibrated
    p-value and verdict, and what they rest on."""

    metric: str
    distance: float
    normalised: float
    reference_mean: float
    reference_n: int
    reference_families: int
    p_value: float
    verdict: str
    alpha: float
    model: str  # the calibration model

    @classmethod
    def of(
        cls,
        metric: str,
        distance: float,
        reference: ReferenceDistance,
        judgement: Judgement,
        *,
        alpha: float,
        model: str,
        reference_mean: float | None = None,
    ) -> Verdict:
        mean = reference.mean if reference_mean is None else reference_mean
        usable = np.isfinite(distance) and np.isfinite(mean) and mean > 0
        verdict = judgement.verdict if reference.sufficient else NOT_ENOUGH
        return cls(
            metric=metric,
            distance=float(distance),
            normalised=float(distance) / mean if usable else float("nan"),
            reference_mean=float(mean),
            reference_n=judgement.reference_pairs,
            reference_families=judgement.reference_families,
            p_value=judgement.p_value,
            verdict=verdict,
            alpha=alpha,
            model=model,
        )

    def describe(self) -> str:
        if self.verdict == NOT_ENOUGH:
            return (
                f"{self.metric}: {self.distance:.6g} ({self.normalised:.3f} x the unrelated mean); "
                f"not enough independent models ({self.reference_families} families) for a verdict"
            )
        p = f"{self.p_value:.2g}" if math.isfinite(self.p_value) else "n/a"
        return (
            f"{self.metric}: {self.distance:.6g} = {self.normalised:.3f} x the unrelated mean "
            f"{self.reference_mean:.6g}; p = {p} against {self.reference_n} unrelated pairs of "
            f"{self.reference_families} families ({self.model} null) -> {self.verdict} at "
            f"alpha {self.alpha:g}"
        )
