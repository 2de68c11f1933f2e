"""The methods of a concordance: where each verdict comes from and which way is "similar".

Three kinds of method give a verdict on a pair of models:

* ``distance``: every signature method of :data:`modelkin.signatures.METHODS` (Zest, ModelGiF);
  the pair's reference-normalised signature distance from the distance stage's table
  (``results/distances/{method}.csv``, column ``{metric}_normalised``);
* ``measure``: a representational similarity measure of :mod:`modelkin.measures` (``cka`` by
  default) between the two models' activations at one layer;
* ``stitching``: the relative accuracy (stitched / model 2) of a stitching layer at that layer,
  averaged over both directions (A -> B and B -> A, so that the verdict is symmetric like the
  others); ``stitching`` for the trained layer, ``stitching_ps_inv`` for the least-squares
  ("ps_inv", direct matching) layer without training.

Every verdict is *oriented* so that larger means more similar, from the metadata of the method
(``higher_is_similar`` of the distance or measure registry), without changing its ranking:

* a similarity (``higher_is_similar``: CKA, relative accuracy) is kept as it is;
* a reference-normalised distance d/ref becomes ``1 - d/ref``: 1 for identical behaviour, 0 for a
  pair as far apart as the average independently seeded pair, negative beyond. Unlike ``1/x`` it
  stays finite for a copy (d -> 0) and keeps the reference scale linear, so per-relation means stay
  meaningful;
* a raw distance with no reference becomes ``-d``.

Torch-free: the configuration schema lists :func:`known_methods`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..measures import REGISTRY, get_measure
from ..signatures.registry import METHODS, get_distance
from .defaults import schema_default

# Stitching verdicts: the concordance method -> the stitching result's relative accuracy variant.
STITCHING_VARIANTS = {"stitching": "after", "stitching_ps_inv": "ps_inv"}
STITCHING_DIRECTIONS = ("a_to_b", "b_to_a")
# The measure of the default method list (concordance.methods: null).
DEFAULT_MEASURE = "cka"


class ConcordanceError(InputError):
    """A concordance the configuration or the inputs cannot produce; the message names the fix."""


@dataclass(frozen=True)
class MethodInfo:
    """One column of the concordance: where its per-pair value comes from and which way is
    "similar"."""

    name: str
    kind: str  # "distance" (a distance table), "measure" (activations at a layer), "stitching"
    raw_column: str  # the column of pairs.csv holding the value as the method reports it
    higher_is_similar: bool
    normalised: bool  # a distance divided by its reference (1 = as far as independent pairs)
    description: str
    metric: str | None = None  # a signature method's distance (its table's column)

    def orient(self, values) -> np.ndarray:
        """``values`` turned so that larger means more similar (see the module docstring)."""
        return orient(values, higher_is_similar=self.higher_is_similar, normalised=self.normalised)


def orient(values, *, higher_is_similar: bool, normalised: bool) -> np.ndarray:
    """Similarities unchanged; normalised distances ``1 - x``; raw distances ``-x`` (NaN stays
    NaN)."""
    x = np.asarray(values, dtype=np.float64)
    if higher_is_similar:
        return x.copy()
    return 1.0 - x if normalised else -x


def known_methods() -> list[str]:
    """Every method name a concordance accepts: signature methods, stitching variants, measures."""
    return [*METHODS, *STITCHING_VARIANTS, *REGISTRY]


def method_info(name: str, *, distance_metric: str | None = None) -> MethodInfo:
    """The metadata of a concordance method: a signature method (its distance ``distance_metric``,
    by default the schema's ``concordance.distance_metric``, whose null means each method's
    headline), ``stitching``, ``stitching_ps_inv``, or a measure of ``modelkin.measures``
    (``cka``, ``cca``, ``procrustes``, ...)."""
    if name in METHODS:
        if distance_metric is None:
            distance_metric = schema_default("distance_metric")
        entry = get_distance(name, distance_metric)  # None: the headline; unknown: InputError
        return MethodInfo(
            name,
            "distance",
            f"{name}_{entry.metric}_normalised",
            entry.higher_is_similar,
            True,
            f"{name} {entry.metric} distance / the mean of the unrelated pairs of the pair's "
            f"setting ({entry.description})",
            metric=entry.metric,
        )
    if name in STITCHING_VARIANTS:
        if STITCHING_VARIANTS[name] == "after":
            what = "trained stitching layer"
        else:
            what = "least-squares stitching layer (no training)"
        return MethodInfo(
            name,
            "stitching",
            f"{name}_relative_accuracy",
            True,
            False,
            f"relative accuracy (stitched / model 2) of the {what}, mean of both directions",
        )
    if name in REGISTRY:
        info = get_measure(name)
        return MethodInfo(
            name, "measure", f"{name}_value", info.higher_is_similar, False, info.description
        )
    raise ConcordanceError(
        f"unknown concordance method {name!r}; choose from {', '.join(known_methods())}"
    )


def resolve_methods(methods: Sequence[str] | None, distance_methods: Sequence[str]) -> list[str]:
    """The configured methods, checked; ``None``: the signature methods among ``distance_methods``
    (the distance stage's), :data:`DEFAULT_MEASURE` and both stitching variants."""
    if methods is None:
        methods = [m for m in METHODS if m in distance_methods]
        methods += [DEFAULT_MEASURE, *STITCHING_VARIANTS]
    methods = list(dict.fromkeys(methods))
    for name in methods:
        method_info(name)
    missing = [m for m in methods if m in METHODS and m not in distance_methods]
    if missing:
        raise ConcordanceError(
            f"concordance.methods lists {', '.join(missing)}, whose distance table the workflow "
            f"does not build; add {' and '.join(missing)} to distances.methods or drop them from "
            "concordance.methods"
        )
    if len(methods) < 2:
        raise ConcordanceError(
            f"a concordance needs at least two methods, concordance.methods gives {methods}"
        )
    return methods
