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
        return Computed(data, params, {"num_segments": zest_probe.num_segments})
