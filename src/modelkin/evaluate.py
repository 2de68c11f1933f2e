"""The evaluation stage: clean and PGD robust accuracy of a checkpoint, once per model.

Training and deriving write checkpoints only; this stage measures them, so that changing the
evaluation settings (``evaluation:`` in the config) re-runs evaluation alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .attacks import pgd_attack
from .checkpoint import load_checkpoint
from .data import Split, iterate_batches, load_split, relabel_classes
from .device import resolve_device
from .io import write_json

# Checkpoint metadata an evaluation record repeats, so that the zoo table needs no checkpoint.
RECORDED_META = (
    "dataset",
    "arch",
    "algorithm",
    "init_seed",
    "data_seed",
    "parent",
    "derivation",
    "epochs",
    "num_parameters",
)


def evaluate_checkpoint(
    checkpoint: str | Path,
    prepared: str | Path,
    output: str | Path,
    *,
    device: str = "auto",
    epsilon: float | None = None,
    step_size: float | None = None,
    steps: int = 20,
    max_robust_images: int | None = None,
) -> dict[str, Any]:
    """Clean and robust test accuracy of a zoo or derived checkpoint, written as JSON to ``output``.

    A derived model is judged on the task it was trained for (a transfer's relabelled class
    subset), and an unlearned one also on forget/retain accuracy.
    """
    torch_device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, torch_device)
    test = evaluation_split(ckpt.meta, prepared)
    metrics = evaluate_model(
        ckpt.model,
        test,
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        max_robust_images=max_robust_images,
        device=torch_device,
    )
    if ckpt.meta.get("forget_class") is not None:
        metrics.update(class_accuracies(ckpt.model, test, ckpt.meta["forget_class"], torch_device))
    recorded = {key: ckpt.meta.get(key) for key in RECORDED_META}
    identity = {"checkpoint": str(checkpoint), "checkpoint_sha256": ckpt.sha256, "model": ckpt.name}
    result = {**identity, **recorded, **metrics}
    write_json(output, result)
    return result


def evaluate_model(
    model: nn.Module,
    split: Split,
    *,
    epsilon: float | None = None,
    step_size: float | None = None,
    steps: int = 20,
    batch_size: int = 256,
    max_robust_images: int | None = None,
    seed: int = 0,
    device: torch.device | str = "auto",
) -> dict[str, float]:
    """Clean accuracy on the whole split; PGD robust accuracy (random start) on its first images."""
    device = resolve_device(device)
    model.to(device).eval()
    epsilon = split.info.default_epsilon if epsilon is None else epsilon
    step_size = 2.5 * epsilon / max(steps, 1) if step_size is None else step_size
    generator = torch.Generator().manual_seed(seed)
    correct = robust = attacked = 0
    robust_limit = len(split) if max_robust_images is None else min(max_robust_images, len(split))
    for x, y in iterate_batches(split, batch_size, device=device):
        with torch.no_grad():
            correct += (model(x).argmax(1) == y).sum().item()
        room = robust_limit - attacked
        if room > 0 and steps > 0:
            xa, ya = x[:room], y[:room]
            x_adv = pgd_attack(
                model,
                xa,
                ya,
                epsilon=epsilon,
                step_size=step_size,
                steps=steps,
                generator=generator,
            )
            with torch.no_grad():
                robust += (model(x_adv).argmax(1) == ya).sum().item()
            attacked += len(ya)
    return {
        "accuracy": correct / len(split),
        "robust_accuracy": robust / attacked if attacked else float("nan"),
        "robust_epsilon": epsilon,
        "robust_step_size": step_size,
        "robust_steps": steps,
        "robust_images": attacked,
        "test_images": len(split),
    }


def evaluation_split(meta: dict[str, Any], prepared: str | Path) -> Split:
    """The test split a model is evaluated on: a transfer's class subset relabelled as trained."""
    test = load_split(prepared, "test")
    if meta.get("classes"):
        test = relabel_classes(test, meta["classes"])
    return test


def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device | str,
    probabilities: bool = False,
    temperature: float = 1.0,
    batch_size: int = 512,
) -> torch.Tensor:
    """The model's answers on ``x``: hard labels (N,)
    or softmax(logits / temperature) rows (N, C)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size].to(device)).float()
            answer = (
                torch.softmax(logits / temperature, dim=1) if probabilities else logits.argmax(1)
            )
            out.append(answer.cpu())
    return torch.cat(out)


def class_accuracies(
    model: nn.Module, split: Split, forget_class: int, device: torch.device | str
) -> dict[str, float]:
    """Accuracy on the forgotten class's images and on the rest, and how often it is predicted."""
    predictions = predict(model, split.x, device=device)
    forget = split.y == int(forget_class)
    return {
        "forget_class": int(forget_class),
        "forget_accuracy": float((predictions[forget] == split.y[forget]).float().mean()),
        "retain_accuracy": float((predictions[~forget] == split.y[~forget]).float().mean()),
        "forget_class_predicted_fraction": float((predictions == int(forget_class)).float().mean()),
    }
