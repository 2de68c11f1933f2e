"""Choosing the torch device: ``auto`` prefers CUDA (honouring CUDA_VISIBLE_DEVICES), else CPU."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {name!r} was requested but CUDA is not available here; "
                "set device: auto (or cpu) in config.yaml or pass --device cpu"
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(
        f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)"
    )
