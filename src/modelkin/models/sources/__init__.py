"""Model sources: networks that are not modelkin's own architectures, built by name.

A model is named by a *source string*:

- a plain name without a colon (``resnet20_w1``): modelkin's own architecture
  (:mod:`modelkin.models.registry`), unchanged;
- ``torchvision:NAME``: :mod:`.torchvision_source`;
- ``timm:NAME``: :mod:`.timm_source` (the optional ``timm`` extra);
- ``factory:package.module:callable``, or just ``package.module:callable``: the user's code
  (:mod:`.factory_source`).

Every source builds untrained networks; weights come from the user's file. A new source is a
:class:`ModelSource` subclass and an entry in :data:`SOURCES`. Torch-free until a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import ModelSource, SourceError
from .factory_source import FactorySource, split_target
from .timm_source import TimmSource
from .torchvision_source import TorchvisionSource

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "SOURCES",
    "ModelSource",
    "SourceError",
    "build_source",
    "canonical_source",
    "describe_sources",
    "is_external",
    "parse_source",
]

SOURCES: dict[str, ModelSource] = {
    s.prefix: s for s in (TorchvisionSource(), TimmSource(), FactorySource())
}
FACTORY = "factory"


def is_external(arch: str) -> bool:
    """Whether ``arch`` names a model source (it has a colon) rather than a zoo architecture."""
    return ":" in arch


def parse_source(source: str) -> tuple[ModelSource, str]:
    """The source a source string names, and the name it is given.

    A prefix that is not a registered source is read as a factory's module
    (``my_package.models:make_net``).
    """
    if not isinstance(source, str) or not is_external(source):
        raise SourceError(
            f"{source!r} is not a model source; write torchvision:NAME, timm:NAME or "
            "factory:package.module:callable (a name without a colon is a zoo architecture)"
        )
    prefix, _, name = source.partition(":")
    entry = SOURCES.get(prefix)
    if entry is None:
        entry, name = SOURCES[FACTORY], source
    if not name:
        raise SourceError(f"model source {source!r} names no model; e.g. {prefix}:resnet18")
    if entry.prefix == FACTORY:
        split_target(name)  # spelled package.module:callable
    return entry, name


def canonical_source(source: str) -> str:
    """The source string a checkpoint records: always with its prefix
    (``pkg.mod:fn`` -> ``factory:pkg.mod:fn``)."""
    entry, name = parse_source(source)
    return f"{entry.prefix}:{name}"


def build_source(
    source: str, num_classes: int, kwargs: Mapping[str, Any] | None = None
) -> nn.Module:
    """An untrained network from a source string (see the module docstring)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SourceError(f"num_classes must be a positive whole number, got {num_classes!r}")
    entry, name = parse_source(source)
    return entry.build(name, num_classes, kwargs or {})


def describe_sources() -> list[str]:
    """One line per source, for help texts."""
    return [entry.describe() for entry in SOURCES.values()]
