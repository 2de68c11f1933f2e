"""Evaluation stage: clean and robust accuracy of a checkpoint, and the zoo table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .checkpoint import load_checkpoint, read_metadata
from .data import load_split
from .device import resolve_device
from .io import atomic_path, read_json, write_json
from .train import evaluate_model


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
) -> dict:
    device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, device)
    test = load_split(prepared, "test")
    metrics = evaluate_model(
        ckpt.model,
        test,
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        max_robust_images=max_robust_images,
        device=device,
    )
    result = {"checkpoint": str(checkpoint), "checkpoint_sha256": ckpt.sha256, "model": ckpt.name, **metrics}
    write_json(output, result)
    return result


ZOO_COLUMNS = (
    "model",
    "dataset",
    "arch",
    "algorithm",
    "init_seed",
    "data_seed",
    "parent",
    "epochs",
    "num_parameters",
    "accuracy",
    "robust_accuracy",
    "robust_epsilon",
    "checkpoint",
)


def zoo_table(checkpoints: Sequence[str | Path], evaluations: Sequence[str | Path], output: str | Path):
    """One row per model: its metadata and its evaluation."""
    import pandas as pd

    rows = []
    for ckpt_path, eval_path in zip(checkpoints, evaluations):
        meta = read_metadata(ckpt_path)
        metrics = read_json(eval_path)
        rows.append(
            {
                "model": meta.get("name", Path(ckpt_path).stem),
                "dataset": meta["dataset"],
                "arch": meta["arch"],
                "algorithm": meta.get("algorithm"),
                "init_seed": meta.get("init_seed"),
                "data_seed": meta.get("data_seed"),
                "parent": meta.get("parent"),
                "epochs": meta.get("epochs"),
                "num_parameters": meta.get("num_parameters"),
                "accuracy": metrics["accuracy"],
                "robust_accuracy": metrics["robust_accuracy"],
                "robust_epsilon": metrics["robust_epsilon"],
                "checkpoint": str(ckpt_path),
            }
        )
    table = pd.DataFrame(rows, columns=list(ZOO_COLUMNS))
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False)
    return table
