"""The interface every model source implements, and the checks they share.

A *source* builds an untrained network from a name: ``torchvision:resnet18``, ``timm:resnet10t``,
``factory:my_package.models:make_net``. modelkin never downloads weights (no network, and no file
whose provenance the lineage record cannot name): a source always builds with random weights,
and the user's weights are loaded into it afterwards, strictly, from a file they give.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import InputError

if TYPE_CHECKING:
    from torch import nn


class SourceError(InputError):
    """A model source, name or keyword argument that cannot build a model."""


class ModelSource(ABC):
    """Builds networks of one origin by name (like TRAK's model output functions: one small
    class per kind, looked up by a key).

    ``prefix`` is what comes before the first ``:`` of a source string; ``forbidden`` lists
    keyword arguments that would download weights, refused with an error rather than ignored.
    """

    prefix: ClassVar[str]
    forbidden: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def build(self, name: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
        """An untrained network ``name`` with ``num_classes`` outputs (``kwargs`` passed on)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for help texts: what the source builds and how it is spelled."""

    def check_kwargs(self, name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` as a plain dict, without download switches and without a ``num_classes``
        other than the one asked for."""
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise SourceError(
                f"keyword arguments for {self.prefix}:{name} must be a mapping of names to "
                f"values (a JSON object), got {kwargs!r}"
            )
        refused = sorted(k for k in kwargs if k in self.forbidden)
        if refused:
            raise SourceError(
                f"{self.prefix}:{name} got {', '.join(refused)}: modelkin never downloads "
                "weights; drop it, save the weights you want with "
                "torch.save(model.state_dict(), FILE) and import FILE"
            )
        return dict(kwargs)


def unknown_name(kind: str, name: str, known: Iterable[str], listing: str) -> SourceError:
    """A one-line error for a name ``kind`` does not know, with a few close matches."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else f"e.g. {', '.join(sorted(known)[:5])}"
    return SourceError(f"unknown {kind} model {name!r} ({hint}); {listing} lists them all")


def merge_num_classes(where: str, num_classes: int, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``num_classes`` set, refusing a different value given in both places."""
    given = kwargs.get("num_classes", num_classes)
    if given != num_classes:
        raise SourceError(
            f"{where}: the keyword arguments say num_classes={given!r} but the model is asked "
            f"for {num_classes} classes; give it once (--num-classes)"
        )
    return {**kwargs, "num_classes": num_classes}
