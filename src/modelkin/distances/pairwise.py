"""All pairwise distances among many signatures of one method, as (M, M) matrices per metric.

Zest signatures are small, so every pair goes through the registry's own function.
Gradient fields are large (N points x K steps x D inputs per model); comparing
every pair separately would read each field M times, so the fields are taken a
chunk of points at a time and every pair's per-(point, step) dot products come
out of one batched Gram product. Both paths give the registry's values (tests
check the batched one against the per-pair functions).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..progress import progress
from .registry import distances_for


def pairwise_distances(
    method: str, signatures: Sequence, metrics: Sequence[str] | None = None, desc: str | None = None
) -> dict[str, np.ndarray]:
    """``{metric: (M, M) symmetric matrix}`` for signatures (arrays or Signature objects) of ``method``."""
    entries = [d for d in distances_for(method) if metrics is None or d.metric in metrics]
    if metrics is not None:
        unknown = sorted(set(metrics) - {d.metric for d in entries})
        if unknown:
            raise ValueError(
                f"unknown {method} metric(s) {unknown}; valid: {[d.metric for d in distances_for(method)]}"
            )
    arrays = [np.asarray(getattr(s, "data", s)) for s in signatures]
    if method == "gradfield":
        full = gradfield_pairwise(arrays, desc=desc)
        return {d.metric: full[d.metric] for d in entries}
    m = len(arrays)
    out = {d.metric: np.zeros((m, m)) for d in entries}
    pairs = list(itertools.combinations(range(m), 2))
    for i, j in progress(pairs, desc=desc or f"{method} distances", unit="pair"):
        for d in entries:
            out[d.metric][i, j] = out[d.metric][j, i] = d(arrays[i], arrays[j])
    return out


def gradfield_pairwise(
    fields: Sequence[np.ndarray],
    chunk_points: int | None = None,
    desc: str | None = None,
    chunk_bytes: int = 256 << 20,
) -> dict[str, np.ndarray]:
    """Every gradient-field distance for every pair of ``fields`` (each (N, K, D)), float64 accumulation.

    ``chunk_points`` points of every field are compared at once (default: as many as fit in
    ``chunk_bytes`` of float64 working copies).
    """
    fields = [np.asarray(f) for f in fields]
    if not fields:
        return {k: np.zeros((0, 0)) for k in ("cos", "euclidean", "cos_max_step", "zscore")}
    shape = fields[0].shape
    for f in fields:
        if f.shape != shape or f.ndim != 3:
            raise ValueError(
                f"gradient fields must all have the same shape (points, steps, inputs); got {f.shape} and {shape}"
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
