"""The model zoo: every architecture adapts to a data set's channels, size and classes.

All models take images in [0, 1] and normalise inside (non-persistent buffers, so
state dicts keep the plain torchvision-style keys). Every activation a later
stage may read or replace is the output of a leaf module with a stable name;
ReLUs are separate, never in place, never shared, so that a hooked activation is
the tensor the next layer really sees.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


class Classifier(nn.Module):
    """Base class: normalisation in front of ``features_and_head``."""

    input_mean: torch.Tensor
    input_std: torch.Tensor
    # Layers are the torch.nn leaf modules only (modelkin.models.layers): every activation worth
    # reading is a leaf's output by design, and configurations, layer_names.json and results index
    # exactly these names.
    layer_containers = False

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, mean, std):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        channels = in_shape[0]
        mean_t = (
            torch.as_tensor(mean, dtype=torch.float32)
            .reshape(-1, 1, 1)
            .expand(channels, 1, 1)
            .clone()
        )
        std_t = (
            torch.as_tensor(std, dtype=torch.float32)
            .reshape(-1, 1, 1)
            .expand(channels, 1, 1)
            .clone()
        )
        self.register_buffer("input_mean", mean_t, persistent=False)
        self.register_buffer("input_std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.input_mean) / self.input_std)

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SequentialClassifier(Classifier):
    """A chain of named top-level modules run in order."""

    def _set_chain(self, layers: OrderedDict[str, nn.Module]) -> None:
        for name, module in layers.items():
            self.add_module(name, module)
        self._chain = list(layers)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._chain:
            x = getattr(self, name)(x)
        return x


def _spatial_after(in_shape, modules) -> tuple[int, ...]:
    with torch.no_grad():
        x = torch.zeros(1, *in_shape)
        for m in modules:
            x = m(x)
    return tuple(x.shape[1:])


class MLP(SequentialClassifier):
    def __init__(self, in_shape, num_classes, mean, std, hidden=(256, 256)):
        super().__init__(in_shape, num_classes, mean, std)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = in_shape[0] * in_shape[1] * in_shape[2]
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, h)
            layers[f"relu{i}"] = nn.ReLU()
            width = h
        layers[f"fc{len(hidden) + 1}"] = nn.Linear(width, num_classes)
        self._set_chain(layers)


class LeNet(SequentialClassifier):
    def __init__(self, in_shape, num_classes, mean, std):
        super().__init__(in_shape, num_classes, mean, std)
        c, h, w = in_shape
        if min(h, w) < 16:
            raise InputError(
                f"lenet needs images of at least 16x16 pixels, got {h}x{w}; use mlp or upsample"
            )
        convs = OrderedDict(
            conv1=nn.Conv2d(c, 6, 5),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 16, 5),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
        )
        flat = _spatial_after(in_shape, convs.values())[0]
        convs.update(
            fc1=nn.Linear(flat, 120),
            relu3=nn.ReLU(),
            fc2=nn.Linear(120, 84),
            relu4=nn.ReLU(),
            fc3=nn.Linear(84, num_classes),
        )
        self._set_chain(convs)


class Tiny10(SequentialClassifier):
    """The small CIFAR CNN of the stitching papers:
    unpadded 3x3 convs, ~87k parameters at 3x32x32."""

    CHANNELS = (16, 16, 32, 32, 32, 64, 64)
    STRIDES = (1, 1, 2, 1, 1, 2, 1)

    def __init__(self, in_shape, num_classes, mean, std, batch_norm: bool = True):
        super().__init__(in_shape, num_classes, mean, std)
        c, h, w = in_shape
        if min(h, w) < 27:
            raise InputError(
                f"tiny10 uses unpadded convolutions and needs at least 27x27 pixels, got {h}x{w}"
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        prev = c
        specs = [(ch, 3, s) for ch, s in zip(self.CHANNELS, self.STRIDES, strict=True)]
        specs.append((64, 1, 1))
        for i, (ch, k, s) in enumerate(specs, start=1):
            layers[f"conv{i}"] = nn.Conv2d(prev, ch, k, stride=s, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(ch)
            layers[f"relu{i}"] = nn.ReLU()
            prev = ch
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(prev, num_classes)
        self._set_chain(layers)


class OptionAShortcut(nn.Module):
    """CIFAR ResNet shortcut 'A': subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, self.extra - pad))


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus shortcut; ``add`` is the
    pre-activation sum, ``relu2`` the block output."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = OptionAShortcut(planes - in_planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
        else:
            self.shortcut = nn.Identity()
        self.add = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add(out + self.shortcut(x)))


class CifarResNet(Classifier):
    def __init__(self, in_shape, num_classes, mean, std, blocks, widths, shortcut: str):
        super().__init__(in_shape, num_classes, mean, std)
        self.conv1 = nn.Conv2d(in_shape[0], widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        in_planes = widths[0]
        for stage, (n_blocks, planes) in enumerate(zip(blocks, widths, strict=True), start=1):
            stride = 1 if stage == 1 else 2
            stage_blocks = []
            for b in range(n_blocks):
                stage_blocks.append(
                    BasicBlock(in_planes, planes, stride if b == 0 else 1, shortcut)
                )
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*stage_blocks))
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ),
}


class VGG(SequentialClassifier):
    """VGG with batch norm (CIFAR variant: one linear head).
    Pools that would shrink below 1 pixel are skipped."""

    def __init__(self, in_shape, num_classes, mean, std, config):
        super().__init__(in_shape, num_classes, mean, std)
        config = VGG_CONFIGS[config] if isinstance(config, str) else config
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        prev, size, conv_i, pool_i = in_shape[0], min(in_shape[1:]), 0, 0
        for item in config:
            if item == "M":
                pool_i += 1
                if size >= 2:
                    layers[f"pool{pool_i}"] = nn.MaxPool2d(2)
                    size //= 2
                continue
            conv_i += 1
            layers[f"conv{conv_i}"] = nn.Conv2d(prev, item, 3, padding=1, bias=False)
            layers[f"bn{conv_i}"] = nn.BatchNorm2d(item)
            layers[f"relu{conv_i}"] = nn.ReLU()
            prev = item
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(prev, num_classes)
        self._set_chain(layers)
