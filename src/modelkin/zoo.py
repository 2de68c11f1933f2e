"""The zoo table and plot: one row per model from
its evaluation record (no torch, no checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .io import atomic_path, read_json
from .plotting import pyplot, save_figure

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


def zoo_table(evaluations: Sequence[str | Path], output: str | Path):
    """One row per model from its evaluation record
    (:func:`modelkin.evaluate.evaluate_checkpoint`)."""
    import pandas as pd

    rows = [read_json(path) for path in evaluations]
    table = pd.DataFrame(rows).reindex(columns=list(ZOO_COLUMNS))
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False)
    return table


def plot_zoo(zoo_csv: str | Path, output: str | Path) -> Path:
    """Clean vs robust accuracy, one marker per model,
    coloured by algorithm, one panel per data set."""
    plt = pyplot()
    import pandas as pd

    table = pd.read_csv(zoo_csv)
    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.5), squeeze=False)
    # One marker per architecture, from a fixed list of 11 (zip stops at the shorter).
    markers = dict(zip(sorted(table["arch"].unique()), "osD^vP*Xh<>", strict=False))
    for ax, dataset in zip(axes[0], datasets, strict=True):
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
