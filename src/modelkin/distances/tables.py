"""Distance tables of a model collection: every pair, its relation, raw and normalised distances.

A collection is a list of :class:`Member` (model id, signature file, lineage
metadata). For each method the table holds every pair of members that saw the
same probe, with

- the pair's relation: ``same-model``; ``derived-by-<kind>`` when one is the
  other's descendant (kinds of a longer lineage joined by ``+``);
  ``common-ancestor`` (siblings); ``shared-seed`` (zoo lineages that share an
  init or data seed, e.g. the same seed trained by two algorithms);
  ``independent`` otherwise;
- every metric of the method, raw and divided by the reference distance of the
  pair's setting, the reference's mean/std/n and the verdict.

The reference of a setting (data set, each side's architecture and algorithm)
comes from the independent pairs of zoo models (no derived model) of exactly
that setting; a derived model counts as its own architecture trained with its
root zoo model's algorithm.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_json
from ..plotting import pyplot, save_figure
from .pairwise import pairwise_distances
from .reference import ReferenceDistance, Setting, normalise, reference_distance
from .registry import distances_for, get_distance

log = logging.getLogger(__name__)

RELATIONS = ("same-model", "derived-by-<kind>", "common-ancestor", "shared-seed", "independent")


@dataclass
class Member:
    model_id: str
    meta: dict[
        str, Any
    ]  # modelkin.derive.read_lineage_meta: arch, dataset, algorithm, seeds, parent, derivation, root...
    signature: Path | None = None

    @property
    def derived(self) -> bool:
        return bool(self.meta.get("derivation"))

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def profile(self) -> tuple[str, str]:
        """(architecture, algorithm) that picks the reference setting: a derived model's root algorithm."""
        algorithm = self.meta.get("root_algorithm") if self.derived else self.meta.get("algorithm")
        return str(self.meta["arch"]), str(algorithm or self.meta.get("algorithm"))


def lineage_of(members: dict[str, Member], model_id: str) -> list[str]:
    chain, seen = [model_id], {model_id}
    while True:
        member = members.get(chain[-1])
        parent = member.meta.get("parent") if member else None
        if not parent or parent in seen:
            return chain
        chain.append(parent)
        seen.add(parent)


def relation(members: dict[str, Member], a: str, b: str) -> str:
    """How models ``a`` and ``b`` of ``members`` are related (see the module docstring)."""
    ma, mb = members[a], members[b]
    if a == b or (ma.meta.get("sha256") and ma.meta.get("sha256") == mb.meta.get("sha256")):
        return "same-model"
    la, lb = lineage_of(members, a), lineage_of(members, b)
    for child_chain, ancestor in ((la, b), (lb, a)):
        if ancestor in child_chain:
            steps = child_chain[
                : child_chain.index(ancestor)
            ]  # descendant ... up to (not incl.) the ancestor
            kinds = [str(members[s].meta.get("derivation") or "unknown") for s in reversed(steps)]
            return "derived-by-" + "+".join(kinds)
    if set(la) & set(lb):
        return "common-ancestor"
    root_a, root_b = members.get(la[-1]), members.get(lb[-1])
    if root_a is not None and root_b is not None:
        for key in ("init_seed", "data_seed"):
            sa, sb = root_a.meta.get(key), root_b.meta.get(key)
            if sa is not None and sa == sb:
                return "shared-seed"
    return "independent"


def _ancestor(members: dict[str, Member], a: str, b: str) -> str:
    return b if b in lineage_of(members, a) else a


def setting_of(a: Member, b: Member) -> Setting:
    return Setting.of(a.dataset, *a.profile, *b.profile)


@dataclass
class DistanceTable:
    """What :func:`distance_table` computes: rows (one per pair), references, the raw matrices."""

    method: str
    members: list[Member]
    rows: list[dict[str, Any]]
    references: dict[str, dict[str, ReferenceDistance]]  # setting key -> metric -> reference
    matrices: dict[str, dict[str, np.ndarray]] = field(
        default_factory=dict
    )  # dataset -> metric -> (M, M)
    probes: dict[str, str] = field(default_factory=dict)  # dataset -> probe sha256
    signature_params: dict[str, Any] = field(default_factory=dict)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def metric_columns(metric: str) -> list[str]:
    return [
        metric,
        f"{metric}_normalised",
        f"{metric}_reference_mean",
        f"{metric}_reference_std",
        f"{metric}_reference_n",
        f"{metric}_verdict",
    ]


