"""The stitched network: model 1 up to layer L1, a trainable affine stitching layer T, model 2 from
L2 on.

Both donors are frozen. The front always stops at L1: a forward hook interrupts
model 1 as soon as L1 has produced its output (no torch.fx needed, so any model
works). The end of model 2 runs as a ``torch.fx`` GraphModule from
:func:`modelkin.models.layers.split` when fx traces model 2 and L2 is a cut
point (the layers of model 2 before L2 never run); otherwise model 2 runs whole
on the same input with L2's output replaced by T's (a forward hook, as in the
reference code). Which of the two, and why, is logged and kept in
``StitchedModel.end_plan`` (stitching results record it under ``execution``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import InputError
from ..models.layers import (
    EndPlan,
    activation,
    capture,
    check_layers,
    describe_names,
    end_plan,
    input_shape,
    layer_names,
    layer_table,
    replaced,
    split,
)
from .options import RESIZE_MODES

EXECUTIONS = ("auto", "hooks")
log = logging.getLogger(__name__)


class StitchError(InputError):
    """Two layers that cannot be stitched the way it was asked for."""


# ---------------------------------------------------------------------------------------------
# Activations


def layer_activation(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """``model``'s output at ``layer`` for input ``x``, without running the layers after it (the
    front cut with a hook: :func:`modelkin.models.layers.activation`)."""
    return activation(model, layer, x)


# ---------------------------------------------------------------------------------------------
# Stitching layer


@dataclass(frozen=True)
class StitchGeometry:
    """How T maps an activation of ``in_shape`` onto one of ``out_shape`` (shapes without batch)."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kind: str  # "conv" (1x1 conv over channels), "linear" (both flat), "flatten" (linear on C*H*W)
    resize: str | None  # interpolation of the front's spatial size to the end's, or None when equal

    @property
    def in_features(self) -> int:
        return self.in_shape[0] if self.kind in ("conv", "linear") else math.prod(self.in_shape)

    @property
    def out_features(self) -> int:
        return self.out_shape[0] if self.kind in ("conv", "linear") else math.prod(self.out_shape)


def stitch_geometry(
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    *,
    flatten: bool = False,
    resize: str = "bilinear",
) -> StitchGeometry:
    """Check that ``in_shape`` can be mapped onto ``out_shape`` and say how; raises StitchError
    otherwise."""
    in_shape, out_shape = tuple(int(s) for s in in_shape), tuple(int(s) for s in out_shape)
    if resize not in RESIZE_MODES:
        raise StitchError(f"resize must be one of {', '.join(RESIZE_MODES)}, not {resize!r}")
    if flatten:
        return StitchGeometry(in_shape, out_shape, "flatten", None)
    if len(in_shape) == 1 and len(out_shape) == 1:
        return StitchGeometry(in_shape, out_shape, "linear", None)
    if len(in_shape) == 3 and len(out_shape) == 3:
        same = in_shape[1:] == out_shape[1:]
        return StitchGeometry(in_shape, out_shape, "conv", None if same else resize)
    raise StitchError(
        f"cannot stitch an activation of shape {in_shape} into one of shape {out_shape} with a 1x1 "
        "convolution or a linear layer (one is a feature map, the other is not); use flatten=True "
        "(--flatten) for a linear map on the flattened C*H*W features"
    )


