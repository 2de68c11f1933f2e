"""Evaluation stage: clean and robust accuracy of a checkpoint, and the zoo table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .checkpoint import load_checkpoint, read_metadata
from .derive import class_accuracies, evaluation_split
from .device import resolve_device
from .io import atomic_path, read_json, write_json
from .plotting import pyplot, save_figure
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
    """Clean and robust test accuracy of a zoo or derived checkpoint, written as JSON to ``output``.

    A derived model is judged on the task it was trained for (a transfer's
    relabelled class subset), and an unlearned one also on forget/retain accuracy.
    """
    device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, device)
    test = evaluation_split(ckpt.meta, prepared)
    metrics = evaluate_model(
        ckpt.model,
        test,
        epsilon=epsilon,
        step_size=step_size,
        steps=steps,
        max_robust_images=max_robust_images,
        device=device,
    )
    if ckpt.meta.get("forget_class") is not None:
        metrics.update(class_accuracies(ckpt.model, test, ckpt.meta["forget_class"], device))
    lineage = {key: ckpt.meta[key] for key in ("parent", "derivation") if key in ckpt.meta}
    identity = {"checkpoint": str(checkpoint), "checkpoint_sha256": ckpt.sha256, "model": ckpt.name}
    result = {**identity, **lineage, **metrics}
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


def zoo_table(
    checkpoints: Sequence[str | Path], evaluations: Sequence[str | Path], output: str | Path
):
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


def plot_zoo(zoo_csv: str | Path, output: str | Path) -> Path:
    """Clean vs robust accuracy, one marker per model, coloured by algorithm, one panel per data set."""
    plt = pyplot()
    import pandas as pd

    table = pd.read_csv(zoo_csv)
    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.5), squeeze=False)
    markers = dict(zip(sorted(table["arch"].unique()), "osD^vP*Xh<>"))
    for ax, dataset in zip(axes[0], datasets):
        rows = table[table["dataset"] == dataset]
        for i, (algorithm, group) in enumerate(rows.groupby("algorithm")):
            for arch, sub in group.groupby("arch"):
                ax.scatter(
                    sub["accuracy"],
                    sub["robust_accuracy"],
                    color=f"C{i}",
                    marker=markers[arch],
                    label=f"{algorithm} / {arch}",
                    alpha=0.8,
                )
        ax.set_xlabel("clean test accuracy")
        ax.set_ylabel(f"robust accuracy (PGD, eps={rows['robust_epsilon'].iloc[0]:.3g})")
        ax.set_title(f"{dataset}: {len(rows)} models")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, output, dpi=120)
