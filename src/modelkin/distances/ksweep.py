"""How many reference points does a selected probe need? Relatedness against K.

A method that selects its probe (ModelGiF) keeps its points in rank order, best first, so the
first K points of a signature are its signature on the best-K probe. For each K the distance
table and relatedness are recomputed on those prefixes, so the table shows what each kind's AUC
and calibrated true-positive rate would be with K points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import atomic_path
from ..plotting import pyplot, save_figure
from ..signatures import get_method
from .relatedness import relatedness_table
from .tables import Member, distance_table

COLUMNS = ("k", "derivation", "metric", "auc", "auc_calibrated", "tpr_at_alpha", "fpr_at_alpha")


def k_sweep(
    method: str,
    model_ids: Sequence[str],
    signatures: Sequence[str | Path],
    ks: Sequence[int],
    output_csv: str | Path,
    output_png: str | Path | None = None,
    *,
    calibration: Mapping[str, Any] | None = None,
):
    """Relatedness of ``method``'s headline distance on the first K points, for each K."""
    import pandas as pd

    entry = get_method(method)
    if not entry.selects_probe:
        raise InputError(
            f"{method} does not rank its probe's points; a K sweep needs one that does"
        )
    members = [Member.from_signature(m, s) for m, s in zip(model_ids, signatures, strict=True)]
    full = {m.model_id: m.read() for m in members}
    n_points = min(sig.data.shape[0] for sig in full.values())
    alpha = float((calibration or {}).get("alpha", 0.01))
    headline = entry.headline.metric
    rows = []
    for k in sorted({int(k) for k in ks if 0 < int(k) <= n_points}):
        truncated = [
            Member(m.model_id, m.lineage, replace(full[m.model_id], data=full[m.model_id].data[:k]))
            for m in members
        ]
        table = distance_table(method, truncated, calibration=calibration)
        relatedness = relatedness_table(table.frame(), method=method, alpha=alpha)
        for r in relatedness[relatedness["metric"] == headline].itertuples():
            rows.append({"k": k, **{c: getattr(r, c) for c in COLUMNS[1:]}})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    with atomic_path(output_csv) as tmp_csv:
        frame.to_csv(tmp_csv, index=False)
    if output_png is not None:
        plot_k_sweep(frame, output_png, method=method)
    return frame


def plot_k_sweep(frame, output: str | Path, *, method: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, rows in frame.groupby("derivation"):
        axes[0].plot(rows["k"], rows["auc"], marker="o", label=kind)
        axes[1].plot(rows["k"], rows["tpr_at_alpha"], marker="o", label=kind)
    for ax, label in zip(
        axes, ("ROC AUC (raw distance)", "share called related at alpha"), strict=True
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("reference points K (the best K of the selected probe)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{method}: relatedness against the number of reference points", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)
