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
from ...hdf5 import StoredArray
from ...progress import progress

CHUNK_POINTS = 32


def as_field(signature: Any) -> Any:
    """The (N, K, D) field of a signature, an array, or an array read from disk slice by slice
    (left on disk: a :class:`~modelkin.hdf5.StoredArray` or an ``h5py`` dataset)."""
    data = getattr(signature, "data", signature)
    if not (isinstance(data, StoredArray) or type(data).__module__.startswith("h5py")):
        data = np.asarray(data)
    if len(data.shape) != 3:
        raise InputError(
            f"a gradient field has shape (points, steps, inputs); got {tuple(data.shape)}"
        )
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


def _blocks(n: int, k: int, points: int, steps: int) -> list[tuple[int, int, int, int]]:
    """(point start, point stop, step start, step stop) blocks: whole points while ``points`` of
    them fit (``steps`` == k), else one point at a time in blocks of ``steps`` steps."""
    if steps >= k:
        return [(p, min(p + points, n), 0, k) for p in range(0, n, points)]
    return [(p, p + 1, s, min(s + steps, k)) for p in range(n) for s in range(0, k, steps)]


def gradfield_pairwise(
    fields: Sequence[Any],
    chunk_points: int | None = None,
    desc: str | None = None,
    chunk_bytes: int = 256 << 20,
) -> dict[str, np.ndarray]:
    """Every gradient-field distance for every pair of
    ``fields`` (each (N, K, D)), float64 accumulation.

    ``fields`` may be arrays or arrays on disk read slice by slice (a lazily read signature's
    ``data``, an ``h5py`` dataset): only one block of every field is in memory at a time. A block
    is ``chunk_points`` whole points (default: as many as fit in ``chunk_bytes`` of float64
    working copies, three per field), or, when one point does not fit, a range of one point's
    steps; the result does not depend on the blocks.
    """
    fields = [as_field(f) for f in fields]
    if not fields:
        return {k: np.zeros((0, 0)) for k in ("cos", "euclidean", "cos_max_step", "zscore")}
    shape = tuple(fields[0].shape)
    for f in fields:
        if tuple(f.shape) != shape:
            raise InputError(
                "gradient fields must all have the same shape "
                f"(points, steps, inputs); got {tuple(f.shape)} and {shape}"
            )
    n, k, d = shape
    m = len(fields)
    row_bytes = 3 * m * d * 8  # float64 block, centred copy and z-scores of one (point, step)
    if chunk_points is not None:
        points, steps = max(1, chunk_points), k
    elif row_bytes * k <= chunk_bytes:
        points, steps = max(1, chunk_bytes // (row_bytes * k)), k
    else:
        points, steps = 1, max(1, chunk_bytes // row_bytes)
    sums = {name: np.zeros((m, m)) for name in ("cos", "euclidean", "cos_max_step", "zscore")}
    running_max = np.zeros((m, m))  # the largest 1 - cos over the steps of the current point
    for p0, p1, s0, s1 in progress(
        _blocks(n, k, points, steps), desc=desc or "gradfield distances", unit="block"
    ):
        rows = (p1 - p0) * (s1 - s0)
        # (points*steps, models, inputs): one Gram matrix per (point, step)
        block = np.stack(
            [np.asarray(f[p0:p1, s0:s1], dtype=np.float64).reshape(rows, d) for f in fields],
            axis=1,
        )
        gram = block @ block.transpose(0, 2, 1)
        sq = np.einsum("pmm->pm", gram)
        norms = np.sqrt(sq)
        outer = norms[:, :, None] * norms[:, None, :]
        cos = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
        cos_distance = 1.0 - cos
        euclidean = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0))
        block -= block.mean(axis=2, keepdims=True)
        std = np.sqrt(np.mean(block**2, axis=2, keepdims=True))
        z = np.divide(block, std, out=np.zeros_like(block), where=std > 0)
        del block
        zgram = z @ z.transpose(0, 2, 1) / d
        zsq = np.einsum("pmm->pm", zgram)
        zscore = np.sqrt(np.maximum(zsq[:, :, None] + zsq[:, None, :] - 2.0 * zgram, 0.0))
        sums["cos"] += cos_distance.sum(axis=0)
        sums["euclidean"] += euclidean.sum(axis=0)
        sums["zscore"] += zscore.sum(axis=0)
        per_step = cos_distance.reshape(p1 - p0, s1 - s0, m, m).max(axis=1)
        if s0 == 0 and s1 == k:
            sums["cos_max_step"] += per_step.sum(axis=0)
        else:
            running_max = per_step[0] if s0 == 0 else np.maximum(running_max, per_step[0])
            if s1 == k:
                sums["cos_max_step"] += running_max
    out = {
        "cos": sums["cos"] / (n * k),
        "euclidean": sums["euclidean"] / (n * k),
        "zscore": sums["zscore"] / (n * k),
        "cos_max_step": sums["cos_max_step"] / n,
    }
    for matrix in out.values():
        np.fill_diagonal(matrix, 0.0)
    return out
