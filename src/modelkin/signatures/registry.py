"""Every signature method by name: the one list that rules, tables, concordance and the CLI read.

Adding a method: write a :class:`~modelkin.signatures.base.SignatureMethod` subclass in its own
module and add one instance to :data:`METHODS` below (or call :func:`register_method`, as a test
or a plug-in does).
"""

from __future__ import annotations

from ..errors import InputError
from .base import Distance, SignatureMethod
from .baselines.fingerprint import OutputCorrelationMethod
from .baselines.outputs import OutputsMethod
from .baselines.penultimate import PenultimateCKAMethod
from .baselines.weights import WeightsMethod
from .gradfield import GradfieldMethod
from .zest import ZestMethod

METHODS: dict[str, SignatureMethod] = {
    m.name: m
    for m in (
        ZestMethod(),
        GradfieldMethod(),
        WeightsMethod(),
        OutputsMethod(),
        OutputCorrelationMethod(),
        PenultimateCKAMethod(),
    )
}


def register_method(method: SignatureMethod) -> SignatureMethod:
    """Add ``method`` to the registry (replacing one of the same name) and return it."""
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    METHODS.pop(name, None)


def get_method(name: str) -> SignatureMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(
            f"unknown signature method {name!r}; choose one of {', '.join(METHODS)}"
        ) from None


def method_names() -> list[str]:
    return list(METHODS)


def get_distance(method: str, metric: str | None = None) -> Distance:
    """``get_distance("zest", "cos")``, ``get_distance("zest/cos")`` or the headline of a method."""
    if metric is None and "/" in method:
        method, metric = method.split("/", 1)
    return get_method(method).distance(metric)
