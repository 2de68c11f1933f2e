"""TRAK on files in bounded memory: features and scores written to HDF5 block by block.

The in-memory path (:func:`~modelkin.attribution.trak.featurize`,
:func:`~modelkin.attribution.trak.ensemble_scores`) holds Φ_m [n_train × k] and the scores
[n_train × n_targets] whole: 0.4 GB and 2 GB at CIFAR-10 scale (50,000 training, 10,000 target
examples, k = 2048). Here

* the projected gradients go to the file as they are computed (:class:`DatasetSink`), ΦᵀΦ is
  accumulated block by block, and F = Φ (ΦᵀΦ + λI)⁻¹ / scale overwrites Φ in place, block by
  block: the same arithmetic as :func:`~modelkin.attribution.trak.kernel_features`, row by row;
* the scores τ = (1/M Σ_m F_m G_mᵀ) ⊙ (1/M Σ_m Q_m) are computed and written one block of
  training rows (and, when the targets' gradients do not fit, of targets) at a time.

Blocks are sized from the memory budget (``memory_budget_mb``, default: the configuration's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from ..progress import progress
from .gradients import project_gradients
from .settings import AttributionError, TrakSettings
from .store import StreamedArrays
from .trak import kernel_inverse, projection_setup

MIN_BLOCK_ROWS = 64


def block_rows(row_bytes: int, memory_bytes: int, copies: int = 4) -> int:
    """Rows per block so that ``copies`` working copies of a block fit in a quarter of the
    budget."""
    return max(MIN_BLOCK_ROWS, int(memory_bytes // 4 // max(1, copies * row_bytes)))


class DatasetSink:
    """Projected gradients of one source written to an HDF5 dataset [n, k] in blocks of
    ``rows`` rows (the projection's batches are gathered into whole blocks first)."""

    def __init__(self, dataset: Any, rows: int, writer: StreamedArrays):
        self.dataset = dataset
        self.rows = rows
        self.writer = writer
        n, k = dataset.shape
        self.buffer = np.zeros((min(rows, n), k), dtype=np.float32)
        self.begin = 0  # first row of the buffered block
        self.first = True

    def add(self, start: int, stop: int, block: torch.Tensor, first: bool) -> None:
        values = block.numpy()
        while start < stop:
            if start >= self.begin + len(self.buffer) or start < self.begin:
                raise AttributionError("projected gradients arrived out of order")
            offset = start - self.begin
            take = min(stop - start, len(self.buffer) - offset)
            self.buffer[offset : offset + take] = values[:take]
            self.first = first
            values, start = values[take:], start + take
            end = min(self.begin + len(self.buffer), self.dataset.shape[0])
            if start == end:
                self._flush(end)

    def _flush(self, end: int) -> None:
        block = self.buffer[: end - self.begin]
        self.writer.check(self.dataset.name, block)
        if self.first:
            self.dataset[self.begin : end] = block
        else:  # a later parameter group: add its projection to the first groups'
            self.dataset[self.begin : end] = self.dataset[self.begin : end] + block
        self.begin = 0 if end == self.dataset.shape[0] else end
        self.buffer[:] = 0


def featurize_to_file(
    writer: StreamedArrays,
    model: nn.Module,
    train,
    targets,
    settings: TrakSettings,
    *,
    checkpoint_index: int,
    device: torch.device,
    memory_bytes: int,
    desc: str = "TRAK",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Write ``train_features`` (F_m) and ``target_grads`` (G_m) of one checkpoint to ``writer``
    block by block; return Q_m = 1 − p_y on the training examples and the features' info."""
    was_training = model.training
    model.to(device).eval()
    try:
        sources, projector = projection_setup(
            model, train, targets, settings, checkpoint_index, device
        )
        k = projector.output_dim
        rows = block_rows(8 * k, memory_bytes)
        sinks = {}
        for name, dataset_name in (("train", "train_features"), ("targets", "target_grads")):
            n = next(count for source, _, count in sources if source == name)
            dataset = writer.create(dataset_name, (n, k))
            sinks[name] = DatasetSink(dataset, rows, writer)
        projected = project_gradients(
            model, sources, projector, device, desc, precision=settings.precision, sinks=sinks
        )
    finally:
        model.train(was_training)
    phi = sinks["train"].dataset
    n = phi.shape[0]
    gram = torch.zeros(k, k, dtype=torch.float64, device=device)
    for start in progress(range(0, n, rows), desc="ΦᵀΦ", unit="block"):
        block = torch.from_numpy(phi[start : start + rows]).to(device, torch.float64)
        gram += block.T @ block
    inverse, scale, kernel_info = kernel_inverse(
        gram, n, ridge=settings.ridge, rescale_inverse=settings.rescale_inverse
    )
    for start in progress(range(0, n, rows), desc="features", unit="block"):
        block = torch.from_numpy(phi[start : start + rows]).to(device, torch.float64)
        features = ((block @ inverse) / scale).to(torch.float32).cpu().numpy()
        writer.check("train_features", features)
        phi[start : start + len(features)] = features
    info = {
        "checkpoint_index": checkpoint_index,
        "num_params": projector.num_params,
        "proj_dim": k,
        "parameter_groups": len(projector.groups),
        "device": str(device),
        **kernel_info,
    }
    return projected["train"][1].numpy(), info


def scores_to_file(
    writer: StreamedArrays,
    feature_files: Sequence[str | Path],
    *,
    out_to_loss: bool,
    memory_bytes: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Write ``scores`` [n_train × n_targets] of an ensemble of feature files to ``writer``, one
    block of training rows (and of targets, when the targets' gradients of every checkpoint do
    not fit in a quarter of the budget) at a time; return the mean out-to-loss weights."""
    handles = [h5py.File(path, "r") for path in feature_files]
    try:
        features = [h["train_features"] for h in handles]
        grads = [h["target_grads"] for h in handles]
        n, k = features[0].shape
        n_targets = grads[0].shape[0]
        m = len(handles)
        q = np.mean([np.asarray(h["out_to_loss"], dtype=np.float64) for h in handles], axis=0)
        weight = torch.from_numpy(q).to(device) if out_to_loss else None
        scores = writer.create("scores", (n, n_targets), np.float32)
        columns = n_targets
        if m * n_targets * k * 4 > memory_bytes // 4:
            columns = max(MIN_BLOCK_ROWS, int(memory_bytes // 4 // (m * k * 4)))
        rows = block_rows(8 * columns + 4 * k * m, memory_bytes, copies=2)
        blocks = [(c, r) for c in range(0, n_targets, columns) for r in range(0, n, rows)]
        current = None
        for c0, r0 in progress(blocks, desc="TRAK scores", unit="block"):
            if current != c0:
                g = [torch.from_numpy(t[c0 : c0 + columns]).to(device) for t in grads]
                current = c0
            total = None
            for f, gm in zip(features, g, strict=True):
                part = torch.from_numpy(f[r0 : r0 + rows]).to(device) @ gm.T
                total = part if total is None else total + part
            assert total is not None
            block = total / m
            if weight is not None:
                block = block * weight[r0 : r0 + rows].to(block.dtype)[:, None]
            values = block.to(torch.float32).cpu().numpy()
            writer.check("scores", values)
            scores[r0 : r0 + len(values), c0 : c0 + values.shape[1]] = values
    finally:
        for h in handles:
            h.close()
    return q.astype(np.float32)
