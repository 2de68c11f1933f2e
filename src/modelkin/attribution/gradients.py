"""Per-sample gradients of the margin f(z) = logit_y − logsumexp_{j≠y} logit_j, projected."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..precision import DEFAULT_PRECISION, check_precision, compute_precision
from ..progress import progress
from .projection import GradientProjector
from .settings import AttributionError


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
                with compute_precision(precision, device):
                    grads = grad_fn(free, fixed, buffers, x, y)
                    flat = torch.cat([grads[name].reshape(len(y), -1) for name in names], dim=1)
                    projected = flat if matrix is None else flat @ matrix
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
