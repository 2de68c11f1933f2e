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

This module computes fields (torch); :mod:`.distance` compares them and :mod:`.select`
chooses reference points among candidates.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ...device import resolve_device
from ...errors import InputError
from ...precision import DEFAULT_PRECISION, check_precision, compute_precision
from ...progress import progress
from ..base import Computed, auto_chunk
from .probe import GradfieldProbe

log = logging.getLogger(__name__)

TARGETS = ("argmax", "label")
FIELD_DTYPES = ("float32", "float16")
# Images (points x steps) per forward/backward pass when chunk_size is None: on 2 CPU cores LeNet
# runs 11k images/s in batches of 128 but 3k/s in batches of 8192; GPUs want large batches.
AUTO_CHUNK_SIZE = {"cuda": 4096, "cpu": 128}


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Path positions alpha_k in (0, 1), ascending, and weights w_k summing to 1 (float64)."""
    if n_steps < 1:
        raise InputError(f"n_steps must be positive, got {n_steps}")
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


class GradientField:
    """Batched gradient fields: every (point, step) of
    a chunk goes through one forward and one backward.

    ``baseline``: ``"zero"`` (0 in the model's normalised space: the model's
    ``input_mean``, the data set's mean colour), or a tensor broadcastable to the
    points: (C,), (C, H, W) or (N, C, H, W) in [0, 1] pixel space.
    ``chunk_size`` counts images per forward pass (points x steps, or a block of one point's
    steps when they do not all fit); ``None`` picks a size per device
    (:data:`AUTO_CHUNK_SIZE`, scaled down for inputs larger than 3x32x32). ``precision`` is the
    arithmetic of the forward and backward passes (:mod:`modelkin.precision`); the path sums are
    float64 whatever it is.
    """

    def __init__(
        self,
        n_steps: int = 50,
        baseline: str | torch.Tensor | np.ndarray = "zero",
        chunk_size: int | None = None,
        device: str | torch.device = "auto",
        precision: str = DEFAULT_PRECISION,
    ):
        self.alphas, self.weights = gauss_legendre(n_steps)
        self.n_steps = n_steps
        if isinstance(baseline, str) and baseline != "zero":
            raise InputError(
                f"baseline must be 'zero' or a tensor of pixel values, got {baseline!r}"
            )
        self.baseline = baseline
        if chunk_size is not None and chunk_size < 1:
            raise InputError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self.device = device
        self.precision = check_precision(precision)

    def resolve_baseline(self, model: torch.nn.Module, points: torch.Tensor) -> torch.Tensor:
        """The baseline broadcast to the points' shape (a view, no copy), on the points' device."""
        if isinstance(self.baseline, str):
            mean = getattr(model, "input_mean", None)
            if mean is None:
                raise InputError(
                    "baseline='zero' needs a modelkin model (it reads the model's "
                    "input_mean); for another model pass the baseline explicitly, "
                    "e.g. GradientField(baseline=torch.tensor(mean_colour))"
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
            raise InputError(
                f"baseline of shape {tuple(base.shape)} does "
                f"not fit points of shape {tuple(points.shape)}"
            ) from None

    def signature(
        self,
        model: torch.nn.Module,
        points: torch.Tensor,
        targets: torch.Tensor,
        out: Any = None,
    ) -> Any:
        """(N, n_steps, C*H*W) float32 cumulative gradient field of the raw target logits.

        ``points`` (N, C, H, W) in [0, 1], ``targets`` (N,) class indices. The model is moved
        to the device and run in eval mode (its training flag is restored afterwards).
        ``out``: an array of that shape to fill chunk by chunk instead (an ``h5py`` dataset
        streams the field to its file, so that it is never whole in memory); it is returned.
        """
        device = resolve_device(self.device)
        points = torch.as_tensor(points, dtype=torch.float32)
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if points.ndim != 4 or targets.shape[0] != points.shape[0]:
            raise InputError(
                "need points (N, C, H, W) and targets (N,), got "
                f"{tuple(points.shape)} and {tuple(targets.shape)}"
            )
        model.to(device)
        was_training = model.training
        model.eval()
        try:
            return self._fields(model, points, targets, device, out)
        finally:
            model.train(was_training)

    def _fields(self, model, points, targets, device, out=None) -> Any:
        n = points.shape[0]
        dims = int(np.prod(points.shape[1:]))
        k = self.n_steps
        check_precision(self.precision, device)
        alphas = torch.as_tensor(self.alphas, dtype=torch.float32, device=device).reshape(
            1, k, 1, 1, 1
        )
        weights = torch.as_tensor(self.weights, dtype=torch.float64, device=device).reshape(1, k, 1)
        baseline = self.resolve_baseline(model, points)
        if out is None:
            out = np.empty((n, k, dims), dtype=np.float32)
        elif tuple(out.shape) != (n, k, dims):
            raise InputError(f"out has shape {tuple(out.shape)}, the field {(n, k, dims)}")
        chunk = self.chunk_size or auto_chunk(AUTO_CHUNK_SIZE, device.type, points.shape[1:])
        # Whole points while a point's steps fit in a chunk, else one point in blocks of steps
        # (the cumulative sum carried from block to block).
        per_chunk, step_block = (max(1, chunk // k), k) if chunk >= k else (1, chunk)
        blocks = [
            (p0, min(p0 + per_chunk, n), s0, min(s0 + step_block, k))
            for p0 in range(0, n, per_chunk)
            for s0 in range(0, k, step_block)
        ]
        running = None
        for p0, p1, s0, s1 in progress(blocks, desc="gradient fields"):
            m, j = p1 - p0, s1 - s0
            x = points[p0:p1].to(device)
            x0 = baseline[p0:p1].to(device)
            diff = x - x0
            path = (x0.unsqueeze(1) + alphas[:, s0:s1] * diff.unsqueeze(1)).reshape(
                -1, *x.shape[1:]
            )
            path.requires_grad_(True)
            chosen = targets[p0:p1].to(device).repeat_interleave(j)
            with compute_precision(self.precision, device):
                logits = model(path)
                (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).float().sum(), path)
            # The cumulative sum runs in float64 so that F_K
            # matches a direct sum to float32 precision.
            summed = (grad.reshape(m, j, dims).double() * weights[:, s0:s1]).cumsum(dim=1)
            if s0 > 0 and running is not None:
                summed = summed + running[:, None, :]
            running = summed[:, -1]
            field = summed * diff.reshape(m, 1, dims).double()
            out[p0:p1, s0:s1] = field.float().cpu().numpy().astype(out.dtype, copy=False)
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


def storage_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, int, int]:
    """HDF5 chunks of a stored field (N, K, D): one point's steps, as many as fit in ~1 MiB (at
    least one step), so that distances read whole points (or steps) per chunk."""
    _, k, d = shape
    return (1, int(min(k, max(1, (1 << 20) // max(1, d * itemsize)))), int(d))


def gradient_field_signature(
    model: torch.nn.Module,
    probe: GradfieldProbe,
    *,
    target: str = "argmax",
    n_steps: int = 50,
    device: torch.device | str = "auto",
    chunk_size: int | None = None,
    precision: str = DEFAULT_PRECISION,
    field_dtype: str = "float32",
    out: Any = None,
) -> Computed:
    """The gradient field of ``model`` on the probe's points, with each point's target class and
    its logit gap f_c(x) - f_c(x0) (the completeness check).

    ``target``: ``argmax`` (the model's own prediction on each point; IP protection) or
    ``label`` (the true label; unlearning verification). ``field_dtype``: ``float32`` or
    ``float16`` (the stored field). ``out``: a callable ``out(shape, dtype, chunks)`` that returns
    an array to fill (e.g. a dataset of the signature file, so that the field streams to disk).
    """
    if target not in TARGETS:
        raise InputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if field_dtype not in FIELD_DTYPES:
        raise InputError(
            f"field_dtype must be one of {', '.join(FIELD_DTYPES)}, got {field_dtype!r}"
        )
    device = resolve_device(device)
    check_precision(precision, device)
    points = torch.as_tensor(probe.points)
    baseline = torch.as_tensor(probe.baseline)
    if target == "argmax":
        targets = predicted_classes(model, points, device)
    else:
        targets = torch.as_tensor(probe.labels)
        num_classes = int(getattr(model, "num_classes", targets.max() + 1))
        if int(targets.max()) >= num_classes:
            raise InputError(
                f"probe labels go up to {int(targets.max())} "
                f"but the model has {num_classes} classes"
            )
    shape = (len(points), n_steps, int(np.prod(points.shape[1:])))
    dtype = np.dtype(field_dtype)
    target_array = (
        out(shape, dtype, storage_chunks(shape, dtype.itemsize))
        if out is not None
        else np.empty(shape, dtype=dtype)
    )
    field = GradientField(n_steps, baseline, chunk_size, device, precision)
    data = field.signature(model, points, targets, out=target_array)
    gap = target_logit_gap(model, points, baseline, targets, device)
    last = np.asarray(data[:, n_steps - 1], dtype=np.float64)  # h5py takes no negative index
    completeness = np.abs(last.sum(axis=1) - gap)
    log.info(
        "gradient field: shape %s; completeness |sum F_K - (f(x) - f(x0))| median %.2e, max %.2e",
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
        "precision": precision,
        "field_dtype": field_dtype,
    }
    extras: dict[str, np.ndarray] = {
        "targets": targets.numpy().astype(np.int64),
        "logit_gap": gap.astype(np.float32),
    }
    return Computed(data, params, extras)
