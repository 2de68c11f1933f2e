"""Which layers a model has: module paths found by running it once with forward hooks.

Names come from one eager forward pass of a small zero input with a pre-hook and
a forward hook on every module, not from a ``torch.fx`` trace, so any model that
runs has layers: the zoo, torchvision, timm and users' own modules alike.

* A layer is a module called exactly once per forward pass whose output is one
  tensor (a module called twice has no single activation to read or replace; a
  module returning a tuple, such as ``nn.MultiheadAttention``, has no tensor to
  stitch).
* Both leaf modules (``layer3.1.conv2``) and containers (a ResNet block
  ``layer2.1``, a transformer block's ``mlp``) are layers: a container's output
  is often the activation people mean. The zoo's models (``layer_containers =
  False``) list only their ``torch.nn`` leaf modules, as they always have: they
  are built so that every activation worth reading is a leaf's output, and the
  configurations, ``layer_names.json``, layer indices of stitching results and
  the similarity stage's ``all`` selection rely on exactly those names.
* Names are in call order (pre-hooks), so a container comes before its children.
* ``layer_root``: a model may name a submodule (``"net"``) whose module paths are
  its layer names. A wrapper that resizes and normalises the input before calling
  a user's network then has the network's own names (``layer3.1.conv2``, not
  ``net.layer3.1.conv2``); every function of this package takes and returns
  these relative names and maps them to the real modules itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import InputError

# Unknown-name errors list at most this many valid names (a ViT has hundreds).
LISTED_NAMES = 12
_CACHE = "_modelkin_layers"


class LayerError(InputError):
    """A layer name that does not exist or cannot be used the way it was asked for."""


@dataclass(frozen=True)
class Found:
    """One layer found by the hooked forward pass."""

    name: str  # relative to the model's layer root
    kind: str  # module class name
    shape: tuple[int, ...]  # activation shape without the batch dimension


def input_shape(model: nn.Module) -> tuple[int, ...]:
    """The input shape (C, H, W) of a model: its ``in_shape`` attribute.

    Finding layers and their shapes means running the model once, which needs an
    input shape; modelkin's models and wrappers carry it, a bare user module may not.
    """
    shape = getattr(model, "in_shape", None)
    if shape is None:
        raise LayerError(
            f"{type(model).__name__} has no in_shape attribute, so modelkin does not know which "
            "input to run it on to find its layers; give the input shape, e.g. "
            "--input-shape 3 224 224 on the command line (in_shape=(3, 224, 224) in Python)"
        )
    return tuple(int(s) for s in shape)


def layer_root(model: nn.Module) -> str:
    """The module path (``"net"``) that layer names are relative to; ``""`` for the model."""
    root = getattr(model, "layer_root", None) or ""
    if not isinstance(root, str):
        raise LayerError(
            f"{type(model).__name__}.layer_root must be a module path string such as 'net', not "
            f"{root!r}"
        )
    if root:
        try:
            model.get_submodule(root)
        except AttributeError:
            raise LayerError(
                f"{type(model).__name__}.layer_root is {root!r}, but the model has no such "
                "submodule; set it to the attribute that holds the wrapped network"
            ) from None
    return root


def module_path(model: nn.Module, layer: str) -> str:
    """The real module path of ``layer`` (``net.layer3.1.conv2`` for ``layer3.1.conv2``)."""
    root = layer_root(model)
    return f"{root}.{layer}" if root and layer else root or layer


def relative_name(model: nn.Module, path: str) -> str | None:
    """The layer name of the module at ``path``; None outside the layer root (or the root
    itself)."""
    root = layer_root(model)
    if not root:
        return path or None
    return path[len(root) + 1 :] if path.startswith(root + ".") else None


def layer_module(model: nn.Module, layer: str) -> nn.Module:
    """The module of ``layer`` (cheap: no forward pass, so it can run every batch)."""
    try:
        return model.get_submodule(module_path(model, layer))
    except AttributeError:
        raise LayerError(
            f"{type(model).__name__} has no layer {layer!r}; "
            f"`modelkin layers MODEL` lists its layers"
        ) from None


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _is_torch_leaf(module: nn.Module) -> bool:
    """torch.fx's leaf rule: a ``torch.nn`` module other than ``Sequential``."""
    return module.__module__.startswith(("torch.nn", "torch.ao.nn")) and not isinstance(
        module, nn.Sequential
    )


