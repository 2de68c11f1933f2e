"""Distances between ModelGiF gradient fields (N points, K steps, D inputs), in chunks of points.

All four reduce per (point, step) comparisons of the field vectors F^A_{i,k},
F^B_{i,k} (float64), then average:

- ``cos``: 1 - cos, averaged over points and steps (ModelGiF's distance; a zero
  vector has cosine 0 to everything);
- ``euclidean``: |F^A - F^B|_2, averaged;
- ``cos_max_step``: the largest 1 - cos over the steps of a point, averaged over points;
- ``zscore``: the root-mean-square difference of the z-scored vectors (each
  standardised over its D entries; a constant vector becomes 0), averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHUNK_POINTS = 32


def as_field(signature: Any) -> np.ndarray:
    data = np.asarray(getattr(signature, "data", signature))
    if data.ndim != 3:
        raise ValueError(f"a gradient field has shape (points, steps, inputs); got {data.shape}")
    return data


def per_step_statistics(a: Any, b: Any, chunk_points: int = CHUNK_POINTS) -> dict[str, np.ndarray]:
    """(N, K) arrays: ``cos_distance``, ``euclidean`` and ``zscore_rms`` of every point and step."""
    a, b = as_field(a), as_field(b)
    if a.shape != b.shape:
        raise ValueError(
            f"gradient fields must have the same shape (points, steps, inputs); got {a.shape} and {b.shape}"
        )
    n, k, _ = a.shape
    out = {name: np.empty((n, k)) for name in ("cos_distance", "euclidean", "zscore_rms")}
    for start in range(0, n, chunk_points):
        fa = a[start : start + chunk_points].astype(np.float64)
        fb = b[start : start + chunk_points].astype(np.float64)
        aa = np.einsum("nkd,nkd->nk", fa, fa)
        bb = np.einsum("nkd,nkd->nk", fb, fb)
        ab = np.einsum("nkd,nkd->nk", fa, fb)
        norms = np.sqrt(aa * bb)
        cos = np.divide(ab, norms, out=np.zeros_like(ab), where=norms > 0)
        block = slice(start, start + len(fa))
        out["cos_distance"][block] = 1.0 - cos
        out["euclidean"][block] = np.sqrt(np.maximum(aa + bb - 2.0 * ab, 0.0))
        za, zb = _zscore(fa), _zscore(fb)
        out["zscore_rms"][block] = np.sqrt(np.mean((za - zb) ** 2, axis=2))
    return out


def _zscore(f: np.ndarray) -> np.ndarray:
    centred = f - f.mean(axis=2, keepdims=True)
    std = np.sqrt(np.mean(centred**2, axis=2, keepdims=True))
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)


def field_cos(a, b) -> float:
    return float(per_step_statistics(a, b)["cos_distance"].mean())


def field_euclidean(a, b) -> float:
    return float(per_step_statistics(a, b)["euclidean"].mean())


def field_cos_max_step(a, b) -> float:
    return float(per_step_statistics(a, b)["cos_distance"].max(axis=1).mean())


def field_zscore(a, b) -> float:
    return float(per_step_statistics(a, b)["zscore_rms"].mean())


def all_field_distances(a, b) -> dict[str, float]:
    """Every gradient-field distance from one pass over the fields (what tables use)."""
    stats = per_step_statistics(a, b)
    return {
        "cos": float(stats["cos_distance"].mean()),
        "euclidean": float(stats["euclidean"].mean()),
        "cos_max_step": float(stats["cos_distance"].max(axis=1).mean()),
        "zscore": float(stats["zscore_rms"].mean()),
    }
