"""The figure of a derivation question: each suspect's p-value per method (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_figure

VERDICT_COLOURS = {"related": "tab:red", "unrelated": "tab:blue"}


def plot_derivation(csv_path: str | Path, output: str | Path) -> Path:
    """One panel per method (headline metric): each suspect's calibrated p-value on a log axis,
    red when related at the question's alpha (dashed line), blue when not, grey without one."""
    plt = pyplot()
    import pandas as pd

    frame = pd.read_csv(csv_path)
    rows = frame[frame["headline"].astype(bool)] if len(frame) else frame
    methods = list(dict.fromkeys(rows["method"])) if len(rows) else []
    fig, axes = plt.subplots(
        1, max(len(methods), 1), figsize=(4.5 * max(len(methods), 1), 1.2 + 0.45 * _n(rows)),
        squeeze=False,
    )  # fmt: skip
    for ax, method in zip(axes[0], methods, strict=False):
        part = rows[rows["method"] == method].reset_index(drop=True)
        floor = 1e-12
        for i, r in part.iterrows():
            p = r["p_value"]
            if p == p:
                colour = VERDICT_COLOURS.get(r["verdict"], "0.6")
                ax.barh(i, -np.log10(max(p, floor)), color=colour)
            ax.text(
                0.02, i, r["verdict"], va="center", fontsize=7, transform=ax.get_yaxis_transform()
            )
        alpha = float(part["alpha"].iloc[0])
        ax.axvline(-np.log10(alpha), ls="--", color="k", lw=0.8)
        ax.set_yticks(range(len(part)), [s.split("/", 1)[-1] for s in part["suspect"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"-log10 p-value (dashed: alpha {alpha:g})", fontsize=8)
        ax.set_title(
            f"{method} {part['metric'].iloc[0]}: derived from {part['victim'].iloc[0]}?\n"
            f"null: {int(part['reference_models'].iloc[0])} references",
            fontsize=9,
        )
    if not methods:
        axes[0][0].text(0.5, 0.5, "no answers", ha="center", va="center")
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)


def _n(rows) -> int:
    return int(rows["suspect"].nunique()) if len(rows) else 1
