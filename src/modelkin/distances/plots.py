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
    alpha: float = 0.01,
) -> Path:
    """Every pair's calibrated p-value (headline metric) as a heatmap, models grouped by lineage:
    red below ``alpha`` (the verdict "related"), blue above, grey without a verdict."""
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
        floor = -8.0  # p-values below 1e-8 all show the deepest red
        for _, r in rows.iterrows():
            i, j = index[r["model_a"]], index[r["model_b"]]
            p = r[f"{metric}_p_value"]
            matrix[i, j] = matrix[j, i] = max(np.log10(max(p, 1e-300)), floor) if p == p else np.nan
        cmap = plt.get_cmap("RdBu").copy()
        cmap.set_bad("0.85")
        norm = TwoSlopeNorm(vmin=floor, vcenter=float(np.log10(alpha)), vmax=0.0)
        image = ax.imshow(matrix, cmap=cmap, norm=norm, interpolation="nearest")
        labels = [short_label(m) for m in models]
        ax.set_xticks(range(len(models)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(models)), labels, fontsize=6)
        ax.set_title(
            f"{dataset}: {method} {metric}, p-value of each pair against unrelated pairs "
            f"(red: related at alpha {alpha:g}; grey: no verdict)",
            fontsize=9,
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="log10 p-value")
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
    """ROC curves of the headline metric's calibrated p-value, one per derivation kind: derived
    copies (positives) against unrelated models of the same parents (negatives)."""
    plt = pyplot()
    import pandas as pd
    from sklearn.metrics import roc_auc_score, roc_curve

    frame = pd.read_csv(csv_path)
    method = method or Path(csv_path).stem
    entry = get_distance(method, metric)
    column = f"{entry.metric}_p_value"
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
        scores = -np.r_[pos, neg]  # a smaller p-value: more related
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
    ax.set_xlabel("false positive rate (unrelated pairs called related)")
    ax.set_ylabel("true positive rate (derived copies found)")
    ax.set_title(f"{method} {entry.metric}: derived vs independent", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)
