"""The concordance figure: every two methods' oriented verdicts against each other, per pair."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_figure
from .methods import known_methods
from .table import check_frame, ordered_groups, rank_correlations

GROUP_COLOURS = {
    "derived": "tab:red",
    "siblings": "tab:orange",
    "retrained": "tab:purple",
    "independent": "tab:blue",
    "shared-seed": "tab:green",
    "same-model": "black",
}


def plot_concordance(
    pairs_csv: str | Path, output: str | Path, methods: Sequence[str] | None = None
) -> Path:
    """Scatter matrix of the oriented verdicts (one point per pair, coloured by group), Spearman's
    rho over all pairs in each panel; the diagonal shows each method's verdicts per group as a
    strip. ``methods``: the columns to plot (default: every column named after a method)."""
    plt = pyplot()
    import matplotlib.ticker
    import pandas as pd

    frame = pd.read_csv(pairs_csv)
    if methods is None:  # every column named after a method holds its oriented verdict
        methods = [c for c in frame.columns if c in known_methods()]
    check_frame(frame, methods)
    correlations = rank_correlations(frame, methods, by_group=False)
    rho = {(r.method_a, r.method_b): r.spearman for r in correlations.itertuples()}
    k = len(methods)
    groups = ordered_groups(frame["group"])
    fig, axes = plt.subplots(k, k, figsize=(2.6 * k + 1.5, 2.6 * k), squeeze=False)
    for i, mi in enumerate(methods):
        for j, mj in enumerate(methods):
            ax = axes[i][j]
            if i == j:
                for g_index, g in enumerate(groups):
                    values = frame.loc[frame["group"] == g, mi].to_numpy(float)
                    jitter = (
                        np.linspace(-0.15, 0.15, len(values))
                        if len(values) > 1
                        else np.zeros(len(values))
                    )
                    ax.scatter(
                        values,
                        g_index + jitter,
                        s=14,
                        color=GROUP_COLOURS.get(g, "grey"),
                        alpha=0.8,
                    )
                ax.set_yticks(range(len(groups)), groups, fontsize=7)
                ax.set_ylim(len(groups) - 0.4, -0.6)  # the first group (derived) on top
                ax.set_title(mi, fontsize=9, fontweight="bold")
            else:
                for g in groups:
                    part = frame[frame["group"] == g]
                    ax.scatter(
                        part[mj],
                        part[mi],
                        s=14,
                        color=GROUP_COLOURS.get(g, "grey"),
                        alpha=0.8,
                        label=g if (i, j) == (0, 1) else None,
                    )
                value = rho.get((mi, mj), rho.get((mj, mi)))
                ax.set_title(
                    f"Spearman {value:.2f}"
                    if value is not None and np.isfinite(value)
                    else "Spearman n/a",
                    fontsize=8,
                )
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            if i != j:
                ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            if i == k - 1:
                ax.set_xlabel(mj, fontsize=8)
            if j == 0 and i != j:
                ax.set_ylabel(mi, fontsize=8)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=GROUP_COLOURS.get(g, "grey"), label=g)
        for g in groups
    ]
    fig.legend(handles=handles, loc="upper right", fontsize=8, title="pair", title_fontsize=8)
    fig.suptitle(
        f"Method concordance over {len(frame)} model pairs (every axis: larger = more similar)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 0.92, 0.97))
    return save_figure(fig, output, dpi=100)
