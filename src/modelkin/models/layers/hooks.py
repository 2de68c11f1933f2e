"""Reading and replacing layer outputs with forward hooks: works for any model that runs.

* :func:`capture` records outputs during one ordinary forward pass.
* :func:`activation` is the *front* of a model (input -> layer): the hook
  raises a private exception as soon as the layer has produced its output, so the
  layers after it never run and no fx trace is needed.
* :func:`replaced` makes the layer return another tensor: with the whole model
  run on the input, this is the *end* (layer -> logits) of a model fx cannot
  split there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .discover import LayerError, check_layers, discover, layer_module
from .graph import end_plan


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # module class name
    shape: tuple[int, ...]  # activation shape without the batch dimension
    cut_point: bool
    end: str = ""  # how stitching's end runs from this layer, and why


def layer_table(model: nn.Module, in_shape: Sequence[int] | None = None) -> list[LayerInfo]:
    """Every layer with its module type, activation shape (for one input of ``in_shape``,
    default ``input_shape(model)``), cut-point flag and how stitching's end would run there."""
    rows = []
    for found in discover(model, in_shape):
        plan = end_plan(model, found.name)
        rows.append(
            LayerInfo(
                found.name,
                found.kind,
                found.shape,
                plan.split,
                f"{plan.description}: {plan.reason}",
            )
        )
    return rows


def capture(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str], *, detach: bool = True
) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` and return the outputs of ``layers`` (plus ``"logits"``).

    Detached outputs are copies: a later in-place module (torchvision's
    ``ReLU(inplace=True)`` after ``bn1``) would otherwise change what was captured, and
    ``bn1`` would silently read as its ReLU. With ``detach=False`` the outputs stay in the
    graph (for gradients) and are the tensors themselves.
    """
    check_layers(model, layers, tuple(x.shape[1:]))
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            store[name] = output.detach().clone() if detach else output

        return hook

    handles = [layer_module(model, name).register_forward_hook(hook_for(name)) for name in layers]
    try:
        store["logits"] = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return store


class _Stop(Exception):
    """Raised by a forward hook once the wanted layer has run: the rest of the network is
    skipped."""


def activation(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """``model``'s output at ``layer`` for input ``x``, without running the layers after it.

    The front of a model cut with a hook: the forward pass is interrupted as soon
    as ``layer`` has produced its output. Gradients flow (the caller decides with
    ``torch.no_grad``); works for any layer, cut point or not, because only the
    modules executed before ``layer`` are needed to produce its output. Names are
    not checked here (it runs every batch): check them once with ``check_layers``.
    """
    store: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        store.append(output)
        raise _Stop

    handle = layer_module(model, layer).register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not store:
        raise LayerError(
            f"layer {layer!r} did not run in the forward pass of {type(model).__name__}; "
            "`modelkin layers MODEL` lists the layers that do"
        )
    return store[0]


@contextlib.contextmanager
def replaced(
    model: nn.Module,
    layer: str,
    fn: Callable[[torch.Tensor], torch.Tensor],
    in_shape: Sequence[int] | None = None,
) -> Iterator[nn.Module]:
    """Within the block, the output of ``layer`` is replaced by ``fn(output)``.

    ``in_shape`` (default ``input_shape(model)``) is only used to check the name.
    """
    check_layers(model, [layer], in_shape)
    handle = layer_module(model, layer).register_forward_hook(lambda _m, _i, out: fn(out))
    try:
        yield model
    finally:
        handle.remove()
