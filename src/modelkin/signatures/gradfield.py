"""ModelGiF (Song et al., ICCV 2023): a model's signature is its gradient field on reference points.

For reference point x with baseline x0 and target class c, on the straight path
x0 + alpha (x - x0) with Gauss-Legendre nodes alpha_1 < ... < alpha_K and weights
w_k (numpy's ``leggauss(K)`` mapped to [0, 1]; they sum to 1):

    F_k(x) = (x - x0) * sum_{j <= k} w_j grad_x f_c(x0 + alpha_j (x - x0)),  k = 1..K

F_K is integrated gradients (captum's ``method="gausslegendre"``) and satisfies
completeness, sum(F_K) ~= f_c(x) - f_c(x0). The signature has shape (N, K, C*H*W).

The baseline is 0 in the model's normalised input space, i.e. the data set's mean
colour in modelkin's [0, 1] pixel space (models normalise inside). Integrated
gradients taken in pixel space and in normalised space are the same attribution
(the normalisation is an affine per-channel map, whose Jacobian cancels against
(x - x0)), so this matches the reference, which works in normalised space.

Distances: mean over points and steps of 1 - cos(F^A_{i,k}, F^B_{i,k})
(:func:`field_cosine_distance`). Reference points for IP protection are chosen among
candidates by how far apart independent models' fields are
(:func:`select_reference_points`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import Split, load_split
from ..device import resolve_device
from ..io import file_sha256
from ..progress import progress
from .store import (
    Signature,
    SignatureError,
    check_comparable,
    read_probe,
    read_signature,
    write_probe,
    write_signature,
)
from .zest import check_input_shape

log = logging.getLogger(__name__)

METHOD = "gradfield"
AXES = ("point", "step", "input")
TARGETS = ("argmax", "label")
# Images (points x steps) per forward/backward pass when chunk_size is None: on 2 CPU cores LeNet
# runs 11k images/s in batches of 128 but 3k/s in batches of 8192; GPUs want large batches.
AUTO_CHUNK_SIZE = {"cuda": 4096, "cpu": 128}


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Path positions alpha_k in (0, 1), ascending, and weights w_k summing to 1 (float64)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be positive, got {n_steps}")
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


class GradientField:
    """Batched gradient fields: every (point, step) of a chunk goes through one forward and one backward.

    ``baseline``: ``"zero"`` (0 in the model's normalised space: the model's
    ``input_mean``, the data set's mean colour), or a tensor broadcastable to the
    points: (C,), (C, H, W) or (N, C, H, W) in [0, 1] pixel space.
    ``chunk_size`` counts images per forward pass (points x steps; at least one point's
    steps); ``None`` picks a size per device (:data:`AUTO_CHUNK_SIZE`).
    """

    def __init__(
        self,
        n_steps: int = 50,
        baseline: str | torch.Tensor | np.ndarray = "zero",
        chunk_size: int | None = None,
        device: str | torch.device = "auto",
    ):
        self.alphas, self.weights = gauss_legendre(n_steps)
        self.n_steps = n_steps
        if isinstance(baseline, str) and baseline != "zero":
            raise ValueError(
                f"baseline must be 'zero' or a tensor of pixel values, got {baseline!r}"
            )
        self.baseline = baseline
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self.device = device

    def resolve_baseline(self, model: torch.nn.Module, points: torch.Tensor) -> torch.Tensor:
        """The baseline broadcast to the points' shape (a view, no copy), on the points' device."""
        if isinstance(self.baseline, str):
            mean = getattr(model, "input_mean", None)
            if mean is None:
                raise ValueError(
                    "baseline='zero' needs a modelkin model (it reads the model's input_mean); for another "
                    "model pass the baseline explicitly, e.g. GradientField(baseline=torch.tensor(mean_colour))"
                )
            base = mean.detach().float()
        else:
            base = torch.as_tensor(self.baseline, dtype=torch.float32)
        base = base.to(points.device)
        if base.ndim == 1:
            base = base.reshape(1, -1, 1, 1)
        elif base.ndim == 3:
            base = base.unsqueeze(0)
        try:
            return torch.broadcast_to(base, points.shape)
        except RuntimeError:
            raise ValueError(
                f"baseline of shape {tuple(base.shape)} does not fit points of shape {tuple(points.shape)}"
            ) from None

    def signature(
        self, model: torch.nn.Module, points: torch.Tensor, targets: torch.Tensor
    ) -> np.ndarray:
        """(N, n_steps, C*H*W) float32 cumulative gradient field of the raw target logits.

        ``points`` (N, C, H, W) in [0, 1], ``targets`` (N,) class indices. The model is moved
        to the device and run in eval mode (its training flag is restored afterwards).
        """
        device = resolve_device(self.device)
        points = torch.as_tensor(points, dtype=torch.float32)
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if points.ndim != 4 or targets.shape[0] != points.shape[0]:
            raise ValueError(
                f"need points (N, C, H, W) and targets (N,), got {tuple(points.shape)} and {tuple(targets.shape)}"
            )
        model.to(device)
        was_training = model.training
        model.eval()
        try:
            return self._fields(model, points, targets, device)
        finally:
            model.train(was_training)

    def _fields(self, model, points, targets, device) -> np.ndarray:
        n = points.shape[0]
        dims = int(np.prod(points.shape[1:]))
        k = self.n_steps
        alphas = torch.as_tensor(self.alphas, dtype=torch.float32, device=device).reshape(
            1, k, 1, 1, 1
        )
        weights = torch.as_tensor(self.weights, dtype=torch.float64, device=device).reshape(1, k, 1)
        baseline = self.resolve_baseline(model, points)
        out = np.empty((n, k, dims), dtype=np.float32)
        chunk = self.chunk_size or AUTO_CHUNK_SIZE.get(device.type, AUTO_CHUNK_SIZE["cuda"])
        per_chunk = max(1, chunk // k)
        for start in progress(range(0, n, per_chunk), desc="gradient fields"):
            stop = min(start + per_chunk, n)
            x = points[start:stop].to(device)
            x0 = baseline[start:stop].to(device)
            diff = x - x0
            path = (x0.unsqueeze(1) + alphas * diff.unsqueeze(1)).reshape(-1, *x.shape[1:])
            path.requires_grad_(True)
            logits = model(path)
            chosen = targets[start:stop].to(device).repeat_interleave(k)
            (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), path)
            # The cumulative sum runs in float64 so that F_K matches a direct sum to float32 precision.
            field = (grad.reshape(stop - start, k, dims).double() * weights).cumsum(dim=1)
            field = field * diff.reshape(stop - start, 1, dims).double()
            out[start:stop] = field.float().cpu().numpy()
        return out


@torch.no_grad()
def predicted_classes(
    model: torch.nn.Module, points: torch.Tensor, device, batch_size: int = 1024
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        out = [
            model(points[i : i + batch_size].to(device)).argmax(1).cpu()
            for i in range(0, len(points), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# Distances


def per_point_field_distance(a, b, chunk_points: int = 64) -> np.ndarray:
    """(N,) mean over steps of 1 - cos(F^A_{i,k}, F^B_{i,k}); float64, computed in chunks of points.

    An all-zero field vector counts as orthogonal to everything (cos 0), as in
    ``torch.nn.functional.cosine_similarity``.
    """
    a = a.data if isinstance(a, Signature) else np.asarray(a)
    b = b.data if isinstance(b, Signature) else np.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(
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


def field_cosine_distance(a, b) -> float:
    """Mean over reference points and steps of 1 - cos(F^A_{i,k}, F^B_{i,k}).

    Range [0, 2]; 0 for identical fields, about 1 for unrelated models. Arrays of shape
    (N, steps, D) or :class:`Signature` objects.
    """
    return float(per_point_field_distance(a, b).mean())


# ---------------------------------------------------------------------------------------------
# Probes


@dataclass
class GradfieldProbe:
    """Reference points: points (N, C, H, W) float32 in [0, 1], labels (N,), indices into their split,
    baseline (C,) pixel values (0 in normalised space), params; selected probes add selection_score."""

    points: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    baseline: np.ndarray
    params: dict[str, Any]
    selection_score: np.ndarray | None = None


def make_gradfield_probe(
    split: Split,
    *,
    n_points: int,
    classes: Sequence[int] | None = None,
    baseline: np.ndarray | None = None,
    source: dict[str, Any] | None = None,
) -> GradfieldProbe:
    """The first ``n_points`` images of ``split`` in data set order, optionally only those of ``classes``.

    (Unlearning verification uses the first 500 training images of the forgotten class.)
    """
    labels = split.y.numpy()
    eligible = (
        np.arange(len(labels))
        if classes is None
        else np.flatnonzero(np.isin(labels, list(classes)))
    )
    if n_points < 1 or n_points > len(eligible):
        which = "images" if classes is None else f"images of classes {list(classes)}"
        raise ValueError(
            f"n_points must be between 1 and the {len(eligible)} {which} of the split, got {n_points}"
        )
    index = eligible[:n_points]
    if baseline is None:
        baseline = np.asarray(split.info.mean, dtype=np.float32)
    params = {
        "dataset": split.info.name,
        "input_shape": list(split.x.shape[1:]),
        "n_points": int(n_points),
        "selection": "first_n",
        "classes": None if classes is None else [int(c) for c in classes],
        "baseline": "dataset_mean_colour",
        **(source or {}),
    }
    return GradfieldProbe(
        points=split.x[index].numpy().astype(np.float32),
        labels=labels[index].astype(np.int64),
        indices=index.astype(np.int64),
        baseline=np.asarray(baseline, dtype=np.float32).reshape(-1),
        params=params,
    )


def save_gradfield_probe(probe: GradfieldProbe, path: str | Path) -> Path:
    arrays = {
        "points": probe.points,
        "labels": probe.labels,
        "indices": probe.indices,
        "baseline": probe.baseline,
    }
    if probe.selection_score is not None:
        arrays["selection_score"] = probe.selection_score
    return write_probe(path, arrays, kind=METHOD, params=probe.params)


def load_gradfield_probe(path: str | Path) -> GradfieldProbe:
    stored = read_probe(path, kind=METHOD)
    a = stored.arrays
    missing = [k for k in ("points", "labels", "indices", "baseline") if k not in a]
    if missing:
        raise ValueError(
            f"gradient-field probe {path} lacks {missing}; delete it and build it again"
        )
    return GradfieldProbe(
        a["points"],
        a["labels"],
        a["indices"],
        a["baseline"],
        stored.params,
        a.get("selection_score"),
    )


def gradfield_candidates_file(
    prepared: str | Path,
    output: str | Path,
    *,
    split: str = "train",
    n_points: int = 512,
    classes: Sequence[int] | None = None,
) -> Path:
    """Candidate reference points of a prepared data set (the first ``n_points``, optionally of ``classes``)."""
    data = load_split(prepared, split)
    probe = make_gradfield_probe(data, n_points=n_points, classes=classes, source={"split": split})
    return save_gradfield_probe(probe, output)


# ---------------------------------------------------------------------------------------------
# Signature files


def gradfield_signature_file(
    checkpoint: str | Path,
    probe_path: str | Path,
    output: str | Path,
    *,
    target: str = "argmax",
    n_steps: int = 50,
    device: str = "auto",
    chunk_size: int | None = None,
) -> Path:
    """Compute the gradient field of ``checkpoint`` on the probe's points and write it to ``output``.

    ``target``: ``argmax`` (the model's own prediction on each point; IP protection) or
    ``label`` (the true label; unlearning verification).
    """
    from ..checkpoint import load_checkpoint

    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    probe = load_gradfield_probe(probe_path)
    torch_device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, torch_device)
    check_input_shape(ckpt.model, probe.points.shape[1:], checkpoint, probe_path)
    points = torch.as_tensor(probe.points)
    if target == "argmax":
        targets = predicted_classes(ckpt.model, points, torch_device)
    else:
        targets = torch.as_tensor(probe.labels)
        num_classes = ckpt.meta["num_classes"]
        if int(targets.max()) >= num_classes:
            raise ValueError(
                f"probe labels go up to {int(targets.max())} but {checkpoint} has {num_classes} classes"
            )
    extractor = GradientField(n_steps, torch.as_tensor(probe.baseline), chunk_size, torch_device)
    data = extractor.signature(ckpt.model, points, targets)
    gap = target_logit_gap(
        ckpt.model, points, torch.as_tensor(probe.baseline), targets, torch_device
    )
    completeness = np.abs(data[:, -1].sum(axis=1) - gap)
    log.info(
        "gradient field of %s: shape %s; completeness |sum F_K - (f(x) - f(x0))| median %.2e, max %.2e",
        ckpt.name,
        data.shape,
        np.median(completeness),
        completeness.max(),
    )
    params = {
        "n_steps": n_steps,
        "quadrature": "gausslegendre",
        "target": target,
        "outputs": "logit",
        "baseline": "probe_baseline",
    }
    return write_signature(
        output,
        data,
        method=METHOD,
        params=params,
        axes=AXES,
        checkpoint=checkpoint,
        probe=probe_path,
        extra_datasets={
            "targets": targets.numpy().astype(np.int64),
            "logit_gap": gap.astype(np.float32),
        },
    )


@torch.no_grad()
def target_logit_gap(model, points, baseline, targets, device) -> np.ndarray:
    """f_c(x) - f_c(x0) per point: what the last step of the field should sum to (completeness)."""
    model.eval()
    x = points.to(device)
    x0 = GradientField(1, baseline).resolve_baseline(model, x)
    chosen = targets.to(device)[:, None]
    return (
        (model(x).gather(1, chosen) - model(x0).gather(1, chosen)).squeeze(1).double().cpu().numpy()
    )


def select_reference_points(
    candidate_probe_path: str | Path,
    signature_paths: Sequence[str | Path],
    k: int,
    output: str | Path,
) -> Path:
    """Keep the ``k`` candidates on which independent models' gradient fields differ most.

    Each candidate's score is its distance (mean over steps of 1 - cos) averaged over
    every pair of the given signatures (independent models, all computed on the
    candidate probe). The new probe holds the top ``k`` in rank order (best first, so
    its first k' points are the top k'), with their scores, and records the candidate
    probe's hash, the models and ``k``.
    """
    candidate_probe_path = Path(candidate_probe_path)
    candidates = load_gradfield_probe(candidate_probe_path)
    candidate_hash = file_sha256(candidate_probe_path)
    if len(signature_paths) < 2:
        raise ValueError(
            f"reference-point selection needs signatures of at least two independent models, got {len(signature_paths)}"
        )
    signatures = [read_signature(p) for p in signature_paths]
    for sig in signatures:
        if sig.method != METHOD:
            raise SignatureError(f"{sig.path} is a {sig.method} signature, not a gradient field")
        if sig.probe_sha256 != candidate_hash:
            raise SignatureError(
                f"{sig.path} was computed on probe {sig.attrs.get('probe')} (sha256 {sig.probe_sha256[:12]}), not on "
                f"the candidate probe {candidate_probe_path} (sha256 {candidate_hash[:12]}); rebuild it"
            )
        check_comparable(signatures[0], sig)
    checkpoint_hashes = [sig.attrs["checkpoint_sha256"] for sig in signatures]
    if len(set(checkpoint_hashes)) != len(checkpoint_hashes):
        raise ValueError(
            "reference-point selection got the same checkpoint twice; the models must be independent"
        )
    n_candidates = signatures[0].data.shape[0]
    if not 1 <= k <= n_candidates:
        raise ValueError(f"k must be between 1 and the {n_candidates} candidates, got {k}")
    pairs = list(itertools.combinations(range(len(signatures)), 2))
    score = np.zeros(n_candidates)
    for i, j in progress(pairs, desc="candidate distances"):
        score += per_point_field_distance(signatures[i].data, signatures[j].data)
    score /= len(pairs)
    keep = np.argsort(-score, kind="stable")[:k]
    log.info(
        "kept %d of %d candidates: mean pairwise field distance %.4f (kept) vs %.4f (all), over %d pairs",
        k,
        n_candidates,
        score[keep].mean(),
        score.mean(),
        len(pairs),
    )
    params = {
        **candidates.params,
        "n_points": int(k),
        "selection": {
            "criterion": "highest mean pairwise gradient-field cosine distance between independent models",
            "k": int(k),
            "candidate_probe": str(candidate_probe_path),
            "candidate_probe_sha256": candidate_hash,
            "n_candidates": int(n_candidates),
            "models": [sig.name for sig in signatures],
            "checkpoint_sha256s": checkpoint_hashes,
            "signature_params": signatures[0].params,
        },
    }
    selected = GradfieldProbe(
        points=candidates.points[keep],
        labels=candidates.labels[keep],
        indices=candidates.indices[keep],
        baseline=candidates.baseline,
        params=params,
        selection_score=score[keep].astype(np.float64),
    )
    return save_gradfield_probe(selected, output)