class StitchingLayer(nn.Module):
    """T: an affine map W x + b from the front's activation to the end's.

    * ``conv``: a 1x1 convolution with bias (the same map at every pixel); when
      the spatial sizes differ, the front activation is first interpolated to
      the end's size (``geometry.resize``: bilinear, nearest or area).
    * ``linear``: a linear layer with bias on flat activations.
    * ``flatten``: a linear layer on the flattened (C*H*W, C order) front
      activation, reshaped to the end's shape.

    ``weight`` is always the effective (out_features, in_features) matrix:
    ``w1 @ w2`` for a low-rank T, times the fixed ``mask``.
    """

    # Full rank: w; low rank: w1 @ w2 (the others are None).
    w: nn.Parameter | None
    w1: nn.Parameter | None
    w2: nn.Parameter | None
    mask: torch.Tensor

    def __init__(self, geometry: StitchGeometry, *, low_rank: int | None = None):
        super().__init__()
        self.geometry = geometry
        n_out, n_in = geometry.out_features, geometry.in_features
        if low_rank is not None:
            if not 1 <= low_rank <= min(n_in, n_out):
                raise StitchError(
                    f"low_rank must be between 1 and min(in, out) = {min(n_in, n_out)} for a "
                    f"{n_in} -> {n_out} stitching layer, not {low_rank}"
                )
            self.w1 = nn.Parameter(torch.empty(n_out, low_rank))
            self.w2 = nn.Parameter(torch.empty(low_rank, n_in))
            self.w = None
        else:
            self.w = nn.Parameter(torch.empty(n_out, n_in))
            self.w1 = self.w2 = None
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.register_buffer("mask", torch.ones(n_out, n_in))
        self.low_rank = low_rank
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default Linear/Conv2d initialisation; orthogonal factors and zero bias when low
        rank."""
        with torch.no_grad():
            if self.low_rank is not None:
                assert self.w1 is not None and self.w2 is not None  # low rank: w1 and w2 are set
                self.w1.copy_(_orthogonal(self.w1.shape, generator))
                self.w2.copy_(_orthogonal(self.w2.shape, generator))
                self.bias.zero_()
            else:
                # kaiming_uniform_(a=sqrt(5)) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias, as
                # nn.Linear/nn.Conv2d.
                bound = 1.0 / math.sqrt(self.geometry.in_features)
                assert self.w is not None  # full rank: w is set
                self.w.copy_(_uniform(self.w.shape, bound, generator))
                self.bias.copy_(_uniform(self.bias.shape, bound, generator))

    @property
    def in_features(self) -> int:
        return self.geometry.in_features

    @property
    def out_features(self) -> int:
        return self.geometry.out_features

    @property
    def weight(self) -> torch.Tensor:
        if self.low_rank is None:
            assert self.w is not None  # full rank: w is set
            return self.w * self.mask
        assert self.w1 is not None and self.w2 is not None  # low rank: w1 and w2 are set
        return (self.w1 @ self.w2) * self.mask

    def set_affine(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set T to ``weight`` (out, in) and ``bias``; a low-rank T takes the best rank-r
        factorisation."""
        weight = torch.as_tensor(weight).to(self.bias)
        bias = torch.as_tensor(bias).to(self.bias)
        if tuple(weight.shape) != (self.out_features, self.in_features) or tuple(bias.shape) != (
            self.out_features,
        ):
            raise StitchError(
                f"weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not fit a "
                f"{self.in_features} -> {self.out_features} stitching layer"
            )
        with torch.no_grad():
            if self.low_rank is None:
                assert self.w is not None  # full rank: w is set
                self.w.copy_(weight)
            else:
                assert self.w1 is not None and self.w2 is not None  # low rank: w1 and w2 are set
                u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
                root = s[: self.low_rank].sqrt()
                self.w1.copy_((u[:, : self.low_rank] * root).to(self.w1))
                self.w2.copy_((root[:, None] * vh[: self.low_rank]).to(self.w2))
            self.bias.copy_(bias)

    def set_mask(self, mask: torch.Tensor) -> None:
        mask = torch.as_tensor(mask, dtype=self.mask.dtype, device=self.mask.device)
        if mask.shape != self.mask.shape:
            raise StitchError(
                f"mask of shape {tuple(mask.shape)} does not fit the weight "
                f"{tuple(self.mask.shape)}"
            )
        self.mask.copy_(mask)

    # -- the design matrix the affine map acts on (used by least squares, masks and CKA) --------

    def prepare(self, a: torch.Tensor) -> torch.Tensor:
        """The front activation as T's input: resized to the end's spatial size if needed."""
        g = self.geometry
        if g.kind == "conv" and g.resize is not None:
            size = g.out_shape[1:]
            if g.resize == "bilinear":
                return F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            return F.interpolate(a, size=size, mode=g.resize)
        return a

    def samples(self, a: torch.Tensor) -> torch.Tensor:
        """Rows the affine map acts on: every pixel of every image for ``conv`` (N*H*W, C), else (N,
        features)."""
        a = self.prepare(a)
        if self.geometry.kind == "conv":
            return a.permute(0, 2, 3, 1).reshape(-1, a.shape[1])
        return a.reshape(a.shape[0], -1)

    def target_samples(self, y: torch.Tensor) -> torch.Tensor:
        """The end activation laid out like :meth:`samples`' rows (what T's output is compared
        with)."""
        if self.geometry.kind == "conv":
            return y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
        return y.reshape(y.shape[0], -1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        w = self.weight
        if g.kind == "conv":
            return F.conv2d(self.prepare(a), w[:, :, None, None], self.bias)
        if g.kind == "linear":
            return F.linear(a, w, self.bias)
        return F.linear(a.reshape(a.shape[0], -1), w, self.bias).reshape(a.shape[0], *g.out_shape)

    def extra_repr(self) -> str:
        g = self.geometry
        rank = f", low_rank={self.low_rank}" if self.low_rank is not None else ""
        resize = f", resize={g.resize}" if g.resize else ""
        return f"{g.kind}: {g.in_shape} -> {g.out_shape}{rank}{resize}"


def _uniform(shape, bound: float, generator: torch.Generator | None) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def _orthogonal(shape, generator: torch.Generator | None) -> torch.Tensor:
    """A (semi-)orthogonal matrix from the QR of a Gaussian one (the law of nn.init.orthogonal_)."""
    rows, cols = shape
    flat = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))[None, :]
    return q if rows >= cols else q.T


