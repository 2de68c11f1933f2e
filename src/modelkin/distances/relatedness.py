"""Relatedness: can a distance tell derived copies from independent models? ROC AUC per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..ids import is_derived_id
from ..io import atomic_path
from ..signatures import get_method
from .calibration import NOT_ENOUGH
from .reference import Setting


def relatedness_groups(frame) -> dict[str, tuple[Any, Any, Any]]:
    """Per derivation kind: (parent-vs-derived pairs, independent pairs involving those parents, the
    independent pairs among them whose models are both zoo models).

    A derived model compared on another data set's probe than its own (a transfer to another data
    set, on its root's probe) makes a kind of its own, ``KIND@DATASET`` (DATASET: the model's own
    data set), beside the same kind compared on its own probe."""
    import pandas as pd

    relations = frame["relation"].astype(str) if len(frame) else pd.Series([], dtype=str)
    settings = frame["setting"].astype(str) if "setting" in frame else [""] * len(frame)
    kinds = pd.Series(
        [_kind(r, s) for r, s in zip(relations, settings, strict=True)],
        index=frame.index,
        dtype=object,
    )
    independent = frame[relations == "independent"]
    zoo_pair = ~independent["model_a"].map(is_derived_id) & ~independent["model_b"].map(
        is_derived_id
    )
    groups = {}
    for kind in sorted({k for k in kinds if k}):
        positives = frame[kinds == kind]
        parents = set(positives["ancestor"].astype(str))
        involved = independent["model_a"].isin(parents) | independent["model_b"].isin(parents)
        groups[kind] = (positives, independent[involved], independent[involved & zoo_pair])
    return groups


def _kind(relation: str, setting: str) -> str:
    """A parent-vs-derived row's derivation kind ("" for any other row), with ``@DATASET`` where
    one side is a model of another data set than the probe's."""
    if not relation.startswith("derived-by-"):
        return ""
    kind = relation.removeprefix("derived-by-")
    if not setting:
        return kind
    parsed = Setting.from_key(setting)
    home = parsed.side_a.home or parsed.side_b.home
    return kind if home is None else f"{kind}@{home}"


