"""A network from elsewhere (torchvision, timm, the user's code) wrapped to behave like a zoo model.

Every modelkin stage hands a model a float batch in [0, 1] at its data set's resolution and
expects logits back; zoo models normalise inside. :class:`ExternalModel` gives a foreign network
the same contract: it resizes the batch to the network's input size, applies the network's own
value range and normalisation (:class:`~modelkin.models.preprocessing.Preprocessing`), and calls
it. The network stays untouched under ``self.net``, so its layer names are its own module paths
(``layer3.1.conv2``) relative to ``layer_root = "net"``, and its state dict is its own under
``net.``.

The value range is folded into the normalisation buffers: ``input_mean = mean / scale`` and
``input_std = std / scale`` (scale 1 or 255), so that, exactly as in a zoo model, the network sees
``(x - input_mean) / input_std`` of the [0, 1] batch ``x``, and ``input_mean`` is the mean colour in
[0, 1] units that other stages (a gradient field's baseline) read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import InputError
from .preprocessing import METADATA_KEY as PREPROCESSING_KEY
from .preprocessing import Preprocessing
from .sources import SourceError, build_source, canonical_source

SOURCE_KWARGS_KEY = "source_kwargs"
DATA_SHAPE_KEY = "data_shape"


class ExternalInputError(InputError):
    """A batch an external model cannot take (wrong number of channels or dimensions)."""


def _prepare(
    x: torch.Tensor,
    channels: int,
    size: tuple[int, int] | None,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """Resize a [0, 1] batch to ``size`` (if given and different) and normalise it."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ExternalInputError(
            f"the model takes batches of {channels}-channel images (N, {channels}, H, W), got "
            f"shape {tuple(x.shape)}; use a data set with {channels} channels, or re-import the "
            "model with matching preprocessing channels"
        )
    if size is not None and tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    return (x - mean) / std


# A leaf for torch.fx: tracing the wrapper records one call to _prepare instead of failing on its
# data-dependent checks, and the network's modules stay the traced graph's modules.
fx.wrap("_prepare")