def distance_table(
    method: str,
    members: Sequence[Member],
    *,
    min_reference_pairs: int = 5,
    on_insufficient_reference: str = "error",
    threshold: float = 1.0,
) -> DistanceTable:
    """Compare every pair of ``members`` (with signatures of ``method``) that share a probe."""
    from ..signatures import check_comparable, read_signature

    members = list(members)
    by_id = {m.model_id: m for m in members}
    if len(by_id) != len(members):
        raise ValueError("a model id appears twice among the members")
    metrics = [d.metric for d in distances_for(method)]
    rows: list[dict[str, Any]] = []
    matrices: dict[str, dict[str, np.ndarray]] = {}
    probes: dict[str, str] = {}
    signature_params: dict[str, Any] = {}
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(m.dataset, []).append(m)
    for dataset, group in sorted(groups.items()):
        signatures = [read_signature(m.signature) for m in group]
        for m, sig in zip(group, signatures):
            if sig.method != method:
                raise ValueError(f"{m.signature} is a {sig.method} signature, not {method}")
            check_comparable(signatures[0], sig)
            if (
                sig.attrs.get("checkpoint_sha256")
                and m.meta.get("sha256")
                and sig.attrs["checkpoint_sha256"] != m.meta["sha256"]
            ):
                raise ValueError(
                    f"{m.signature} was computed from another version of {m.model_id}'s checkpoint; rebuild the signature"
                )
        probes[dataset] = signatures[0].probe_sha256
        signature_params = signatures[0].params
        matrix = pairwise_distances(method, signatures, desc=f"{method} distances ({dataset})")
        matrices[dataset] = matrix
        for i, j in itertools.combinations(range(len(group)), 2):
            a, b = group[i], group[j]
            setting = setting_of(a, b)
            rel = relation(by_id, a.model_id, b.model_id)
            row = {
                "model_a": a.model_id,
                "model_b": b.model_id,
                "dataset": dataset,
                "arch_a": a.profile[0],
                "algorithm_a": a.meta.get("algorithm"),
                "arch_b": b.profile[0],
                "algorithm_b": b.meta.get("algorithm"),
                "relation": rel,
                "ancestor": _ancestor(by_id, a.model_id, b.model_id)
                if rel.startswith("derived-by-")
                else "",
                "setting": setting.key,
                "reference_pair": rel == "independent" and not a.derived and not b.derived,
            }
            for metric in metrics:
                row[metric] = float(matrix[metric][i, j])
            rows.append(row)
    references = _references(rows, metrics, min_reference_pairs, on_insufficient_reference)
    for row in rows:
        for metric in metrics:
            ref = references[row["setting"]][metric]
            norm = normalise(
                row[metric],
                ref,
                threshold=threshold,
                higher_is_similar=get_distance(method, metric).higher_is_similar,
            )
            row.update(
                dict(
                    zip(
                        metric_columns(metric)[1:],
                        (norm.normalised, ref.mean, ref.std, ref.n, norm.verdict),
                    )
                )
            )
    return DistanceTable(method, members, rows, references, matrices, probes, signature_params)


def _references(
    rows, metrics, min_pairs, on_insufficient
) -> dict[str, dict[str, ReferenceDistance]]:
    out: dict[str, dict[str, ReferenceDistance]] = {}
    for setting in sorted({r["setting"] for r in rows}):
        eligible = [r for r in rows if r["setting"] == setting and r["reference_pair"]]
        headline = metrics[0]
        refs = {
            headline: reference_distance(
                [r[headline] for r in eligible],
                metric=headline,
                setting=setting,
                min_pairs=min_pairs,
                on_insufficient=on_insufficient,
                pairs=[(r["model_a"], r["model_b"]) for r in eligible],
            )
        }
        for metric in metrics[1:]:
            refs[metric] = _quiet_reference(eligible, metric, setting, min_pairs)
        out[setting] = refs
    return out


def _quiet_reference(eligible, metric, setting, min_pairs) -> ReferenceDistance:
    # Same pairs as the headline metric, whose check already raised or warned once for this setting.
    values = np.asarray([r[metric] for r in eligible], dtype=np.float64)
    n = int(values.size)
    return ReferenceDistance(
        metric=metric,
        setting=setting,
        mean=float(values.mean()) if n else float("nan"),
        std=float(values.std(ddof=1)) if n > 1 else float("nan"),
        n=n,
        min_pairs=int(min_pairs),
        pairs=[(r["model_a"], r["model_b"]) for r in eligible],
        sufficient=n >= min_pairs,
    )


# ---------------------------------------------------------------------------------------------
# Files


def write_distance_table(
    table: DistanceTable,
    csv_path: str | Path,
    reference_path: str | Path | None = None,
    *,
    threshold: float = 1.0,
) -> None:
    """The pair table as CSV, and the references (with the probes they hold for) as JSON."""
    import pandas as pd

    base = [
        "model_a",
        "model_b",
        "dataset",
        "arch_a",
        "algorithm_a",
        "arch_b",
        "algorithm_b",
        "relation",
        "ancestor",
        "setting",
        "reference_pair",
    ]
    columns = base + [c for d in distances_for(table.method) for c in metric_columns(d.metric)]
    frame = pd.DataFrame(table.rows, columns=columns)
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if reference_path is not None:
        write_json(reference_path, reference_document(table, threshold=threshold))


def reference_document(table: DistanceTable, *, threshold: float = 1.0) -> dict[str, Any]:
    """What ``modelkin compare --reference`` reads: per setting and metric, the reference distance."""
    return {
        "kind": "modelkin-reference-distances",
        "method": table.method,
        "signature_params": table.signature_params,
        "probe_sha256": table.probes,
        "threshold": threshold,
        "references": {
            setting: {metric: ref.to_dict() for metric, ref in refs.items()}
            for setting, refs in table.references.items()
        },
    }