COLUMNS = (
    "derivation",
    "metric",
    "n_parents",
    "n_positive",
    "n_negative",
    "auc",
    "auc_normalised",
    "auc_calibrated",
    "tpr_at_fpr_1pc",
    "tpr_at_fpr_5pc",
    "alpha",
    "tpr_at_alpha",
    "fpr_at_alpha",
    "n_independent",
    "fpr_held_out_member",
    "fpr_held_out_both",
    "retrained_related",
    "n_retrained",
    "no_verdict",
    "positive_mean_normalised",
    "negative_mean_normalised",
)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC of scores (larger = more related), NaNs left out."""
    from sklearn.metrics import roc_auc_score

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not (len(pos) and len(neg)):
        return float("nan")
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(labels, np.r_[pos, neg]))


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """The largest true-positive rate at a false-positive rate of at most ``fpr`` (scores:
    larger = more related)."""
    from sklearn.metrics import roc_curve

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not (len(pos) and len(neg)):
        return float("nan")
    false, true, _ = roc_curve(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    return float(true[false <= fpr + 1e-12].max())


def _rate(verdicts, value: str = "related") -> float:
    verdicts = [v for v in verdicts if isinstance(v, str)]
    return float(np.mean([v == value for v in verdicts])) if verdicts else float("nan")


def relatedness_table(
    csv_path: str | Path | Any,  # or a distance table's DataFrame
    output: str | Path | None = None,
    *,
    method: str | None = None,
    alpha: float = float("nan"),
    reference: str | Path | None = None,
):
    """Per derivation kind and metric: how well the distance separates parent-vs-derived pairs
    (positives) from the unrelated pairs that involve those parents (negatives), as in ModelGiF's
    IP-protection experiment, and what the calibrated verdicts achieve.

    - ``auc`` (raw distance), ``auc_normalised`` (distance / the setting's unrelated mean, which
      puts different settings on one scale) and ``auc_calibrated`` (by p-value);
    - operating points of the calibrated score: ``tpr_at_fpr_1pc``, ``tpr_at_fpr_5pc``;
    - at the ``alpha`` the verdicts were made at (the config's; recorded in the table):
      ``tpr_at_alpha`` (positives called related), ``fpr_at_alpha``
      (every unrelated pair of the table called related: the realised false-positive rate),
      ``retrained_related`` (models retrained from scratch called related: a negative control),
      ``no_verdict`` (positives without a verdict: not enough independent models);
    - from the ``reference`` file, for the headline metric: ``fpr_held_out_member`` and
      ``fpr_held_out_both``, the rate at which unrelated models held out of the null were called
      related when judged as models outside it, against one of its models (a question's suspect)
      or against each other (``modelkin compare``), over every setting with verdicts
      (:func:`~modelkin.distances.new_models.held_out_check`).
    """
    import pandas as pd

    frame = csv_path if isinstance(csv_path, pd.DataFrame) else pd.read_csv(csv_path)
    method = method or Path(csv_path).stem
    relations = frame["relation"].astype(str) if len(frame) else pd.Series([], dtype=str)
    independent = frame[relations == "independent"]
    retrained = frame[relations.str.startswith("retrained")]
    held_out = _held_out_rates(reference, method) if reference is not None else {}
    out_rows = []
    for kind, (positives, negatives, _) in relatedness_groups(frame).items():
        parents = set(positives["ancestor"].astype(str))
        for entry in get_method(method).distances:
            sign = 1.0 if entry.higher_is_similar else -1.0
            m = entry.metric
            pos = {
                "raw": sign * positives[m].to_numpy(float),
                "normalised": sign * positives[f"{m}_normalised"].to_numpy(float),
                "calibrated": -positives[f"{m}_p_value"].to_numpy(float),
            }
            neg = {
                "raw": sign * negatives[m].to_numpy(float),
                "normalised": sign * negatives[f"{m}_normalised"].to_numpy(float),
                "calibrated": -negatives[f"{m}_p_value"].to_numpy(float),
            }
            verdicts = positives[f"{m}_verdict"]
            out_rows.append(
                {
                    "derivation": kind,
                    "metric": m,
                    "n_parents": len(parents),
                    "n_positive": len(positives),
                    "n_negative": len(negatives),
                    "auc": _auc(pos["raw"], neg["raw"]),
                    "auc_normalised": _auc(pos["normalised"], neg["normalised"]),
                    "auc_calibrated": _auc(pos["calibrated"], neg["calibrated"]),
                    "tpr_at_fpr_1pc": tpr_at_fpr(pos["calibrated"], neg["calibrated"], 0.01),
                    "tpr_at_fpr_5pc": tpr_at_fpr(pos["calibrated"], neg["calibrated"], 0.05),
                    "alpha": alpha,
                    "tpr_at_alpha": _rate(verdicts),
                    "fpr_at_alpha": _rate(independent[f"{m}_verdict"]),
                    "n_independent": len(independent),
                    "fpr_held_out_member": held_out.get(m, {}).get("member", float("nan")),
                    "fpr_held_out_both": held_out.get(m, {}).get("both", float("nan")),
                    "retrained_related": _rate(retrained[f"{m}_verdict"]),
                    "n_retrained": len(retrained),
                    "no_verdict": _rate(verdicts, NOT_ENOUGH),
                    "positive_mean_normalised": _mean(positives[f"{m}_normalised"]),
                    "negative_mean_normalised": _mean(negatives[f"{m}_normalised"]),
                }
            )
    table = pd.DataFrame(out_rows, columns=list(COLUMNS))
    if output is not None:
        with atomic_path(output) as tmp:
            table.to_csv(tmp, index=False)
    return table


def _held_out_rates(reference: str | Path, method: str) -> dict[str, dict[str, float]]:
    """metric -> pool -> false positives / judged over the reference's settings."""
    from .verdicts import load_reference

    file = load_reference(reference, method)
    counts: dict[str, list[int]] = {}
    for setting in file.settings():
        for pool, check in file.held_out(setting).items():
            total = counts.setdefault(pool, [0, 0])
            total[0] += check.false_positives
            total[1] += check.judged
    headline = get_method(method).headline.metric
    return {headline: {pool: fp / n if n else float("nan") for pool, (fp, n) in counts.items()}}


def _mean(values) -> float:
    values = values.to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")