# ---------------------------------------------------------------------------------------------
# Stitched model


class StitchedModel(nn.Module):
    """``model2.end(T(model1.front(x)))``: only T trains.

    ``donor_train_mode``: when the stitched model is put in training mode, the
    donors follow (batch-norm batch statistics, running statistics updated,
    dropout), as in the references' submission and robust-stitching code. By
    default the donors stay in eval mode whatever the stitched model's mode.

    ``execution``: ``auto`` stops model 1 at L1 and runs only model 2's end
    when torch.fx traces model 2 and L2 is a cut point (else model 2 runs whole
    with L2 replaced); ``hooks`` runs both full networks every time (the
    references' way, kept for comparisons and benchmarks). ``end_plan`` says
    which end runs and why.
    """

    _end: fx.GraphModule | None

    def __init__(
        self,
        model1: nn.Module,
        layer1: str,
        model2: nn.Module,
        layer2: str,
        stitch: StitchingLayer,
        *,
        donor_train_mode: bool = False,
        execution: str = "auto",
    ):
        super().__init__()
        if execution not in EXECUTIONS:
            raise InputError(f"execution must be one of {EXECUTIONS}, not {execution!r}")
        check_layers(model1, [layer1])
        check_layers(model2, [layer2])
        self.model1, self.model2, self.stitch = model1, model2, stitch
        self.layer1, self.layer2 = layer1, layer2
        self.donor_train_mode = donor_train_mode
        self.execution = execution
        for p in list(model1.parameters()) + list(model2.parameters()):
            p.requires_grad_(False)
        if execution == "auto":
            plan = end_plan(model2, layer2)
        else:
            plan = EndPlan(False, "execution 'hooks' runs both whole models")
        self.end_plan = plan
        log.info(
            "end of model 2 (%s) at %s: %s, because %s",
            type(model2).__name__,
            layer2,
            plan.description,
            plan.reason,
        )
        end = split(model2, layer2)[1] if plan.split else None
        if end is not None:
            end.to(next(model2.parameters()).device)
        # A plain attribute, not a submodule: the end shares model2's modules, and registering it
        # would list model2's parameters twice in state_dict().
        object.__setattr__(self, "_end", end)
        self.train(False)

    @property
    def end_is_split(self) -> bool:
        return self._end is not None

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._end is not None:
            # The GraphModule holds its own references to traced buffers (input normalisation).
            self._end._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> StitchedModel:
        self.training = mode
        self.stitch.train(mode)
        donors = mode and self.donor_train_mode
        self.model1.train(donors)
        self.model2.train(donors)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.stitch.parameters() if p.requires_grad]

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """Model 1's activation at L1."""
        if self.execution == "hooks":
            return capture(self.model1, x, [self.layer1], detach=False)[self.layer1]
        return layer_activation(self.model1, self.layer1, x)

    def end(self, t: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Model 2's logits with its L2 activation replaced by ``t`` (``x`` is needed unless L2 is a
        cut point)."""
        if self._end is not None:
            return self._end(t)
        if x is None:
            raise StitchError(
                f"layer {self.layer2!r} of model 2 is not a cut point: its end needs the input "
                "image too (x)"
            )
        with replaced(self.model2, self.layer2, lambda _out: t):
            return self.model2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.end(self.stitch(self.front(x)), x)

    def genuine_activation(self, x: torch.Tensor) -> torch.Tensor:
        """Model 2's own activation at L2 (what T's output replaces)."""
        return layer_activation(self.model2, self.layer2, x)


# ---------------------------------------------------------------------------------------------
# Building and checking


def _activation_shape(model: nn.Module, layer: str) -> tuple[int, ...]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = layer_activation(model, layer, torch.zeros(2, *input_shape(model), device=device))
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])


def _describe_layers(model: nn.Module, wanted: str = "") -> str:
    """A few layers with their shapes (all of them would be hundreds for a ViT)."""
    shapes = {r.name: tuple(r.shape) for r in layer_table(model)}
    return describe_names(list(shapes), wanted, lambda name: f"{name} {shapes[name]}")


def check_stitchable(
    model1: nn.Module,
    layer1: str,
    model2: nn.Module,
    layer2: str,
    *,
    flatten: bool = False,
    resize: str = "bilinear",
    names: Sequence[str] | None = None,
) -> StitchGeometry:
    """The geometry of T for these two layers, or a StitchError naming valid layers and their
    shapes (``names``: the two models' names for the message, e.g. their ids)."""
    labels = list(names) if names is not None else [None, None]
    for which, model, layer, label in (
        ("model 1", model1, layer1, labels[0]),
        ("model 2", model2, layer2, labels[1]),
    ):
        if layer not in layer_names(model):
            kind = type(model).__name__
            named = f"{label}, {kind}" if label else kind
            raise StitchError(
                f"{which} ({named}) has no layer {layer!r}; its layers and activation shapes: "
                f"{_describe_layers(model, layer)}"
            )
    if input_shape(model1) != input_shape(model2):
        raise StitchError(
            f"model 1 takes inputs of shape {input_shape(model1)} and model 2 "
            f"{input_shape(model2)}; stitched models need the same input space (the end runs on "
            "the same images when L2 is not a cut point, and both donors are evaluated on the same "
            "data)"
        )
    in_shape, out_shape = _activation_shape(model1, layer1), _activation_shape(model2, layer2)
    try:
        return stitch_geometry(in_shape, out_shape, flatten=flatten, resize=resize)
    except StitchError as err:
        raise StitchError(
            f"cannot stitch model 1's {layer1!r} {in_shape} into model 2's {layer2!r} {out_shape}: "
            f"{err}. Model 1's layers: {_describe_layers(model1)}. Model 2's layers: "
            f"{_describe_layers(model2)}"
        ) from None


def build_stitched(
    model1: nn.Module,
    layer1: str,
    model2: nn.Module,
    layer2: str,
    *,
    flatten: bool = False,
    resize: str = "bilinear",
    low_rank: int | None = None,
    donor_train_mode: bool = False,
    execution: str = "auto",
    names: Sequence[str] | None = None,
) -> StitchedModel:
    """A stitched model with a freshly initialised T (PyTorch's default init) on model 2's
    device (``names``: the models' names in error messages)."""
    geometry = check_stitchable(
        model1, layer1, model2, layer2, flatten=flatten, resize=resize, names=names
    )
    stitch = StitchingLayer(geometry, low_rank=low_rank).to(next(model2.parameters()).device)
    return StitchedModel(
        model1,
        layer1,
        model2,
        layer2,
        stitch,
        donor_train_mode=donor_train_mode,
        execution=execution,
    )


def common_stitch_points(
    model1: nn.Module, model2: nn.Module, *, flatten: bool = False
) -> list[tuple[str, str]]:
    """Layers that are cut points of both models under the same name and whose shapes can be
    stitched."""
    table1 = {r.name: r for r in layer_table(model1)}
    out = []
    for r2 in layer_table(model2):
        r1 = table1.get(r2.name)
        if r1 is None or not (r1.cut_point and r2.cut_point):
            continue
        try:
            stitch_geometry(r1.shape, r2.shape, flatten=flatten)
        except StitchError:
            continue
        out.append((r1.name, r2.name))
    return out
