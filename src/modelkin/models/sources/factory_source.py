"""``factory:package.module:callable``: a network built by the user's own code.

This imports the user's module and calls the callable, i.e. it runs the user's code, exactly as
``import package.module`` would. Use it only with code you trust; the weights themselves are
still read without unpickling (``torch.load(weights_only=True)`` or safetensors).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .base import ModelSource, SourceError, merge_num_classes

if TYPE_CHECKING:
    from torch import nn


def split_target(name: str) -> tuple[str, str]:
    """``package.module:attr.path`` as its module and attribute path."""
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise SourceError(
            f"factory source {name!r} must be spelled package.module:callable (one colon), e.g. "
            "factory:torchvision.models.vision_transformer:VisionTransformer"
        )
    return module, attr


def _accepts(func: Callable[..., Any], keyword: str) -> bool:
    """Whether ``func`` takes ``keyword`` (or any keyword); False when it cannot be told."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class FactorySource(ModelSource):
    """Imports ``package.module``, looks up ``callable`` and calls it with the keyword
    arguments; ``num_classes`` is passed too when the callable takes it.

    Running a user's factory runs the user's code (as any import does): that is the point, since
    a custom architecture exists only as code. What it returns must be an ``nn.Module``.
    """

    prefix = "factory"

    def build(self, name: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
        from torch import nn

        module_name, attr = split_target(name)
        options = self.check_kwargs(name, kwargs)
        try:
            target: Any = importlib.import_module(module_name)
        except Exception as err:  # any error of the user's module: its import is the input
            raise SourceError(
                f"factory module {module_name!r} does not import ({type(err).__name__}: {err}); "
                "check the spelling, and that it is installed or on PYTHONPATH (e.g. "
                "PYTHONPATH=. for a file in the current directory)"
            ) from err
        for part in attr.split("."):
            if not hasattr(target, part):
                raise SourceError(
                    f"factory module {module_name!r} has no attribute {attr!r}; name a function "
                    f"or class in it (package.module:callable)"
                )
            target = getattr(target, part)
        if not callable(target):
            raise SourceError(
                f"factory {module_name}:{attr} is a {type(target).__name__}, not callable; name a "
                "function or class that returns an nn.Module"
            )
        if _accepts(target, "num_classes"):
            options = merge_num_classes(f"factory:{name}", num_classes, options)
        try:
            net = target(**options)
        except Exception as err:  # the user's code failed on the user's arguments
            raise SourceError(
                f"calling factory {module_name}:{attr}(**{options!r}) failed "
                f"({type(err).__name__}: {err}); check the keyword arguments (--kwargs)"
            ) from err
        if not isinstance(net, nn.Module):
            raise SourceError(
                f"factory {module_name}:{attr} returned a {type(net).__name__}, not a "
                "torch.nn.Module; it must build and return the network"
            )
        return net

    def describe(self) -> str:
        return (
            "factory:package.module:callable (or package.module:callable) - your own code, "
            "called with the keyword arguments; importing it runs it"
        )
