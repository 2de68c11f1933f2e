"""Which layers of a model the similarity stage compares: selectors and per-architecture specs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..models.layers import (
    LayerError,
    check_layers,
    describe_names,
    is_cut_point,
    layer_module,
    layer_names,
)

LAYER_SELECTORS = {
    "relu": (
        "every ReLU output that is a cut point (plain chains: every ReLU; ResNets: the stem and "
        "each block output)"
    ),
    "cut": "every cut point (a layer through which everything after it depends on the input)",
    "all": "every named layer",
}


def select_layers(model: nn.Module, selection: str | Sequence[str] = "relu") -> list[str]:
    """Layer names of ``model``: a selector (``relu``, ``cut``, ``all``) or an explicit list, in the
    given order.

    A string is always a selector, a list always names layers (so ``["relu"]`` is the ResNet stem's
    ReLU, ``"relu"`` every ReLU cut point). Unknown names raise ``LayerError`` listing the valid
    ones.
    """
    if isinstance(selection, str):
        if selection not in LAYER_SELECTORS:
            raise LayerError(
                f"unknown layer selection {selection!r}; use one of {', '.join(LAYER_SELECTORS)} "
                f"or a list of layer names of {type(model).__name__}: "
                f"{describe_names(layer_names(model))}"
            )
        names = layer_names(model)
        if selection == "all":
            return names
        if selection == "cut":
            return [n for n in names if is_cut_point(model, n)]
        chosen = [
            n
            for n in names
            if isinstance(layer_module(model, n), nn.ReLU) and is_cut_point(model, n)
        ]
        if not chosen:
            raise LayerError(
                f"{type(model).__name__} has no ReLU cut points; choose layers by name: "
                f"{describe_names(names)}"
            )
        return chosen
    names = list(selection)
    if not names:
        raise LayerError(
            f"no layers chosen; valid layers of {type(model).__name__}: "
            f"{', '.join(layer_names(model))}"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LayerError(f"layer(s) {', '.join(duplicates)} chosen more than once")
    check_layers(model, names)
    return names


def resolve_layer_spec(spec: Any, arch: str | None) -> str | list[str]:
    """A per-architecture mapping ``{arch: selection, "default": selection}`` -> this architecture's
    selection."""
    if isinstance(spec, Mapping):
        if arch in spec:
            return spec[arch]
        if "default" in spec:
            return spec["default"]
        raise LayerError(
            f"the layer mapping has no entry for architecture {arch!r} and no 'default' entry "
            f"(entries: {', '.join(map(str, spec))})"
        )
    return spec
