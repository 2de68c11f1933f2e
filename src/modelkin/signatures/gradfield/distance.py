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

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ...progress import progress

CHUNK_POINTS = 32


def as_field(signature: Any) -> np.ndarray:
    data = np.asarray(getattr(signature, "data", signature))
    if data.ndim != 3:
        raise InputError(f"a gradient field has shape (points, steps, inputs); got {data.shape}")
    return data


def per_step_statistics(a: Any, b: Any, chunk_points: int = CHUNK_POINTS) -> dict[str, np.ndarray]:
    """(N, K) arrays: ``cos_distance``, ``euclidean`` and ``zscore_rms`` of every point and step."""
    a, b = as_field(a), as_field(b)
    if a.shape != b.shape:
        raise InputError(
            "gradient fields must have the same shape (points, "
            f"steps, inputs); got {a.shape} and {b.shape}"
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


def per_point_field_distance(a, b, chunk_points: int = 64) -> np.ndarray:
    """(N,) mean over steps of 1 - cos(F^A_{i,k}, F^B_{i,k}); float64, computed in chunks of points.

    An all-zero field vector counts as orthogonal to everything (cos 0), as in
    ``torch.nn.functional.cosine_similarity``.
    """
    a, b = as_field(a), as_field(b)
    if a.shape != b.shape or a.ndim != 3:
        raise InputError(
            f"gradient fields must have the same shape (N, steps, D); got {a.shape} and {b.shape}"
        )
    out = np.empty(a.shape[0], dtype=np.float64)
    for start in range(0, a.shape[0], chunk_points):
        fa = a[start : start + chunk_points].astype(np.float64)
        fb = b[start : start + chunk_points].astype(np.float64)
        dot = np.einsum("nkd,nkd->nk", fa, fb)
        norms = np.sqrt(np.einsum("nkd,nkd->nk", fa, fa) * np.einsum("nkd,nkd->nk", fb, fb))
        cos = dot / np.maximum(norms, 1e-8)
        out[start : start + chunk_points] = (1.0 - cos).mean(axis=1)
    return out


def gradfield_pairwise(
    fields: Sequence[np.ndarray],
    chunk_points: int | None = None,
    desc: str | None = None,
    chunk_bytes: int = 256 << 20,
) -> dict[str, np.ndarray]:
    """Every gradient-field distance for every pair of
    ``fields`` (each (N, K, D)), float64 accumulation.

    ``chunk_points`` points of every field are compared at once (default: as many as fit in
    ``chunk_bytes`` of float64 working copies).
    """
    fields = [np.asarray(f) for f in fields]
    if not fields:
        return {k: np.zeros((0, 0)) for k in ("cos", "euclidean", "cos_max_step", "zscore")}
    shape = fields[0].shape
    for f in fields:
        if f.shape != shape or f.ndim != 3:
            raise InputError(
                "gradient fields must all have the same shape "
                f"(points, steps, inputs); got {f.shape} and {shape}"
            )
    n, k, d = shape
    m = len(fields)
    if chunk_points is None:
        chunk_points = max(1, int(chunk_bytes // (k * m * d * 8)))
    sums = {name: np.zeros((m, m)) for name in ("cos", "euclidean", "cos_max_step", "zscore")}
    for start in progress(
        range(0, n, chunk_points), desc=desc or "gradfield distances", unit="chunk"
    ):
        stop = min(start + chunk_points, n)
        # (points*steps, models, inputs): one Gram matrix per (point, step)
        block = np.stack([f[start:stop].reshape(-1, d) for f in fields], axis=1).astype(np.float64)
        gram = block @ block.transpose(0, 2, 1)
        sq = np.einsum("pmm->pm", gram)
        norms = np.sqrt(sq)
        outer = norms[:, :, None] * norms[:, None, :]
        cos = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
        cos_distance = 1.0 - cos
        euclidean = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0))
        centred = block - block.mean(axis=2, keepdims=True)
        std = np.sqrt(np.mean(centred**2, axis=2, keepdims=True))
        z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
        zgram = z @ z.transpose(0, 2, 1) / d
        zsq = np.einsum("pmm->pm", zgram)
        zscore = np.sqrt(np.maximum(zsq[:, :, None] + zsq[:, None, :] - 2.0 * zgram, 0.0))
        sums["cos"] += cos_distance.sum(axis=0)
        sums["euclidean"] += euclidean.sum(axis=0)
        sums["zscore"] += zscore.sum(axis=0)
        sums["cos_max_step"] += cos_distance.reshape(stop - start, k, m, m).max(axis=1).sum(axis=0)
    out = {
        "cos": sums["cos"] / (n * k),
        "euclidean": sums["euclidean"] / (n * k),
        "zscore": sums["zscore"] / (n * k),
        "cos_max_step": sums["cos_max_step"] / n,
    }
    for matrix in out.values():
        np.fill_diagonal(matrix, 0.0)
    return out
