"""Softmax outputs on a probe: how often two models disagree, and how far their outputs are.

Signature: the (N, C) softmax probabilities on the probe's images: by default blends of two
images of different classes (``blend: 0.5``), where unrelated models disagree on about a third
of the images and a copy on a few percent; on natural images (``blend: null``) every good model
agrees with every other on nearly all of them. Distances: ``disagreement``
(the fraction of images whose predicted classes differ) and ``kl`` (the mean over images of the
symmetric KL divergence (KL(p||q) + KL(q||p)) / 2, natural log). Both need the same classes in
the same order, so models with different class sets get no distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Computed, Distance, SignatureMethod
from .images import PROBE_KIND, images_probe_file, model_outputs

_EPS = 1e-12


def disagreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.argmax(a, axis=1) != np.argmax(b, axis=1)))


def symmetric_kl(a: np.ndarray, b: np.ndarray) -> float:
    p = np.clip(np.asarray(a, np.float64), _EPS, 1.0)
    q = np.clip(np.asarray(b, np.float64), _EPS, 1.0)
    kl_pq = (p * (np.log(p) - np.log(q))).sum(axis=1)
    kl_qp = (q * (np.log(q) - np.log(p))).sum(axis=1)
    return float(np.mean((kl_pq + kl_qp) / 2.0))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class OutputsMethod(SignatureMethod):
    name = "outputs"
    description = (
        "softmax outputs on blends of two images of different classes: prediction disagreement "
        "and symmetric KL"
    )
    needs = frozenset({"logits"})
    axes = ("image", "class")
    class_axis = "class"  # models with other class sets are comparable, but get no distance
    probe_kind = PROBE_KIND
    probe_keys = ("split", "n_images", "blend")
    distances = (
        Distance("outputs", "disagreement", disagreement, False, True, True, (0.0, 1.0),
                 "Fraction of probe images whose predicted classes differ."),
        Distance("outputs", "kl", symmetric_kl, False, True, False, (0.0, float("inf")),
                 "Mean over probe images of (KL(p||q) + KL(q||p)) / 2 of the softmax outputs."),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        defaults = self.settings_from_config(self.config_defaults(), "probe")
        return images_probe_file(prepared, output, **{**defaults, **settings})

    def compute(self, model, probe, *, device, chunk_size=None, **settings: Any) -> Computed:
        logits = model_outputs(model, probe, device, batch_size=chunk_size or 512)
        return Computed(softmax(logits).astype(np.float32), {"outputs": "softmax"})

    def pair_distance(self, distance: Distance, a: Any, b: Any) -> float:
        x, y = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        if x.shape != y.shape or not (_probe_order(a) and _probe_order(b)):
            return float("nan")  # different classes: outputs are not comparable
        return distance(x, y)


def _probe_order(signature: Any) -> bool:
    """Whether each output column is the probe data set's class of the same index: always for a
    model on its own data set's probe; for one of another data set, where the class names match
    column by column."""
    columns = getattr(signature, "probe_columns", None)
    return columns is None or columns == list(range(len(columns)))
