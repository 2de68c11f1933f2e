"""Named layers: list them, read their activations, replace them, split a model at one.

A layer name is the qualified name of a leaf module (``conv1``, ``layer2.1.add``)
that the model calls exactly once. Names come from a ``torch.fx`` trace, so the
same code serves the zoo and users' own fx-traceable models. A layer is a *cut
point* when everything after it depends on the input only through it; only then
can a model be split into ``front`` (input -> layer) and ``end`` (layer -> logits)
without running the rest of the front.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import fx, nn

from ..errors import InputError


class LayerError(InputError):
    """A layer name that does not exist or cannot be used the way it was asked for."""


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # module class name
    shape: tuple[int, ...]  # activation shape without the batch dimension
    cut_point: bool


def _trace(model: nn.Module) -> fx.GraphModule:
    cached = getattr(model, "_modelkin_trace", None)
    if cached is not None:
        return cached
    try:
        traced = fx.symbolic_trace(model)
    except Exception as err:
        raise LayerError(
            f"cannot trace {type(model).__name__} with torch.fx ({err}); named layers need an "
            "fx-traceable model"
        ) from err
    object.__setattr__(
        model, "_modelkin_trace", traced
    )  # plain attribute, not a registered submodule
    return traced


def layer_names(model: nn.Module) -> list[str]:
    """Leaf modules called exactly once, in execution order."""
    counts: dict[str, int] = {}
    order: list[str] = []
    for node in _trace(model).graph.nodes:
        if node.op == "call_module":
            if node.target not in counts:
                order.append(node.target)
            counts[node.target] = counts.get(node.target, 0) + 1
    return [name for name in order if counts[name] == 1]


def check_layers(model: nn.Module, names: Sequence[str]) -> None:
    valid = layer_names(model)
    missing = [n for n in names if n not in valid]
    if missing:
        raise LayerError(
            f"unknown layer(s) {', '.join(map(repr, missing))} for {type(model).__name__}; valid "
            f"layers: {', '.join(valid)}"
        )


def input_shape(model: nn.Module) -> tuple[int, ...]:
    """The input shape (C, H, W) of a modelkin model (its ``in_shape`` attribute)."""
    # nn.Module.__getattr__ types every attribute as Tensor | Module; in_shape is a plain tuple.
    return tuple(cast("Sequence[int]", model.in_shape))


def layer_table(model: nn.Module, in_shape: Sequence[int] | None = None) -> list[LayerInfo]:
    """Every layer with its module type, activation shape (for one input of ``in_shape``) and
    cut-point flag."""
    in_shape = tuple(in_shape or input_shape(model))
    names = layer_names(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        acts = capture(model, torch.zeros(2, *in_shape, device=device), names)
    finally:
        model.train(was_training)
    modules = dict(model.named_modules())
    return [
        LayerInfo(
            name,
            type(modules[name]).__name__,
            tuple(acts[name].shape[1:]),
            is_cut_point(model, name),
        )
        for name in names
    ]


def capture(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str], *, detach: bool = True
) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` and return the outputs of ``layers`` (plus ``"logits"``)."""
    check_layers(model, layers)
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            store[name] = output.detach() if detach else output

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    try:
        store["logits"] = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return store


@contextlib.contextmanager
def replaced(
    model: nn.Module, layer: str, fn: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[nn.Module]:
    """Within the block, the output of ``layer`` is replaced by ``fn(output)``."""
    check_layers(model, [layer])
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, out: fn(out))
    try:
        yield model
    finally:
        handle.remove()


def _layer_node(graph: fx.Graph, layer: str) -> fx.Node:
    for node in graph.nodes:
        if node.op == "call_module" and node.target == layer:
            return node
    raise LayerError(f"layer {layer!r} not found")


def _needed_for_output(graph: fx.Graph, stop: fx.Node) -> set[fx.Node] | None:
    """Nodes needed for the output when ``stop``'s value is given; None if the input is still
    needed."""
    output = next(n for n in graph.nodes if n.op == "output")
    needed: set[fx.Node] = set()
    stack = [output]
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        if node is stop:
            continue
        if node.op == "placeholder":
            return None
        stack.extend(node.all_input_nodes)
    return needed


def is_cut_point(model: nn.Module, layer: str) -> bool:
    graph = _trace(model).graph
    return _needed_for_output(graph, _layer_node(graph, layer)) is not None


def split(model: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Return (front, end) with ``end(front(x)) == model(x)``; both share ``model``'s parameters."""
    check_layers(model, [layer])
    traced = _trace(model)
    graph = traced.graph
    stop = _layer_node(graph, layer)
    needed = _needed_for_output(graph, stop)
    if needed is None:
        cut = [n for n in layer_names(model) if is_cut_point(model, n)]
        raise LayerError(
            f"layer {layer!r} is not a cut point of {type(model).__name__} (a skip connection "
            f"bypasses it); cut points: {', '.join(cut)}"
        )

    front_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in graph.nodes:
        if node.op == "output":
            break
        env[node] = front_graph.node_copy(node, lambda a: env[a])
        if node is stop:
            break
    front_graph.output(env[stop])

    end_graph = fx.Graph()
    env = {stop: end_graph.placeholder("activation")}
    for node in graph.nodes:
        if node in needed and node is not stop:
            if node.op == "output":
                end_graph.output(env[node.args[0]])
            else:
                env[node] = end_graph.node_copy(node, lambda a: env[a])
    front, end = fx.GraphModule(traced, front_graph), fx.GraphModule(traced, end_graph)
    front.graph.eliminate_dead_code()
    front.recompile()
    front.train(model.training)
    end.train(model.training)
    return front, end
