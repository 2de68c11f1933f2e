"""A small ResNet-shaped network that stands for a user's own model in workflow tests (a factory
source, ``tiny_external:tiny_resnet``: the jobs import it with ``tests/`` on PYTHONPATH).

Its layers are module paths like torchvision's ResNets' (``layer1.1``, ``layer2.0.conv1``), at a
width of 8 channels, so that importing, comparing and stitching it takes seconds."""

from __future__ import annotations

from torch import nn


class Block(nn.Module):
    """A basic residual block; its ReLU runs twice, as in torchvision's (so ``relu`` is not a
    layer of it, the block itself is)."""

    def __init__(self, channels_in: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = (
            nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride, bias=False),
                          nn.BatchNorm2d(channels))
            if stride != 1 or channels_in != channels
            else None
        )  # fmt: skip

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Block(width, width), Block(width, width))
        self.layer2 = nn.Sequential(Block(width, 2 * width, 2), Block(2 * width, 2 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.pool(x).flatten(1))


def tiny_resnet(num_classes: int = 10) -> TinyResNet:
    return TinyResNet(num_classes)
