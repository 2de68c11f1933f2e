"""``torchvision:NAME``: any model ``torchvision.models.list_models()`` lists, untrained."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import ModelSource, SourceError, merge_num_classes, unknown_name

if TYPE_CHECKING:
    from torch import nn


class TorchvisionSource(ModelSource):
    """Builds with ``torchvision.models.get_model(NAME, weights=None, num_classes=...)``.

    ``weights=None`` always: torchvision would otherwise download ImageNet weights, which
    neither the lineage record nor an offline cluster node can account for.
    """

    prefix = "torchvision"
    forbidden = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")

    def names(self) -> list[str]:
        from torchvision.models import list_models

        return list(list_models())

    def build(self, name: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
        from torchvision.models import get_model

        if name not in self.names():
            raise unknown_name(
                "torchvision", name, self.names(), "torchvision.models.list_models()"
            )
        where = f"torchvision:{name}"
        options = merge_num_classes(where, num_classes, self.check_kwargs(name, kwargs))
        try:
            return get_model(name, weights=None, **options)
        except (TypeError, ValueError) as err:
            raise SourceError(
                f"torchvision.models.get_model({name!r}, weights=None, "
                f"{', '.join(f'{k}={v!r}' for k, v in options.items())}) failed ({err}); check "
                "the keyword arguments (--kwargs) against the model's documentation"
            ) from err

    def describe(self) -> str:
        return "torchvision:NAME - a torchvision.models model, untrained (weights=None)"
