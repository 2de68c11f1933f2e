"""Cut points and the ``torch.fx`` split of a model into front (input -> layer) and end (layer ->
logits).

Listing and capturing layers needs no fx (see :mod:`.discover`); only running
the *end* of a model from a given activation does, because eager PyTorch cannot
start a forward pass in the middle. A layer is a *cut point* when everything
after it depends on the input only through it (no skip connection bypasses
it); only then can the end run from the activation alone. A model fx cannot
trace has no cut points: stitching then runs the whole model with the layer's
output replaced (:func:`end_plan` says which and why).

The trace records every module call's output node, so a container layer (a
ResNet block ``layer2.1``) is a node of the graph like a leaf, although fx
traces through containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import fx, nn

from .discover import LayerError, check_layers, describe_names, layer_names, module_path

_CACHE = "_modelkin_trace"


@dataclass(frozen=True)
class _Trace:
    module: fx.GraphModule | None
    outputs: dict[str, list[str | None]]  # module path -> output node name of each call
    error: str  # why fx could not trace the model ("" when it could)


class _RecordingTracer(fx.Tracer):
    """fx's default tracer that also remembers which node each module call returned."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: dict[str, list[str | None]] = {}

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        try:
            path = self.path_of_module(m)
        except NameError:  # a module that is not a submodule of the traced model
            return out
        node = out.node.name if isinstance(out, fx.Proxy) else None
        self.outputs.setdefault(path, []).append(node)
        return out


def _trace(model: nn.Module) -> _Trace:
    cached = model.__dict__.get(_CACHE)
    if cached is not None:
        return cached
    tracer = _RecordingTracer()
    try:
        graph = tracer.trace(model)
        traced = _Trace(
            fx.GraphModule(tracer.root, graph, type(model).__name__), tracer.outputs, ""
        )
    except Exception as err:  # fx raises many kinds (TraceError, TypeError, RuntimeError...)
        first_line = (str(err).strip().splitlines() or [""])[0]
        traced = _Trace(None, {}, f"{type(err).__name__}: {first_line}")
    model.__dict__[_CACHE] = traced  # plain attribute, not a registered submodule
    return traced


def traceable(model: nn.Module) -> tuple[bool, str]:
    """Whether torch.fx traces ``model``, and why not."""
    traced = _trace(model)
    return traced.module is not None, traced.error


def _layer_node(model: nn.Module, layer: str) -> fx.Node | None:
    """The graph node holding ``layer``'s output; None if fx cannot trace the model or the layer
    is not one node of the trace."""
    traced = _trace(model)
    if traced.module is None:
        return None
    calls = traced.outputs.get(module_path(model, layer), [])
    if len(calls) != 1 or calls[0] is None:
        return None
    return next((n for n in traced.module.graph.nodes if n.name == calls[0]), None)


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


@dataclass(frozen=True)
class EndPlan:
    """How the end of a model (layer -> logits) can run: an fx split, or the whole model with the
    layer's output replaced; ``reason`` says why, for logs and results."""

    split: bool
    reason: str

    @property
    def mode(self) -> str:
        """``split`` or ``hooks`` (the values stitching results record)."""
        return "split" if self.split else "hooks"

    @property
    def description(self) -> str:
        return "torch.fx split" if self.split else "whole-model replacement"


def end_plan(model: nn.Module, layer: str) -> EndPlan:
    """Whether the end of ``model`` from ``layer`` can be an fx split, and why (not)."""
    name = type(model).__name__
    traced = _trace(model)
    if traced.module is None:
        return EndPlan(False, f"torch.fx cannot trace {name}: {traced.error}")
    stop = _layer_node(model, layer)
    if stop is None:
        return EndPlan(
            False,
            f"layer {layer} is not one node of {name}'s torch.fx graph (it runs inside a traced "
            "function or its output is not traced as a tensor)",
        )
    if _needed_for_output(traced.module.graph, stop) is None:
        return EndPlan(
            False, f"layer {layer} is not a cut point of {name} (a skip connection bypasses it)"
        )
    return EndPlan(True, f"layer {layer} is a cut point of {name}")


def is_cut_point(model: nn.Module, layer: str) -> bool:
    """Whether the model can be split at ``layer`` (False for models torch.fx cannot trace)."""
    return end_plan(model, layer).split


def split(model: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Return (front, end) with ``end(front(x)) == model(x)``; both share ``model``'s parameters.

    Raises LayerError when the layer is not a cut point or fx cannot trace the model
    (then run the whole model with :func:`..hooks.replaced` instead).
    """
    check_layers(model, [layer])
    plan = end_plan(model, layer)
    if not plan.split:
        cut = [n for n in layer_names(model) if is_cut_point(model, n)]
        raise LayerError(
            f"cannot split {type(model).__name__} at {layer!r}: {plan.reason}; cut points: "
            f"{describe_names(cut) or 'none'}"
        )
    traced = _trace(model).module
    stop = _layer_node(model, layer)
    assert traced is not None and stop is not None  # plan.split guarantees both
    graph = traced.graph
    needed = _needed_for_output(graph, stop)
    assert needed is not None

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
