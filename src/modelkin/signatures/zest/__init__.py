"""Zest (Jia et al., ICLR 2022): a model's signature
is the set of linear LIME surrogates of its logits.

For each of N reference images the image is cut into F_i superpixels; S binary masks switch
them on or off; the model's raw logits on the perturbed images are regressed on the masks by
ordinary least squares without intercept. The signature is concat_i W_i, shape (ΣF_i, C).
Distances compare class-aligned, flattened signatures (l1, l2, linf, cos; cos is the headline).

- :mod:`.extract`: the probe (images, superpixels, masks) and the batched extractor (torch);
- :mod:`.distance`: the distances with greedy class alignment (numpy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..base import Computed, Distance, SignatureMethod
from . import distance as _d

_INF = float("inf")

# What the signature is, independent of the probe (whose own parameters are recorded beside it).
SIGNATURE_PARAMS = {
    "outputs": "logits",
    "surrogate": "ols_no_intercept_min_norm",
    "hide": "probe_mean_colour",
}


class ZestMethod(SignatureMethod):
    name = "zest"
    description = "LIME surrogate weights of the logits on superpixel perturbations (Zest)"
    needs = frozenset({"logits"})
    axes = ("superpixel", "class")
    class_axis = "class"
    probe_kind = "zest"
    probe_keys = ("split", "n_images", "n_samples", "kernel_size", "ratio", "max_dist", "seed")
    signature_keys = ("precision",)
    # The lp norms are metrics for a fixed class correspondence (zest_distance(..., align=False)),
    # but Zest's greedy alignment picks a correspondence per pair and can break the triangle
    # inequality (tests/test_distances.py shows one), so no aligned distance is declared a metric.
    distances = (
        Distance(
            "zest", "cos", _d.zest_cos, False, True, False, (0.0, 2.0),
            "Zest's headline distance: 1 - cosine of the class-aligned, row-major flattened LIME "
            "weights (greedy class alignment on per-class cosine distances).",
        ),
        Distance(
            "zest", "l1", _d.zest_l1, False, True, False, (0.0, _INF),
            "L1 norm of the difference of the class-aligned, flattened LIME weights (alignment on "
            "per-class L1).",
        ),
        Distance(
            "zest", "l2", _d.zest_l2, False, True, False, (0.0, _INF),
            "Euclidean norm of the difference of the class-aligned, flattened LIME weights "
            "(alignment on per-class L2).",
        ),
        Distance(
            "zest", "linf", _d.zest_linf, False, True, False, (0.0, _INF),
            "Largest absolute difference of the class-aligned LIME weights (alignment on "
            "per-class L-inf).",
        ),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        """The probe of a prepared data set; settings left out take the config's defaults."""
        from .extract import zest_probe_file

        defaults = self.settings_from_config(self.config_defaults(), "probe")
        return zest_probe_file(prepared, output, **{**defaults, **settings})

    def compute(
        self, model, probe, *, device, chunk_size=None, precision: str = "fp32", **settings: Any
    ) -> Computed:
        from .extract import ZestExtractor, ZestProbe

        if settings:
            raise InputError(f"unknown Zest signature setting(s) {sorted(settings)}")
        zest_probe = ZestProbe.from_stored(probe)
        data = ZestExtractor(chunk_size, device, precision).signature(model, zest_probe)
        params = {**SIGNATURE_PARAMS, "precision": precision}
        extras = {"num_segments": zest_probe.num_segments}
        if zest_probe.labels is not None:
            extras["labels"] = zest_probe.labels
        return Computed(data, params, extras)

    def pair_distance(self, distance: Distance, a: Any, b: Any) -> float:
        """Models with different class sets (a transfer to a class subset) are compared on the
        rows of the probe images of the classes they share, after class alignment."""
        rows = shared_class_rows(a, b)
        x, y = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        if rows is not None:
            x, y = x[rows], y[rows]
        return distance(x, y)


def _classes_on_probe(signature: Any) -> set[int] | None:
    """The probe's classes a signature's model predicts (None: all): its class subset, or for a
    model of another data set the probe's classes it predicts, matched by name."""
    classes = getattr(signature, "probe_classes", None)
    if classes is None and not hasattr(signature, "probe_classes"):
        classes = signature.lineage.classes
    return set(classes) if classes is not None else None


def shared_class_rows(a: Any, b: Any) -> np.ndarray | None:
    """The signature rows (superpixels) of probe images whose class both models predict, when the
    two models' class sets differ and the signatures know each row's image class; else None."""
    lineages = [getattr(s, "lineage", None) for s in (a, b)]
    extras = [getattr(s, "extras", {}) for s in (a, b)]
    if None in lineages or not all("labels" in e and "num_segments" in e for e in extras):
        return None
    classes = [_classes_on_probe(s) for s in (a, b)]
    if classes[0] == classes[1]:
        return None
    shared = (
        classes[0]
        if classes[1] is None
        else classes[1]
        if classes[0] is None
        else (classes[0] & classes[1])
    )
    if not shared:
        return None
    per_image = np.repeat(np.asarray(extras[0]["labels"]), np.asarray(extras[0]["num_segments"]))
    rows = np.isin(per_image, sorted(shared))
    return rows if rows.any() else None
