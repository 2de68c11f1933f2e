"""The stitching stage's summary table and plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_path
from ..plotting import pyplot, save_figure
from .options import VARIANTS
from .results import read_results

ID_COLUMNS = (
    "experiment",
    "pair",
    "model1",
    "model2",
    "arch1",
    "arch2",
    "algorithm1",
    "algorithm2",
    "robust_donor",
    "layer1",
    "layer2",
    "layer_index",
    "num_layers",
    "train_task",
    "eval_task",
    "preset",
    "init",
    "target_type",
    "mask",
    "low_rank",
    "adversary",
    "donor_mode",
    "front",
)


def summary_rows(payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run and evaluation task: accuracies, relative accuracies, robust accuracies,
    measures."""
    rows = []
    for p in payloads:
        opts = p["options"]
        prov = p.get("provenance") or {}
        variants = [v for v in VARIANTS if v in p["relative_accuracy"]]
        for task_name, ev in p["evaluations"].items():
            row: dict[str, Any] = {
                "experiment": prov.get("experiment", ""),
                "pair": prov.get("pair", f"{p['model1']['name']}~{p['model2']['name']}"),
                "model1": p["model1"]["name"],
                "model2": p["model2"]["name"],
                "arch1": p["model1"]["arch"],
                "arch2": p["model2"]["arch"],
                "algorithm1": p["model1"]["algorithm"],
                "algorithm2": p["model2"]["algorithm"],
                "robust_donor": bool(
                    p["model1"].get("adversarial") or p["model2"].get("adversarial")
                ),
                "layer1": p["model1"]["layer"],
                "layer2": p["model2"]["layer"],
                "layer_index": p["model2"]["layer_index"],
                "num_layers": p["model2"]["num_layers"],
                "train_task": p["train_task"]["name"],
                "eval_task": task_name,
                "preset": opts.get("preset"),
                "init": opts["init"],
                "target_type": opts["target_type"],
                "mask": opts["mask"],
                "low_rank": opts["low_rank"],
                "adversary": opts["adversary"],
                "donor_mode": p["donors"]["mode"],
                "front": p["execution"]["front"],
                "model1_accuracy": ev["model1"]["accuracy"],
                "model2_accuracy": ev["model2"]["accuracy"],
                "task_model": ev.get("task_model"),
            }
            for v in variants:
                row[f"{v}_accuracy"] = ev[v]["accuracy"]
                row[f"{v}_relative_accuracy"] = ev[v]["relative_accuracy"]
                row[f"{v}_relative_to_task_model"] = ev[v].get("relative_to_task_model")
                row[f"{v}_agreement"] = ev[v].get("agreement_with_model2")
            if p.get("robust_eval"):
                row["robust_epsilon"] = ev["model2"].get("robust_epsilon")
                for key in ("model1", "model2", *variants):
                    row[f"{key}_robust_accuracy"] = ev[key].get("robust_accuracy")
            sim = ev.get("similarity", {})
            for measure, value in sim.get("model1_vs_model2", {}).items():
                row[f"model1_vs_model2_{measure}"] = value
            for v in variants:
                for measure, value in sim.get(f"{v}_vs_model2", {}).items():
                    row[f"{v}_{measure}"] = value
            row["result"] = p.get("_path")
            rows.append(row)
    return rows


def summary_table(results: Sequence[str | Path], output: str | Path):
    """Write ``summary.csv`` from result files; returns the pandas DataFrame."""
    import pandas as pd

    rows = summary_rows(read_results(results))
    table = pd.DataFrame(rows)
    if len(table):
        ordered = [c for c in ID_COLUMNS if c in table.columns]
        table = table[ordered + [c for c in table.columns if c not in ordered]]
        table = table.sort_values(
            ["experiment", "pair", "eval_task", "layer_index", "layer1"], kind="stable"
        )
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False)
    return table


def _panels(n: int):
    plt = pyplot()
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _layer_axis(group):
    """Layer pairs of a group ordered by model 2's depth, as x positions and tick labels."""
    labels = (
        group[["layer_index", "layer1", "layer2"]]
        .drop_duplicates()
        .sort_values(["layer_index", "layer1"])
        .apply(
            lambda r: r["layer1"] if r["layer1"] == r["layer2"] else f"{r['layer1']}>{r['layer2']}",
            axis=1,
        )
        .tolist()
    )
    return labels


def _groups(table):
    """Panels: one per experiment, evaluation task and direction (donor algorithms), so that e.g.
    standard -> robust and robust -> standard runs are never averaged together."""
    if not len(table):
        return []
    out = []
    for (experiment, task, alg1, alg2), group in table.groupby(
        ["experiment", "eval_task", "algorithm1", "algorithm2"], sort=True
    ):
        direction = "" if alg1 == alg2 else f", {alg1} -> {alg2}"
        out.append(
            (f"{experiment} (on {task}{direction}, {group['pair'].nunique()} pair(s))", group)
        )
    return out


