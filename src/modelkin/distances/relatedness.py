"""Relatedness: can a distance tell derived copies from independent models? ROC AUC per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..ids import is_derived_id
from ..io import atomic_path
from ..signatures import get_method


def relatedness_groups(frame) -> dict[str, tuple[Any, Any, Any]]:
    """Per derivation kind: (parent-vs-derived pairs, independent pairs involving those parents, the
    independent pairs among them whose models are both zoo models)."""
    import pandas as pd

    relations = frame["relation"].astype(str) if len(frame) else pd.Series([], dtype=str)
    kinds = sorted(
        {r.removeprefix("derived-by-") for r in relations if r.startswith("derived-by-")}
    )
    independent = frame[relations == "independent"]
    zoo_pair = ~independent["model_a"].map(is_derived_id) & ~independent["model_b"].map(
        is_derived_id
    )
    groups = {}
    for kind in kinds:
        positives = frame[relations == f"derived-by-{kind}"]
        parents = set(positives["ancestor"].astype(str))
        involved = independent["model_a"].isin(parents) | independent["model_b"].isin(parents)
        groups[kind] = (positives, independent[involved], independent[involved & zoo_pair])
    return groups


def relatedness_table(
    csv_path: str | Path, output: str | Path | None = None, *, method: str | None = None
):
    """ROC AUC per derivation kind and metric: parent-vs-derived pairs
    (positives) against independent pairs that involve one of those
    parents (negatives), as in ModelGiF's IP-protection experiment.

    Two negative sets: every independent model of the parents (``auc``: other zoo seeds and the
    derived models of other parents) and the independently seeded zoo models alone (``auc_vs_zoo``).
    Each on raw distances and on normalised ones (which put pairs of different settings, e.g. a
    student of another architecture, on one scale). Distances become scores with the metric's
    direction, so 1.0 means every derived copy is closer to its parent than every independent model.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    frame = pd.read_csv(csv_path)
    method = method or Path(csv_path).stem
    entries = get_method(method).distances

    def auc(pos, neg, sign):
        pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
        if not (len(pos) and len(neg)):
            return float("nan")
        return float(
            roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], sign * np.r_[pos, neg])
        )

    out_rows = []
    for kind, (positives, negatives, zoo_negatives) in relatedness_groups(frame).items():
        parents = set(positives["ancestor"].astype(str))
        for entry in entries:
            sign = 1.0 if entry.higher_is_similar else -1.0
            raw, norm = entry.metric, f"{entry.metric}_normalised"
            out_rows.append(
                {
                    "derivation": kind,
                    "metric": entry.metric,
                    "n_parents": len(parents),
                    "n_positive": len(positives),
                    "n_negative": len(negatives),
                    "n_negative_zoo": len(zoo_negatives),
                    "auc": auc(
                        positives[raw].to_numpy(float), negatives[raw].to_numpy(float), sign
                    ),
                    "auc_normalised": auc(
                        positives[norm].to_numpy(float), negatives[norm].to_numpy(float), sign
                    ),
                    "auc_vs_zoo": auc(
                        positives[raw].to_numpy(float), zoo_negatives[raw].to_numpy(float), sign
                    ),
                    "auc_vs_zoo_normalised": auc(
                        positives[norm].to_numpy(float), zoo_negatives[norm].to_numpy(float), sign
                    ),
                    "positive_mean_normalised": float(positives[norm].mean())
                    if len(positives)
                    else float("nan"),
                    "positive_max_normalised": float(positives[norm].max())
                    if len(positives)
                    else float("nan"),
                    "negative_mean_normalised": float(negatives[norm].mean())
                    if len(negatives)
                    else float("nan"),
                    "negative_min_normalised": float(negatives[norm].min())
                    if len(negatives)
                    else float("nan"),
                }
            )
    columns = [
        "derivation",
        "metric",
        "n_parents",
        "n_positive",
        "n_negative",
        "n_negative_zoo",
        "auc",
        "auc_normalised",
        "auc_vs_zoo",
        "auc_vs_zoo_normalised",
        "positive_mean_normalised",
        "positive_max_normalised",
        "negative_mean_normalised",
        "negative_min_normalised",
    ]
    table = pd.DataFrame(out_rows, columns=columns)
    if output is not None:
        with atomic_path(output) as tmp:
            table.to_csv(tmp, index=False)
    return table
