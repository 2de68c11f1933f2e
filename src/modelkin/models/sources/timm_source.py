"""``timm:NAME``: a model of the optional ``timm`` package, untrained."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .base import ModelSource, SourceError, merge_num_classes, unknown_name

if TYPE_CHECKING:
    from torch import nn


def import_timm() -> ModuleType:
    """timm, or an error saying how to install it (it is an optional extra of modelkin)."""
    try:
        import timm
    except ImportError as err:
        raise SourceError(
            f"timm models need the timm package, which is not installed ({err}); install it "
            "with pip install 'modelkin[timm]'"
        ) from None
    return timm


class TimmSource(ModelSource):
    """Builds with ``timm.create_model(NAME, pretrained=False, num_classes=..., **kwargs)``.

    ``pretrained=False`` always, and names that point at the Hugging Face hub or a local
    directory (``hf-hub:...``) are refused: both would fetch a configuration or weights that
    modelkin's record of the model cannot name.
    """

    prefix = "timm"
    forbidden = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")

    def build(self, name: str, num_classes: int, kwargs: Mapping[str, Any]) -> nn.Module:
        timm = import_timm()
        if ":" in name:
            raise SourceError(
                f"timm:{name} names a hub or directory location; modelkin builds timm models by "
                "architecture name only (e.g. timm:resnet10t) and imports weights from a file"
            )
        # A pretrained tag (resnet10t.a1_in1k) only chooses weights; the architecture is the base.
        if not timm.is_model(name.split(".", 1)[0]):
            raise unknown_name("timm", name, timm.list_models(), "timm.list_models()")
        where = f"timm:{name}"
        options = merge_num_classes(where, num_classes, self.check_kwargs(name, kwargs))
        try:
            return timm.create_model(name, pretrained=False, **options)
        except (TypeError, ValueError, AssertionError) as err:
            raise SourceError(
                f"timm.create_model({name!r}, pretrained=False, "
                f"{', '.join(f'{k}={v!r}' for k, v in options.items())}) failed ({err}); check "
                "the keyword arguments (--kwargs) against the model's documentation"
            ) from err

    def describe(self) -> str:
        return (
            "timm:NAME - a timm model, untrained (pretrained=False); pip install 'modelkin[timm]'"
        )
