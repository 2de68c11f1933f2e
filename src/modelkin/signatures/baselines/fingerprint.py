"""Output-correlation fingerprints: how a model's outputs for the probe's images relate to each
other, compared between models (representational similarity analysis of the outputs).

Signature: the (N, N) Pearson correlation matrix between the model's logit vectors of every two
probe images. It does not depend on the order or number of classes, nor on the architecture, so
any two models on the same probe can be compared. Distance ``correlation``: 1 - the Pearson
correlation of the two matrices' upper triangles, in [0, 2].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Computed, Distance, SignatureMethod
from .images import PROBE_KIND, images_probe_file, model_outputs


def correlation_matrix(outputs: np.ndarray) -> np.ndarray:
    """(N, N) Pearson correlation between the rows of ``outputs`` (constant rows: 0)."""
    centred = outputs - outputs.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    return unit @ unit.T


def fingerprint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - Pearson correlation of the upper triangles (diagonal excluded) of two matrices."""
    upper = np.triu_indices(a.shape[0], k=1)
    x, y = np.asarray(a, np.float64)[upper], np.asarray(b, np.float64)[upper]
    x, y = x - x.mean(), y - y.mean()
    norms = np.linalg.norm(x) * np.linalg.norm(y)
    return float(1.0 - (x @ y) / norms) if norms > 0 else 1.0


class OutputCorrelationMethod(SignatureMethod):
    name = "output_correlation"
    description = "correlation matrix of the outputs over a probe (output fingerprint)"
    needs = frozenset({"logits"})
    axes = ("image", "image_b")
    probe_kind = PROBE_KIND
    probe_keys = ("split", "n_images")
    distances = (
        Distance("output_correlation", "correlation", fingerprint_distance, False, True, False,
                 (0.0, 2.0), "1 - Pearson correlation of the two output-correlation matrices."),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        defaults = self.settings_from_config(self.config_defaults(), "probe")
        return images_probe_file(prepared, output, **{**defaults, **settings})

    def compute(self, model, probe, *, device, chunk_size=None, **settings: Any) -> Computed:
        logits = model_outputs(model, probe, device, batch_size=chunk_size or 512)
        matrix = correlation_matrix(logits).astype(np.float32)
        return Computed(matrix, {"outputs": "logits", "correlation": "pearson"})