def _label(row) -> str:
    return row["layer1"] if row["layer1"] == row["layer2"] else f"{row['layer1']}>{row['layer2']}"


def _plot_lines(ax, group, columns: dict[str, str], ylabel: str):
    """Mean over model pairs per layer (min-max as error bars), one line per column."""
    import numpy as np

    group = group.assign(_layer=group.apply(_label, axis=1))
    labels = _layer_axis(group)
    xs = np.arange(len(labels))
    for i, (column, name) in enumerate(columns.items()):
        if column not in group.columns or group[column].isna().all():
            continue
        stats = group.groupby("_layer")[column].agg(["mean", "min", "max"]).reindex(labels)
        err = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])
        ax.errorbar(xs, stats["mean"], yerr=err, marker="o", capsize=3, label=name, color=f"C{i}")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def plot_relative_accuracy(table, output: str | Path) -> Path:
    groups = _groups(table)
    fig, axes = _panels(max(len(groups), 1))
    if not groups:
        axes[0].text(0.5, 0.5, "no stitching runs", ha="center", va="center")
    for ax, (title, group) in zip(axes, groups, strict=False):
        # Same-task runs: stitched / model 2. Cross-task: relative to the donor trained on the
        # evaluation task.
        columns = {f"{v}_relative_to_task_model": v for v in VARIANTS}
        reference = group["task_model"].dropna().unique()
        _plot_lines(
            ax,
            group,
            columns,
            f"stitched / {reference[0] if len(reference) == 1 else 'task model'} accuracy",
        )
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(
        "Relative accuracy of the stitched network per layer: T at init, trained, least squares"
    )
    fig.tight_layout()
    return save_figure(fig, output)


def plot_cka_vs_accuracy(table, output: str | Path, measure: str = "cka") -> Path:
    fig, ax = pyplot().subplots(figsize=(6.2, 4.8))
    column = f"model1_vs_model2_{measure}"
    rows = table[table["eval_task"] == table["train_task"]] if len(table) else table
    if not len(rows) or column not in rows.columns:
        ax.text(0.5, 0.5, f"no runs with the {measure} measure", ha="center", va="center")
    else:
        for i, (experiment, group) in enumerate(rows.groupby("experiment")):
            ax.scatter(
                group[column],
                group["after_relative_to_task_model"],
                color=f"C{i}",
                label=f"{experiment}: trained T",
            )
            if "ps_inv_relative_to_task_model" in group.columns:
                ax.scatter(
                    group[column],
                    group["ps_inv_relative_to_task_model"],
                    facecolors="none",
                    edgecolors=f"C{i}",
                    label=f"{experiment}: least squares",
                )
        ax.set_xlabel(f"{measure} between model 1 at L1 and model 2 at L2 (test images)")
        ax.set_ylabel("stitched / task model accuracy (model 2 unless cross-task)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax.set_title("Representational similarity vs functional similarity (stitching)")
    fig.tight_layout()
    return save_figure(fig, output)


def plot_robust_accuracy(table, output: str | Path) -> Path:
    has = "after_robust_accuracy" in table.columns if len(table) else False
    rows = table[table["after_robust_accuracy"].notna()] if has else table.iloc[0:0]
    groups = _groups(rows)
    fig, axes = _panels(max(len(groups), 1))
    if not groups:
        axes[0].text(
            0.5,
            0.5,
            "no run with robust evaluation\n(no robust donor, robust_eval false)",
            ha="center",
            va="center",
        )
        axes[0].set_axis_off()
    for ax, (title, group) in zip(axes, groups, strict=False):
        columns = {f"{v}_robust_accuracy": f"stitched ({v})" for v in VARIANTS}
        _plot_lines(ax, group, columns, "robust accuracy (PGD)")
        for key, style in (("model1", "--"), ("model2", ":")):
            value = group[f"{key}_robust_accuracy"].mean()
            name = group["algorithm1" if key == "model1" else "algorithm2"].iloc[0]
            ax.axhline(value, color="k", ls=style, lw=1, label=f"{key} ({name})")
        eps = group["robust_epsilon"].iloc[0]
        ax.set_title(f"{title}, eps={eps:.3g}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle("Robust accuracy of stitched networks per layer")
    fig.tight_layout()
    return save_figure(fig, output)


def plot_summary(
    summary_csv: str | Path, relative: str | Path, cka: str | Path, robust: str | Path
) -> list[Path]:
    import pandas as pd

    try:
        table = pd.read_csv(summary_csv)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    return [
        plot_relative_accuracy(table, relative),
        plot_cka_vs_accuracy(table, cka),
        plot_robust_accuracy(table, robust),
    ]
