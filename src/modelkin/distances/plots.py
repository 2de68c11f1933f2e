"""Figures of the distance stage: pairwise heatmaps
and ROC curves per derivation kind (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ids import display_order, short_label
from ..plotting import pyplot, save_figure
from ..signatures import get_distance, get_method
from .relatedness import relatedness_groups


def plot_distance_heatmap(
    csv_path: str | Path,
    output: str | Path,
    *,
    method: str | None = None,
    metric: str | None = None,
) -> Path:
    """Pairwise normalised distances (headline metric) as a heatmap; models grouped by lineage."""
    plt = pyplot()
    import pandas as pd
    from matplotlib.colors import TwoSlopeNorm

    frame = pd.read_csv(csv_path)
    method = method or Path(csv_path).stem
    metric = metric or get_method(method).headline.metric
    datasets = sorted(frame["dataset"].unique()) if len(frame) else []
    fig, axes = plt.subplots(
        1, max(len(datasets), 1), figsize=(9 * max(len(datasets), 1), 8), squeeze=False
    )
    image = None
    # With no data set there is still one (empty) panel: zip stops at the shorter.
    for ax, dataset in zip(axes[0], datasets, strict=False):
        rows = frame[frame["dataset"] == dataset]
        models = sorted(set(rows["model_a"]) | set(rows["model_b"]), key=display_order)
        index = {m: i for i, m in enumerate(models)}
        matrix = np.full((len(models), len(models)), np.nan)
        np.fill_diagonal(matrix, 0.0)
        for _, r in rows.iterrows():
            i, j = index[r["model_a"]], index[r["model_b"]]
            matrix[i, j] = matrix[j, i] = r[f"{metric}_normalised"]
        finite = matrix[np.isfinite(matrix)]
        top = max(2.0, float(np.nanpercentile(finite, 99))) if finite.size else 2.0
        norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=top)  # white = as far as independent pairs
        image = ax.imshow(matrix, cmap="RdBu", norm=norm, interpolation="nearest")
        labels = [short_label(m) for m in models]
        ax.set_xticks(range(len(models)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(models)), labels, fontsize=6)
        ax.set_title(
            f"{dataset}: {method} {metric} distance / reference "
            "(red < 1: closer than independent pairs)",
            fontsize=9,
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="normalised distance")
    if not datasets:
        axes[0][0].text(0.5, 0.5, "no pairs", ha="center", va="center")
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)


def plot_relatedness_roc(
    csv_path: str | Path,
    output: str | Path,
    *,
    method: str | None = None,
    metric: str | None = None,
) -> Path:
    """ROC curves of the headline metric's normalised distance, one per derivation kind: derived
    copies (positives) against independent models of the same parents (negatives)."""
    plt = pyplot()
    import pandas as pd
    from sklearn.metrics import roc_auc_score, roc_curve

    frame = pd.read_csv(csv_path)
    method = method or Path(csv_path).stem
    entry = get_distance(method, metric)
    sign = 1.0 if entry.higher_is_similar else -1.0
    column = f"{entry.metric}_normalised"
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    groups = relatedness_groups(frame)
    for kind, (positives, negatives, _) in groups.items():
        pos = positives[column].to_numpy(float)
        neg = negatives[column].to_numpy(float)
        pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
        if not (len(pos) and len(neg)):
            continue
        labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        scores = sign * np.r_[pos, neg]
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.step(
            fpr,
            tpr,
            where="post",
            linewidth=1.6,
            label=f"{kind}: AUC {roc_auc_score(labels, scores):.2f} ({len(pos)} vs {len(neg)})",
        )
    if not groups:
        ax.text(0.5, 0.5, "no derived models compared", ha="center", va="center")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (independent pairs called related)")
    ax.set_ylabel("true positive rate (derived copies found)")
    ax.set_title(f"{method} {entry.metric}: derived vs independent", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)