def discover(model: nn.Module, in_shape: Sequence[int] | None = None) -> list[Found]:
    """The layers of ``model`` for inputs of ``in_shape`` (default: ``input_shape(model)``).

    Runs the model once in eval mode without gradients on a batch of two zero
    images (two, so batch norm in any mode would accept it); the result is cached on
    the model per input shape, since every ``capture`` and ``replaced`` checks names.
    """
    shape = tuple(int(s) for s in (in_shape if in_shape is not None else input_shape(model)))
    cache: dict[tuple[int, ...], list[Found]] = model.__dict__.setdefault(_CACHE, {})
    if shape in cache:
        return cache[shape]
    containers = bool(getattr(model, "layer_containers", True))
    watched: list[tuple[str, nn.Module]] = []
    for path, module in model.named_modules():
        name = relative_name(model, path)
        if name is not None and (containers or _is_torch_leaf(module)):
            watched.append((name, module))
    calls: dict[str, int] = {}
    order: list[str] = []
    outputs: dict[str, Any] = {}

    def pre_hook_for(name: str):
        def pre_hook(_module, _inputs):
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                order.append(name)

        return pre_hook

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            outputs[name] = output

        return hook

    handles = []
    for name, module in watched:
        handles.append(module.register_forward_pre_hook(pre_hook_for(name)))
        handles.append(module.register_forward_hook(hook_for(name)))
    device, dtype = _device_and_dtype(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape, device=device, dtype=dtype))
    except Exception as err:
        raise LayerError(
            f"running {type(model).__name__} on a zero input of shape {shape} to find its layers "
            f"failed ({type(err).__name__}: {err}); check the input shape (--input-shape C H W)"
        ) from err
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    kinds = {name: type(module).__name__ for name, module in watched}
    found = [
        Found(name, kinds[name], tuple(outputs[name].shape[1:]))
        for name in order
        if calls[name] == 1 and isinstance(outputs.get(name), torch.Tensor)
    ]
    cache[shape] = found
    return found


def layer_names(model: nn.Module, in_shape: Sequence[int] | None = None) -> list[str]:
    """Modules (relative to ``layer_root``) called exactly once with one tensor output, in call
    order; see the module docstring."""
    return [f.name for f in discover(model, in_shape)]


def describe_names(names: Sequence[str], wanted: str = "", show: Callable[[str], str] = str) -> str:
    """``names`` for an error message (each as ``show(name)``): all of them when few, else at most
    ``LISTED_NAMES`` (close matches to ``wanted`` first) and how to see them all."""
    if len(names) <= LISTED_NAMES:
        return ", ".join(map(show, names))
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6) if wanted else []
    shown = close + [n for n in names if n not in close]
    return (
        f"{', '.join(map(show, shown[:LISTED_NAMES]))}, ... ({len(names)} in all; "
        "`modelkin layers MODEL` lists them with their shapes)"
    )


def check_layers(
    model: nn.Module, names: Sequence[str], in_shape: Sequence[int] | None = None
) -> None:
    """Raise a LayerError naming a few valid layers if any of ``names`` is not a layer."""
    valid = layer_names(model, in_shape)
    missing = [n for n in names if n not in valid]
    if missing:
        raise LayerError(
            f"unknown layer(s) {', '.join(map(repr, missing))} for {type(model).__name__}; valid "
            f"layers: {describe_names(valid, missing[0])}"
        )
