"""Layer activations of a model on a probe, and their (samples, features) matrices for the
measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..models.layers import capture, check_layers
from ..progress import progress

CONV_MODES = ("flatten", "spatial")


def capture_activations(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    desc: str = "activations",
) -> dict[str, torch.Tensor]:
    """Outputs of ``layers`` for every input of ``x``, in eval mode without gradients, gathered on
    the CPU.

    The model runs on ``device`` and is put back on its own device and into its own train/eval mode
    after.
    """
    from ..device import resolve_device

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    check_layers(model, layers)
    target = resolve_device(device)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    gathered: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    model.to(target).eval()
    try:
        with torch.no_grad():
            for start in progress(
                range(0, len(x), batch_size), desc=desc, total=-(-len(x) // batch_size)
            ):
                acts = capture(model, x[start : start + batch_size].to(target), layers)
                for name in layers:
                    gathered[name].append(acts[name].cpu())
    finally:
        model.to(home).train(was_training)
    return {name: torch.cat(chunks) for name, chunks in gathered.items()}


@dataclass
class Representation:
    """One layer's activations as the (samples, features) float64 matrix the measures take."""

    layer: str
    shape: tuple[int, ...]  # one input's activation shape
    matrix: np.ndarray
    grid: (
        tuple[int, ...] | None
    )  # spatial mode: positions per input (() for a dense layer); None in flatten mode
    sampling: str
    _rotated: np.ndarray | None = field(default=None, repr=False)

    @property
    def features(self) -> int:
        return self.matrix.shape[1]

    def rotated(self) -> np.ndarray:
        """``X V = U S`` of the thin SVD ``X = U S V^T``, null directions dropped.

        This is X expressed in its own principal axes: an orthogonal change of feature basis, so any
        measure invariant to orthogonal maps gives the same value on it, and it is at most n columns
        wide. It is computed from the *uncentred* matrix, so measures that centre and measures that
        do not (reference_cca) both see exactly X rotated.
        """
        if self._rotated is None:
            X = self.matrix
            if X.shape[1] <= X.shape[0]:
                self._rotated = X
            else:
                U, s, _ = np.linalg.svd(X, full_matrices=False)
                # numpy's matrix_rank tolerance on the original shape: directions the measures would
                # treat as null on X are not promoted to real ones on the narrower rotated matrix.
                keep = s > (s[0] * max(X.shape) * np.finfo(np.float64).eps if s.size else 0.0)
                keep[0] = (
                    True  # an all-zero layer stays a (zero) matrix, for the measures to reject
                )
                self._rotated = U[:, keep] * s[keep]
        return self._rotated


def _spatial_rows(n_rows: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices to keep, the same for every layer with the same number of rows (None:
    all)."""
    if max_rows is None or n_rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_rows, replace=False))


def to_representation(
    layer: str,
    acts: torch.Tensor,
    conv_mode: str,
    *,
    max_spatial_samples: int | None = None,
    seed: int = 0,
) -> Representation:
    """Flatten: one row per input, (n, c*h*w). Spatial: one row per (input, position), (n*h*w, c),
    optionally a seeded subsample of ``max_spatial_samples`` rows (identical rows for every layer
    with the same number of inputs and positions, so the two models' rows stay paired)."""
    n, shape = acts.shape[0], tuple(acts.shape[1:])
    if conv_mode == "flatten" or len(shape) < 2:
        matrix = acts.reshape(n, -1).double().numpy()
        grid: tuple[int, ...] | None = None if conv_mode == "flatten" else ()
        return Representation(layer, shape, matrix, grid, f"{n} inputs")
    channels, grid = shape[0], shape[1:]
    positions = int(np.prod(grid))
    # Row i*positions + p is input i at position p: the order of to_matrix(acts, "spatial").
    rows = acts.reshape(n, channels, positions).transpose(1, 2).reshape(n * positions, channels)
    keep = _spatial_rows(n * positions, max_spatial_samples, seed)
    if keep is None:
        sampling = f"{n} inputs x {positions} positions"
    else:
        rows = rows[torch.as_tensor(keep)]
        sampling = f"{len(keep)} of {n * positions} (input, position) rows, seed {seed}"
    return Representation(layer, shape, rows.double().numpy(), grid, sampling)
