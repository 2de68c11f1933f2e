"""Evaluating donors and stitched networks: accuracy, agreement with model 2, robust accuracy,
similarity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split, iterate_batches
from ..errors import InputError
from ..evaluate import evaluate_model


@torch.no_grad()
def classification_metrics(
    model: nn.Module,
    split: Split,
    *,
    reference: nn.Module | None = None,
    device: torch.device,
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy and mean cross-entropy; with ``reference`` (model 2) also prediction agreement and
    the cross-entropy to its softmax."""
    model.eval()
    correct = agree = 0
    loss = soft = 0.0
    for x, y in iterate_batches(split, batch_size, device=device):
        logits = model(x)
        correct += (logits.argmax(1) == y).sum().item()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        if reference is not None:
            ref = reference(x)
            agree += (logits.argmax(1) == ref.argmax(1)).sum().item()
            soft += -(F.softmax(ref, 1) * F.log_softmax(logits, 1)).sum().item()
    n = len(split)
    out = {"accuracy": correct / n, "loss": loss / n, "images": n}
    if reference is not None:
        out["agreement_with_model2"] = agree / n
        out["cross_entropy_to_model2"] = soft / n
    return out


def robust_metrics(
    model: nn.Module,
    split: Split,
    *,
    epsilon: float,
    step_size: float | None,
    steps: int,
    max_images: int | None,
    device: torch.device,
    seed: int = 0,
) -> dict[str, float]:
    """L-inf PGD (random start) robust accuracy with an explicit budget."""
    metrics = evaluate_model(
        model,
        split,
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        max_robust_images=max_images,
        seed=seed,
        device=device,
    )
    return {
        k: metrics[k]
        for k in (
            "robust_accuracy",
            "robust_epsilon",
            "robust_step_size",
            "robust_steps",
            "robust_images",
        )
    }


def similarity(
    x: torch.Tensor, y: torch.Tensor, measures: Sequence[str]
) -> dict[str, float | None]:
    """Each measure between per-sample flattened representations (None where the measure cannot
    apply)."""
    from ..measures import REGISTRY, compute

    out: dict[str, float | None] = {}
    a = x.reshape(x.shape[0], -1).double().numpy()
    b = y.reshape(y.shape[0], -1).double().numpy()
    for name in measures:
        info = REGISTRY[name]
        if info.requires_same_shape and tuple(x.shape) != tuple(y.shape):
            out[name] = None
            continue
        try:
            value = compute(name, a, b)
        except ValueError:  # e.g. a dead (constant) representation: CKA undefined
            value = float("nan")
        out[name] = None if value is None or math.isnan(value) else float(value)
    return out


def check_measures(names: Sequence[str]) -> list[str]:
    from ..measures import REGISTRY

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise InputError(
            f"unknown similarity measure(s) {unknown}; valid names: {', '.join(sorted(REGISTRY))}"
        )
    return list(names)


def measure_info(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    from ..measures import REGISTRY

    def bound(v: float) -> float | None:  # JSON has no infinity
        return None if math.isinf(v) else float(v)

    return {
        n: {
            "higher_is_similar": REGISTRY[n].higher_is_similar,
            "symmetric": REGISTRY[n].symmetric,
            "range": [bound(v) for v in REGISTRY[n].range],
            "description": REGISTRY[n].description,
        }
        for n in names
    }
