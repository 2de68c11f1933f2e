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
    def margin(free, fixed, buffers, x, y):
        logits = torch.func.functional_call(
            model, (free, fixed, buffers), (x.unsqueeze(0),)
        ).squeeze(0)
        is_label = torch.arange(logits.shape[0], device=logits.device) == y
        correct = torch.where(is_label, logits, torch.zeros_like(logits)).sum()
        others = torch.where(is_label, torch.full_like(logits, -math.inf), logits)
        return correct - torch.logsumexp(others, dim=0)

    return margin


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f(z) = logit_y − logsumexp_{j≠y} logit_j for a batch (the quantity TRAK attributes and LDS
    measures)."""
    logits = model(x)
    is_label = torch.nn.functional.one_hot(y, logits.shape[1]).bool()
    correct = logits[is_label]
    return correct - torch.logsumexp(logits.masked_fill(is_label, -math.inf), dim=1)


def _project(
    grads: Mapping[str, torch.Tensor], names: Sequence[str], matrix: torch.Tensor | None, n: int
) -> torch.Tensor:
    """[n, P_group] per-sample gradients times the group's rows of M, one parameter tensor at a
    time: concatenating the gradients first copies n x P floats (a sixth of the CPU time on a
    ResNet-20) to save nothing."""
    if matrix is None:
        return torch.cat([grads[name].reshape(n, -1) for name in names], dim=1)
    projected = None
    row = 0
    for name in names:
        flat = grads[name].reshape(n, -1)
        part = flat @ matrix[row : row + flat.shape[1]]
        projected = part if projected is None else projected.add_(part)
        row += flat.shape[1]
    assert projected is not None
    return projected


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
        torch.func.grad(_margin_function(model)), in_dims=(None, None, None, 0, 0)
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
        for source, batches, n in sources:
            start = 0
            for x, y in batches():
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True).long()
                with compute_precision(precision, device), norms:
                    grads = grad_fn(free, fixed, buffers, x, y)
                    projected = _project(grads, names, matrix, len(y))
                stop = start + len(y)
                if stop > n:
                    raise AttributionError(
                        f"the {source} data yielded more than the {n} examples it declared"
                    )
                out[source].add(start, stop, (projected.float() / norm).cpu(), group_number == 0)
                if group_number == 0:
                    with torch.no_grad():
                        p = torch.softmax(model(x), dim=1).gather(1, y[:, None]).squeeze(1)
                    out_to_loss[source][start:stop] = (1 - p).cpu()
                start = stop
                bar.update(len(y))
            if start != n:
                raise AttributionError(f"the {source} data yielded {start} examples, expected {n}")
        del matrix
    bar.close()
    return {
        name: (sink.values if isinstance(sink, TensorSink) else sink, out_to_loss[name])
        for name, sink in out.items()
    }
