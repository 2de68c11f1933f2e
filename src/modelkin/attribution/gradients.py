"""Per-sample gradients of the margin f(z) = logit_y − logsumexp_{j≠y} logit_j, projected."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..precision import DEFAULT_PRECISION, check_precision, compute_precision
from ..progress import progress
from .projection import GradientProjector
from .settings import AttributionError

# Normalisations that torch.func cannot differentiate per example on a bfloat16 activation with
# float32 weights and running statistics.
_FLOAT32_NORMS = frozenset({F.batch_norm, F.instance_norm, F.layer_norm})


class _NormsInFloat32(TorchFunctionMode):
    """Batch, instance and layer norm computed in float32 on a low-precision input, their output
    cast back to the input's precision.

    Why: under autocast a convolution hands the next norm a bfloat16 activation while the norm's
    weight, bias and running statistics stay float32. Eager PyTorch accepts that mixed input, but
    ``vmap(grad(...))`` does not: the batched norm fails with "expected scalar type BFloat16 but
    found Float" (seen with PyTorch 2.14 on the CPU, on any model with BatchNorm at ``precision:
    bf16``). Casting the parameters to bfloat16 instead would also normalise with bfloat16
    statistics (3 digits of a running variance); float32 arithmetic with the output in the
    input's type is what the eager mixed-type norm kernels do, so the forward pass is the one
    autocast runs outside ``vmap``.
    A torch-function mode, not module hooks, so that it also covers norms a model calls
    functionally and leaves the model untouched.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FLOAT32_NORMS:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and x.dtype in (torch.bfloat16, torch.float16):
                if args:
                    args = (x.float(), *args[1:])
                else:
                    kwargs = {**kwargs, "input": x.float()}
                with torch.autocast(x.device.type, enabled=False):
                    return func(*args, **kwargs).to(x.dtype)
        return func(*args, **kwargs)


def _margin_function(model: nn.Module) -> Callable:
    """f(z) for one example, with p_y as the auxiliary output: the forward pass that the gradient
    needs also gives the out-to-loss weight 1 − p_y, so no second forward pass is run."""

    def margin(free, fixed, buffers, x, y):
        logits = torch.func.functional_call(
            model, (free, fixed, buffers), (x.unsqueeze(0),)
        ).squeeze(0)
        is_label = torch.arange(logits.shape[0], device=logits.device) == y
        correct = torch.where(is_label, logits, torch.zeros_like(logits)).sum()
        others = torch.where(is_label, torch.full_like(logits, -math.inf), logits)
        p_y = torch.where(is_label, torch.softmax(logits.detach().float(), dim=0), 0.0).sum()
        return correct - torch.logsumexp(others, dim=0), p_y

    return margin


# oneDNN's linear kernel, where this torch build has it: on a CPU it multiplies float32 matrices
# 1.2x faster than the BLAS behind ``@`` (189 vs 155-169 GFLOP/s for LeNet's 1,024 x 61,706 x 1,024
# on 2 AMD EPYC cores), with the same float32 accuracy.
_ONEDNN_LINEAR = (
    getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available()
    else None
)


