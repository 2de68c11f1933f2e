"""ModelDiff's figures: the summary plot and one image grid per distinguishing direction.

The functions draw what they are given (results in memory, images as tensors or arrays); reading
the stage's files is :mod:`.stages`' job. Imports neither torch nor, until a figure is drawn,
matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..plotting import pyplot, save_figure
from .directions import DistinguishingDirections

# The rows of an image grid, in order: which examples of a direction they show.
GRID_ROLES = {
    "train_top": "train, largest weights",
    "train_bottom": "train, most negative weights",
    "test_top": "test, largest projections",
    "test_bottom": "test, most negative projections",
}


def direction_picks(
    result: DistinguishingDirections, component: int, n_examples: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each row of :data:`GRID_ROLES`: the chosen indices and the values they were chosen by
    (training weights or test projections)."""
    weights, projections = result.directions[component], result.projections[:, component]
    return {
        "train_top": (result.top_train(component, n_examples), weights),
        "train_bottom": (result.top_train(component, n_examples, bottom=True), weights),
        "test_top": (result.top_test(component, n_examples), projections),
        "test_bottom": (result.top_test(component, n_examples, bottom=True), projections),
    }


def _as_image(x: Any) -> np.ndarray:
    """One [C, H, W] image (tensor or array) as [H, W] grey or [H, W, C] colour for imshow."""
    image = np.asarray(x).transpose(1, 2, 0)
    return image[..., 0] if image.shape[2] == 1 else image


def save_direction_grid(
    path: str | Path,
    result: DistinguishingDirections,
    component: int,
    picks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    train: Any,
    test: Any,
) -> None:
    """One PNG: a row of images per entry of ``picks`` (see :func:`direction_picks`), each titled
    with its index, label and value. ``train``/``test``: splits with ``x`` [N, C, H, W] in [0, 1]
    and ``y``."""
    plt = pyplot()
    n = max(len(indices) for indices, _ in picks.values())
    fig, axes = plt.subplots(
        len(picks), n, figsize=(1.1 * n, 1.35 * len(picks) + 0.6), squeeze=False
    )
    for row, (role, (indices, values)) in enumerate(picks.items()):
        split = train if role.startswith("train") else test
        for col in range(n):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(indices):
                ax.axis("off")
                continue
            index = int(indices[col])
            ax.imshow(_as_image(split.x[index]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"#{index} y={int(split.y[index])}\n{values[index]:+.3f}", fontsize=6)
        axes[row, 0].set_ylabel(GRID_ROLES[role], fontsize=6)
    names, variance = result.names, result.explained_variance
    fig.suptitle(
        f"{result.label} ({result.kind}), direction {component}: explained variance "
        f"{names['A']} {variance['A'][component]:.3f}, "
        f"{names['B']} {variance['B'][component]:.3f}",
        fontsize=8,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def save_summary_plot(
    output_png: str | Path,
    results: Mapping[str, DistinguishingDirections],
    names: Mapping[str, str],
    counterfactual: pd.DataFrame,
) -> None:
    """Explained variance of each direction in A's and B's scores (one panel per kind), and the
    counterfactual's P(target class) before and after, per checkpoint (one row of
    ``counterfactual`` each)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, result in zip(axes[:2], results.values(), strict=True):
        c = np.arange(result.num_components)
        ax.bar(c - 0.2, result.explained_variance["A"], 0.4, label=names["A"])
        ax.bar(c + 0.2, result.explained_variance["B"], 0.4, label=names["B"])
        ax.set_xticks(c)
        ax.set_xlabel("direction")
        ax.set_ylabel("explained variance")
        ax.set_title(result.label, fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[2]
    for i, (_, rows) in enumerate(counterfactual.groupby("algorithm", sort=False)):
        position = np.full(len(rows), i)
        before = "before" if i == 0 else None
        after = "after" if i == 0 else None
        ax.scatter(position, rows["p_target_before"], marker="o", color="grey", label=before)
        ax.scatter(position, rows["p_target_after"], marker="^", color="C3", label=after)
    ax.set_xticks(range(counterfactual["algorithm"].nunique()))
    ax.set_xticklabels(list(dict.fromkeys(counterfactual["algorithm"])))
    ax.set_ylabel(f"P(class {int(counterfactual['target_class'].iloc[0])})")
    ax.set_ylim(0, 1)
    transform = (
        str(counterfactual["transform"].iloc[0]) if "transform" in counterfactual else "patch"
    )
    ax.set_title(f"counterfactual: {transform} applied to test images", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, output_png, dpi=110)
