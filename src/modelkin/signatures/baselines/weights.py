"""Weight-space distance: the models' parameters compared directly (one architecture only).

Signature: every trainable parameter, flattened in module order and concatenated (float32);
buffers such as batch-norm running statistics are not parameters and are left out.
Distances ``l2`` (Euclidean) and ``cos`` (1 - cosine). Models of different architectures (or class
counts) have parameter vectors of different lengths and get no distance; extraction attacks that
retrain from scratch share nothing in weight space, which is the point of behavioural methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Computed, Distance, SignatureMethod


def l2_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def cos_distance(a: np.ndarray, b: np.ndarray) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(x) * np.linalg.norm(y)
    return float(1.0 - (x @ y) / norms) if norms > 0 else 1.0


class WeightsMethod(SignatureMethod):
    name = "weights"
    description = "flattened parameters (weight-space l2 and cosine; one architecture only)"
    needs = frozenset({"weights"})
    axes = ("parameter",)
    probe_kind = None
    same_architecture_only = True
    distances = (
        Distance("weights", "cos", cos_distance, False, True, False, (0.0, 2.0),
                 "1 - cosine of the flattened parameter vectors."),
        Distance("weights", "l2", l2_distance, False, True, True, (0.0, float("inf")),
                 "Euclidean distance of the flattened parameter vectors."),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        raise NotImplementedError("the weights method reads no probe")

    def probe_inputs(self, probe) -> None:
        return None

    def compute(self, model, probe, *, device, chunk_size=None, **settings: Any) -> Computed:
        vectors = [p.detach().double().cpu().numpy().ravel() for p in model.parameters()]
        return Computed(np.concatenate(vectors).astype(np.float32), {"parameters": "module order"})
