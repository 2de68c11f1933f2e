"""The cached front of stitching: model 1's activations (and soft targets, model 2's genuine
activations) of every training image, computed once per run when the front is fixed.

Where the cache lives (:func:`cache_plan`):

- ``memory``: on the compute device, when it takes at most half of the memory budget on a CPU
  (``memory_budget_mb``, default: the configuration's) or 40% of the free GPU memory;
- ``disk``: otherwise, in files of a temporary directory written once and read back one batch of
  rows at a time with positioned reads (no memory map, so the resident memory stays at one batch:
  a ResNet-18 front at layer2 for 50,000 CIFAR-10 images is 6.6 GB);
- none (the front is recomputed every step) when the front is not fixed (augmentation, an
  adversary, donors in train mode) or ``cache_front`` is false.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Split, iterate_batches
from ..errors import InputError
from .model import StitchedModel, layer_activation
from .options import StitchOptions

CACHE_SHARE_OF_BUDGET = 0.5  # of memory_budget_mb, on a CPU
GPU_SHARE_OF_FREE = 0.4  # of the free GPU memory
KINDS = ("front", "logits1", "logits2", "genuine")


@dataclass
class FixedInputs:
    """Per-image tensors of the training split that do not change during training (on the
    device)."""

    front: torch.Tensor
    logits1: torch.Tensor | None = None
    logits2: torch.Tensor | None = None
    genuine: torch.Tensor | None = None

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """The rows ``index`` (a tensor on the device) of every cached tensor."""
        return {
            kind: None if (t := getattr(self, kind)) is None else t[index.to(t.device)]
            for kind in KINDS
        }


@dataclass
class SpilledInputs:
    """:class:`FixedInputs` in files (one per kind, rows in training order), read a batch at a
    time."""

    directory: Path
    device: torch.device
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per kind: one row's shape
    rows: int = 0
    _files: dict[str, Any] = field(default_factory=dict)

    def append(self, kind: str, block: torch.Tensor) -> None:
        values = block.detach().to("cpu", torch.float32).contiguous().numpy()
        if kind not in self._files:
            self.shapes[kind] = tuple(values.shape[1:])
            self._files[kind] = open(self.directory / f"{kind}.f32", "wb")  # noqa: SIM115
        self._files[kind].write(values.tobytes())
        if kind == "front":
            self.rows += len(values)

    def finish(self) -> SpilledInputs:
        for handle in self._files.values():
            handle.close()
        self._files = {
            kind: os.open(self.directory / f"{kind}.f32", os.O_RDONLY) for kind in self.shapes
        }
        return self

    def close(self) -> None:
        for handle in self._files.values():
            if isinstance(handle, int):
                os.close(handle)
            else:
                handle.close()
        self._files = {}

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor | None]:
        rows = index.cpu().numpy()
        order = np.argsort(rows, kind="stable")
        out: dict[str, torch.Tensor | None] = dict.fromkeys(KINDS)
        for kind, shape in self.shapes.items():
            size = 4 * math.prod(shape)
            values = np.empty((len(rows), *shape), dtype=np.float32)
            flat = values.reshape(len(rows), -1)
            for position in order:  # ascending file offsets
                data = os.pread(self._files[kind], size, int(rows[position]) * size)
                flat[position] = np.frombuffer(data, dtype=np.float32)
            out[kind] = torch.from_numpy(values).to(self.device)
        return out

    def __len__(self) -> int:
        return self.rows

    @property
    def nbytes(self) -> int:
        return sum(4 * self.rows * math.prod(shape) for shape in self.shapes.values())


def _teacher_outputs(
    teacher1: nn.Module, teacher2: nn.Module, x: torch.Tensor, options: StitchOptions
):
    """Soft targets: the donors' logits on the clean images, without gradient (None when not
    needed)."""
    need1, need2 = options.needs_targets
    with torch.no_grad():
        logits1 = teacher1(x) if need1 else None
        logits2 = teacher2(x) if need2 else None
    return logits1, logits2


def _genuine(teacher2: nn.Module, layer2: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer_activation(teacher2, layer2, x)


def cache_size_bytes(stitched: StitchedModel, n: int, options: StitchOptions) -> int:
    g = stitched.stitch.geometry
    per_image = math.prod(g.in_shape)
    need1, need2 = options.needs_targets
    classes = getattr(stitched.model2, "num_classes", 0)
    per_image += classes * (int(need1) + int(need2))
    if options.cka_reg > 0:
        per_image += math.prod(g.out_shape)
    return 4 * n * per_image


def cache_plan(
    stitched: StitchedModel,
    n: int,
    options: StitchOptions,
    device: torch.device,
    memory_budget_mb: float | None = None,
) -> str | None:
    """``memory``, ``disk`` or None (recompute the front every step); see the module docstring."""
    if options.cache_front is False or not options.front_is_fixed:
        if options.cache_front is True and not options.front_is_fixed:
            raise InputError(
                "cache_front=true needs a fixed front: eval-mode donors (train_bn false), no "
                "augmentation and no adversary"
            )
        return None
    if options.cache_front is True:
        return "memory"
    size = cache_size_bytes(stitched, n, options)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return "memory" if size <= GPU_SHARE_OF_FREE * free else "disk"
    from ..config import memory_budget_bytes

    budget = memory_budget_bytes(memory_budget_mb)
    return "memory" if size <= CACHE_SHARE_OF_BUDGET * budget else "disk"


def should_cache(
    stitched: StitchedModel,
    n: int,
    options: StitchOptions,
    device: torch.device,
    memory_budget_mb: float | None = None,
) -> bool:
    """Whether the front is cached at all (in memory or on disk)."""
    return cache_plan(stitched, n, options, device, memory_budget_mb) is not None


def precompute_fixed_inputs(
    stitched: StitchedModel,
    teacher1: nn.Module,
    teacher2: nn.Module,
    train: Split,
    options: StitchOptions,
    device: torch.device,
    batch_size: int = 256,
    spill: Path | None = None,
) -> FixedInputs | SpilledInputs:
    """Model 1's L1 activations (and soft targets, model 2's genuine activations) of every training
    image: on the device, or written to files in the directory ``spill``."""
    was_training = stitched.training
    stitched.eval()
    parts: dict[str, list[torch.Tensor]] = {kind: [] for kind in KINDS}
    spilled = SpilledInputs(spill, device) if spill is not None else None
    try:
        with torch.no_grad():
            for x, _ in iterate_batches(train, batch_size, device=device):
                logits1, logits2 = _teacher_outputs(teacher1, teacher2, x, options)
                genuine = _genuine(teacher2, stitched.layer2, x) if options.cka_reg > 0 else None
                blocks = {
                    "front": stitched.front(x),
                    "logits1": logits1,
                    "logits2": logits2,
                    "genuine": genuine,
                }
                for kind, block in blocks.items():
                    if block is None:
                        continue
                    if spilled is not None:
                        spilled.append(kind, block)
                    else:
                        parts[kind].append(block)
    finally:
        stitched.train(was_training)
    if spilled is not None:
        if not len(spilled):
            spilled.finish().close()
            raise InputError("the training split is empty: there is nothing to train T on")
        return spilled.finish()
    cat = {k: torch.cat(v) if v else None for k, v in parts.items()}
    front = cat["front"]
    if front is None:
        raise InputError("the training split is empty: there is nothing to train T on")
    return FixedInputs(front, cat["logits1"], cat["logits2"], cat["genuine"])


def spill_directory(parent: str | Path | None = None) -> tempfile.TemporaryDirectory:
    """A temporary directory for a spilled cache (``parent``: where; default the system's)."""
    return tempfile.TemporaryDirectory(prefix="modelkin-front-", dir=parent)