def project(gradients: torch.Tensor, matrix: torch.Tensor, precision: str) -> torch.Tensor:
    """``gradients @ matrix`` under ``precision``; float32 on a CPU by oneDNN (as a linear layer
    whose weight is ``matrix``ᵀ)."""
    if (
        _ONEDNN_LINEAR is not None
        and precision == "fp32"
        and gradients.device.type == "cpu"
        and gradients.dtype == matrix.dtype == torch.float32
    ):
        return _ONEDNN_LINEAR(gradients.contiguous(), matrix.T, None, "none", [], "")
    with compute_precision(precision, gradients.device):
        return gradients @ matrix


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f(z) = logit_y − logsumexp_{j≠y} logit_j for a batch (the quantity TRAK attributes and LDS
    measures)."""
    logits = model(x)
    is_label = torch.nn.functional.one_hot(y, logits.shape[1]).bool()
    correct = logits[is_label]
    return correct - torch.logsumexp(logits.masked_fill(is_label, -math.inf), dim=1)


class _GradientRows:
    """Per-sample gradients of consecutive batches gathered into one reused [rows, P_group]
    buffer, projected together: one matrix product over up to ``rows`` examples runs 1.4-1.5x
    faster on a CPU than one per 64-example batch (133 vs 180-198 GFLOP/s on 2 cores for
    LeNet's 61,706 x 1,024 projection), and the reused buffer spares the page faults of a fresh
    concatenation per batch."""

    def __init__(self, width: int, rows: int):
        self.width = width
        self.rows = rows
        self.buffer: torch.Tensor | None = None
        self.filled = 0  # rows of the buffer not projected yet
        self.seen = 0  # examples added so far

    def fits(self, n: int) -> bool:
        return self.buffer is None or self.filled + n <= self.buffer.shape[0]

    def add(self, grads: Mapping[str, torch.Tensor], names: Sequence[str], n: int) -> None:
        if self.buffer is None:
            self.buffer = grads[names[0]].new_empty(max(self.rows, n), self.width)
        column = 0
        for name in names:
            flat = grads[name].reshape(n, -1)
            self.buffer[self.filled : self.filled + n, column : column + flat.shape[1]] = flat
            column += flat.shape[1]
        self.filled += n
        self.seen += n

    def project_into(
        self, sink: Any, matrix: torch.Tensor | None, first: bool, norm: float, precision: str
    ) -> None:
        """Hand the buffered rows, times ``matrix`` / ``norm``, to ``sink`` (examples
        ``seen - filled`` .. ``seen``) and empty the buffer."""
        assert self.buffer is not None
        gathered = self.buffer[: self.filled]
        projected = gathered if matrix is None else project(gathered, matrix, precision)
        sink.add(self.seen - self.filled, self.seen, (projected.float() / norm).cpu(), first)
        self.filled = 0


def gradient_buffer_rows(width: int) -> int:
    """Examples whose gradients are projected together: up to 1,024, within 256 MiB of
    float32 gradients (at least one batch is always held)."""
    return max(1, min(1024, (256 << 20) // (4 * max(1, width))))


class TensorSink:
    """Projected gradients of one source held in memory: an [n, k] float32 tensor on the CPU."""

    def __init__(self, n: int, k: int):
        self.values = torch.zeros(n, k)

    def add(self, start: int, stop: int, block: torch.Tensor, first: bool) -> None:
        self.values[start:stop] += block


def project_gradients(
    model: nn.Module,
    sources: Sequence[tuple[str, Callable[[], Iterator], int]],
    projector: GradientProjector,
    device: torch.device,
    desc: str,
    *,
    precision: str = DEFAULT_PRECISION,
    sinks: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, torch.Tensor]]:
    """Projected gradients and 1 − p_y of every example of every source.

    ``sinks`` (by source name): where the projected gradients go, block by block, as
    ``sink.add(start, stop, block, first)`` (``first``: the first parameter group, whose block is
    written rather than added); default: :class:`TensorSink` (in memory). ``precision``: the
    arithmetic of the gradients and their projection (:mod:`modelkin.precision`).
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    grad_fn = torch.func.vmap(
        torch.func.grad(_margin_function(model), has_aux=True), in_dims=(None, None, None, 0, 0)
    )
    norm = math.sqrt(projector.num_params)
    check_precision(precision, device)
    # fp32 runs no mode at all, so its gradients are exactly what they were without it
    norms = _NormsInFloat32() if precision == "bf16" else nullcontext()
    out = dict(sinks or {})
    for name, _, n in sources:
        if name not in out:
            out[name] = TensorSink(n, projector.output_dim)
    out_to_loss = {name: torch.empty(n) for name, _, n in sources}
    total = sum(n for _, _, n in sources) * len(projector.groups)
    bar = progress(desc=desc, total=total, unit="ex")
    for group_number, names in enumerate(projector.groups):
        matrix = projector.matrix(names)
        free = {name: params[name] for name in names}
        fixed = {name: p for name, p in params.items() if name not in free}
        width = sum(params[name].numel() for name in names)
        first = group_number == 0
        for source, batches, n in sources:
            rows = _GradientRows(width, gradient_buffer_rows(width))
            for x, y in batches():
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True).long()
                seen = rows.seen
                if seen + len(y) > n:
                    raise AttributionError(
                        f"the {source} data yielded more than the {n} examples it declared"
                    )
                if not rows.fits(len(y)):
                    rows.project_into(out[source], matrix, first, norm, precision)
                with compute_precision(precision, device), norms:
                    grads, p_y = grad_fn(free, fixed, buffers, x, y)
                rows.add(grads, names, len(y))
                if first:
                    out_to_loss[source][seen : seen + len(y)] = (1 - p_y).cpu()
                bar.update(len(y))
            if rows.filled:
                rows.project_into(out[source], matrix, first, norm, precision)
            if rows.seen != n:
                raise AttributionError(
                    f"the {source} data yielded {rows.seen} examples, expected {n}"
                )
        del matrix
    bar.close()
    return {
        name: (sink.values if isinstance(sink, TensorSink) else sink, out_to_loss[name])
        for name, sink in out.items()
    }