def distance_stage(
    method: str,
    model_ids: Sequence[str],
    signatures: Sequence[str | Path],
    checkpoints: Sequence[str | Path],
    output_csv: str | Path,
    output_reference: str | Path,
    *,
    min_reference_pairs: int = 5,
    on_insufficient_reference: str = "error",
    threshold: float = 1.0,
) -> DistanceTable:
    """The workflow's distance table of one method: read lineage metadata, compare, write CSV and JSON."""
    from ..derive import read_lineage_meta

    if not (len(model_ids) == len(signatures) == len(checkpoints)):
        raise ValueError("model_ids, signatures and checkpoints must have the same length")
    members = [
        Member(mid, read_lineage_meta(ckpt), Path(sig))
        for mid, sig, ckpt in zip(model_ids, signatures, checkpoints)
    ]
    for member in members:
        member.meta["name"] = member.model_id
    table = distance_table(
        method,
        members,
        min_reference_pairs=min_reference_pairs,
        on_insufficient_reference=on_insufficient_reference,
        threshold=threshold,
    )
    write_distance_table(table, output_csv, output_reference, threshold=threshold)
    return table


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
    metric = metric or distances_for(method)[0].metric
    datasets = sorted(frame["dataset"].unique()) if len(frame) else []
    fig, axes = plt.subplots(
        1, max(len(datasets), 1), figsize=(9 * max(len(datasets), 1), 8), squeeze=False
    )
    image = None
    for ax, dataset in zip(axes[0], datasets):
        rows = frame[frame["dataset"] == dataset]
        models = sorted(set(rows["model_a"]) | set(rows["model_b"]), key=_display_order)
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
        labels = [_short_label(m) for m in models]
        ax.set_xticks(range(len(models)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(models)), labels, fontsize=6)
        ax.set_title(
            f"{dataset}: {method} {metric} distance / reference (red < 1: closer than independent pairs)",
            fontsize=9,
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="normalised distance")
    if not datasets:
        axes[0][0].text(0.5, 0.5, "no pairs", ha="center", va="center")
    fig.tight_layout()
    return save_figure(fig, output, dpi=110)


def relatedness_groups(frame) -> dict[str, tuple[Any, Any, Any]]:
    """Per derivation kind: (parent-vs-derived pairs, independent pairs involving those parents, the
    independent pairs among them whose models are both zoo models)."""
    import pandas as pd

    relations = frame["relation"].astype(str) if len(frame) else pd.Series([], dtype=str)
    kinds = sorted(
        {r.removeprefix("derived-by-") for r in relations if r.startswith("derived-by-")}
    )
    independent = frame[relations == "independent"]
    zoo_pair = ~independent["model_a"].map(_is_derived_id) & ~independent["model_b"].map(
        _is_derived_id
    )
    groups = {}
    for kind in kinds:
        positives = frame[relations == f"derived-by-{kind}"]
        parents = set(positives["ancestor"].astype(str))
        involved = independent["model_a"].isin(parents) | independent["model_b"].isin(parents)
        groups[kind] = (positives, independent[involved], independent[involved & zoo_pair])
    return groups


def plot_relatedness_roc(
    csv_path: str | Path,
    output: str | Path,
    *,
    method: str | None = None,
    metric: str | None = None,
) -> Path:
    """ROC curves of the headline metric's normalised distance, one per derivation kind: derived copies
    (positives) against independent models of the same parents (negatives)."""
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


# Derived ids are derived/{dataset}/{derivation}/{parent id}/s{seed} (modelkin.derive.derived_model_id);
# parsed here without importing modelkin.derive, which needs torch, so that tables and plots start fast.
_DERIVED_ID = re.compile(
    r"^derived/(?P<dataset>[^/]+)/(?P<derivation>[^/]+)/(?P<parent>.+)/s(?P<seed>\d+)$"
)


def _is_derived_id(model_id: str) -> bool:
    return bool(_DERIVED_ID.match(str(model_id)))


def _display_order(model_id: str):
    # Zoo models first, then derived models grouped by parent and derivation.
    match = _DERIVED_ID.match(model_id)
    if match:
        return (1, match["parent"], match["derivation"], int(match["seed"]))
    return (0, model_id, "", 0)


def _short_label(model_id: str) -> str:
    match = _DERIVED_ID.match(model_id)
    if match:
        return f"{match['derivation']} s{match['seed']} <- {match['parent'].split('/', 1)[-1]}"
    return model_id.split("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# Relatedness: can the distance tell derived copies from independent models?


def relatedness_table(
    csv_path: str | Path, output: str | Path | None = None, *, method: str | None = None
):
    """ROC AUC per derivation kind and metric: parent-vs-derived pairs (positives) against independent pairs
    that involve one of those parents (negatives), as in ModelGiF's IP-protection experiment.

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
    entries = distances_for(method)

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