class ExternalModel(nn.Module):
    """A foreign network behind modelkin's model contract.

    Attributes other stages rely on: ``net`` (the network), ``layer_root = "net"``,
    ``in_shape`` (C, H, W) the network's input, ``num_classes``, buffers ``input_mean`` and
    ``input_std`` of shape (1, C, 1, 1) (not saved in the state dict, as in a zoo model),
    ``preprocessing``, ``source`` (the canonical source string), ``source_kwargs``, and
    ``data_shape``: the (C, h, w) of the data set it is bound to, or None when unknown.
    """

    layer_root = "net"
    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        source: str,
        num_classes: int,
        preprocessing: Preprocessing,
        in_shape: Sequence[int],
        source_kwargs: Mapping[str, Any] | None = None,
        data_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.layer_root = "net"
        self.source = source
        self.source_kwargs = dict(source_kwargs or {})
        self.num_classes = int(num_classes)
        self.preprocessing = preprocessing
        self.in_shape = tuple(int(v) for v in in_shape)
        self.data_shape = tuple(int(v) for v in data_shape) if data_shape is not None else None
        channels = preprocessing.channels
        norm = preprocessing.normalisation
        scale = preprocessing.scale

        def buffer(values: Sequence[float]) -> torch.Tensor:
            t = torch.as_tensor([v / scale for v in values], dtype=torch.float32)
            return t.reshape(1, -1, 1, 1).expand(1, channels, 1, 1).clone()

        self.register_buffer("input_mean", buffer(norm.mean), persistent=False)
        self.register_buffer("input_std", buffer(norm.std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.preprocessing.input_size
        return self.net(_prepare(x, self.in_shape[0], size, self.input_mean, self.input_std))

    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this wrapper (see :func:`build_from_meta`)."""
        return {
            "arch": self.source,
            "num_classes": self.num_classes,
            SOURCE_KWARGS_KEY: self.source_kwargs,
            PREPROCESSING_KEY: self.preprocessing.to_meta(),
            DATA_SHAPE_KEY: list(self.data_shape) if self.data_shape is not None else None,
        }

    def extra_repr(self) -> str:
        return f"source={self.source!r}, in_shape={self.in_shape}, num_classes={self.num_classes}"


def build_external(
    source: str,
    num_classes: int,
    preprocessing: Preprocessing,
    kwargs: Mapping[str, Any] | None = None,
    *,
    image_size: Sequence[int] | None = None,
    check: bool = True,
) -> ExternalModel:
    """Build ``source`` untrained and wrap it; checks that it takes the preprocessing's input.

    ``image_size``: the (h, w) of the data set the model is bound to; it is the model's input
    size when the preprocessing gives none. The check runs one zero image through the network
    (eval mode, no gradients, so no batch-norm statistics change) and turns a failure into an
    error that says what does not fit: a channel count that differs from the first layer's, or
    logits of the wrong shape. ``check=False`` skips it (a checkpoint checked when imported).
    """
    if not isinstance(preprocessing, Preprocessing):
        raise InputError(f"preprocessing must be a Preprocessing, got {type(preprocessing)!r}")
    in_shape = preprocessing.in_shape(image_size)
    canonical = canonical_source(source)
    net = build_source(canonical, num_classes, kwargs)
    data_shape = (preprocessing.channels, *image_size) if image_size is not None else None
    model = ExternalModel(
        net,
        source=canonical,
        num_classes=num_classes,
        preprocessing=preprocessing,
        in_shape=in_shape,
        source_kwargs=kwargs,
        data_shape=data_shape,
    )
    if check:
        check_input_fits(net, canonical, in_shape, num_classes)
    return model.eval()


def build_from_meta(meta: Mapping[str, Any]) -> ExternalModel:
    """An untrained wrapper as a checkpoint's metadata describes it (its weights loaded next)."""
    missing = [k for k in (SOURCE_KWARGS_KEY, PREPROCESSING_KEY) if k not in meta]
    if missing:
        raise InputError(
            f"checkpoint of model source {meta.get('arch')!r} lacks metadata {missing}; "
            "re-import it with `modelkin import-checkpoint --arch SOURCE`"
        )
    data_shape = meta.get(DATA_SHAPE_KEY)
    return build_external(
        meta["arch"],
        meta["num_classes"],
        Preprocessing.from_meta(meta[PREPROCESSING_KEY]),
        meta[SOURCE_KWARGS_KEY],
        image_size=data_shape[1:] if data_shape is not None else None,
        check=False,
    )


_FIRST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def check_input_fits(
    net: nn.Module, source: str, in_shape: tuple[int, int, int], num_classes: int
) -> None:
    """Run a zero image of ``in_shape`` through ``net``; a clear error if it does not fit."""
    first: list[nn.Module] = []

    def note(module: nn.Module, _inputs: Any) -> None:
        if not first:
            first.append(module)

    hooks = [
        m.register_forward_pre_hook(note) for m in net.modules() if isinstance(m, _FIRST_LAYERS)
    ]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *in_shape))
    except (RuntimeError, ValueError, AssertionError, TypeError) as err:  # a shape that misfits
        channels, height, width = in_shape
        layer = first[0] if first else None
        if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d) and layer.in_channels != channels:
            raise InputError(
                f"{source}: preprocessing says {channels} channels but the model's first layer "
                f"takes {layer.in_channels}; set the channels to {layer.in_channels} (--channels "
                f"{layer.in_channels}), or build the model for {channels}-channel images"
            ) from err
        if isinstance(layer, nn.Linear) and layer.in_features != channels * height * width:
            raise InputError(
                f"{source}: preprocessing gives {channels}x{height}x{width} = "
                f"{channels * height * width} input values but the model's first layer takes "
                f"{layer.in_features}; fix the channels or the input size (--input-size)"
            ) from err
        raise InputError(
            f"{source} cannot run a {channels}x{height}x{width} input ({err}); check the input "
            "size (--input-size H W), the channels and the keyword arguments (--kwargs)"
        ) from err
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SourceError(
            f"{source} returns {got} for one image, but modelkin compares classifiers whose "
            f"output is logits of shape (N, {num_classes}); build it as a classifier with "
            f"{num_classes} classes (--num-classes)"
        )
