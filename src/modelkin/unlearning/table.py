"""The unlearning table and figure from the trajectory jobs' CSVs (pandas and matplotlib, no torch).

``trajectory.csv``: every row of every unlearning method (one per epoch) and of the independent
models, with each distance also relative to the independent models' mean (``<column>_relative``:
1 is as far from the original as an unrelated model, 0 is the original).

``trajectory.png``: one panel per signature method (its headline distance to the original over the
epochs, the independent models' range as a band), and one of forget and retain accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..io import atomic_path
from ..plotting import pyplot, save_figure
from ..signatures.registry import METHODS
from .plan import INDEPENDENT, METHOD_KINDS

COLORS = {"relabel": "C0", "ascent": "C1", "retrain": "C2"}


def distance_columns(table: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Column -> (signature method, metric) of every distance column in ``table``."""
    out = {}
    for name, method in METHODS.items():
        for distance in method.distances:
            column = f"{name}_{distance.metric}"
            if column in table.columns:
                out[column] = (name, distance.metric)
    return out


def headline_columns(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, label) of each signature method's headline distance present in ``table``."""
    return [
        (f"{name}_{method.headline.metric}", f"{name} {method.headline.metric}")
        for name, method in METHODS.items()
        if f"{name}_{method.headline.metric}" in table.columns
    ]


def trajectory_table(inputs: Sequence[str | Path], output_csv: str | Path) -> pd.DataFrame:
    """Join the trajectory jobs' CSVs, add distances relative to the independent models' mean,
    and write ``output_csv``."""
    if not inputs:
        raise InputError("no unlearning trajectories to join; list unlearning.methods")
    table = pd.concat([pd.read_csv(path) for path in inputs], ignore_index=True)
    independent = table[table["unlearning"] == INDEPENDENT]
    for column in distance_columns(table):
        reference = independent[column].mean() if len(independent) else float("nan")
        table[f"{column}_relative"] = table[column] / reference
    table["epoch"] = table["epoch"].astype("Int64")  # empty for the independent models
    with atomic_path(output_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table


def plot_trajectory(table_csv: str | Path, output_png: str | Path) -> Path:
    """The figure of :func:`trajectory_table`'s CSV."""
    table = pd.read_csv(table_csv)
    heads = headline_columns(table)
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(
        1, len(heads) + 1, figsize=(4.2 * (len(heads) + 1), 3.6), squeeze=False
    )
    runs = table[table["unlearning"] != INDEPENDENT]
    independent = table[table["unlearning"] == INDEPENDENT]
    methods = [m for m in METHOD_KINDS if m in set(runs["unlearning"])]
    for ax, (column, label) in zip(axes[0], heads, strict=False):
        if len(independent):
            values = independent[column]
            ax.axhspan(values.min(), values.max(), color="grey", alpha=0.2, lw=0)
            ax.axhline(
                values.mean(),
                color="grey",
                ls="--",
                lw=1,
                label=f"independent models (n={len(values)})",
            )
        for method in methods:
            rows = runs[runs["unlearning"] == method].sort_values("epoch")
            ax.plot(rows["epoch"], rows[column], "o-", color=COLORS.get(method), ms=3, label=method)
        ax.set_xlabel("epoch of unlearning")
        ax.set_ylabel(f"distance to the original ({label})")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for method in methods:
        rows = runs[runs["unlearning"] == method].sort_values("epoch")
        color = COLORS.get(method)
        ax.plot(
            rows["epoch"],
            rows["forget_accuracy"],
            "o-",
            color=color,
            ms=3,
            label=f"{method} forget",
        )
        ax.plot(
            rows["epoch"],
            rows["retain_accuracy"],
            "s--",
            color=color,
            ms=3,
            label=f"{method} retain",
        )
    ax.set_xlabel("epoch of unlearning")
    ax.set_ylabel("test accuracy")
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, ncol=2)
    forget = sorted(set(table.get("forget_class", pd.Series(dtype=int)).dropna().astype(int)))
    title = f"unlearning class {forget[0]}" if forget else "unlearning"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, output_png)
