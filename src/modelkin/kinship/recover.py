"""Family trees from distance tables: the kinship graph, families, trees and their scores, and the
stage that writes them (``results/lineage/edges.csv``, ``families.csv``, ``scores.csv``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_path
from ..lineage import Lineage, relation
from .direction import ModelStatistics, model_statistics
from .evaluate import TrueLink, score_lineage, true_lineage
from .graph import families, headline_metrics, kinship_graph, pair_evidence
from .pruning import WeightReader, checkpoint_weights
from .settings import KinshipError, KinshipSettings
from .tree import build_trees

log = logging.getLogger(__name__)

EDGE_COLUMNS = [
    "model_a", "model_b", "family", "p_value", "combine", "n_methods", "evidence", "strongest",
    "weight", "in_tree", "parent", "child", "directed", "direction", "confidence",
    "direction_evidence", "true_relation", "true_parent_link",
]  # fmt: skip
FAMILY_COLUMNS = [
    "model", "family", "family_size", "parent", "tree_parent", "root", "true_family",
    "true_parent", "true_kind", "generation",
]  # fmt: skip


@dataclass
class LineageResult:
    """What :func:`recover_lineage` finds: the graph's edges, each model's family and tree
    parent, and (when the true lineage is known) the scores."""

    methods: list[str]
    settings: KinshipSettings
    edges: Any  # data frame, EDGE_COLUMNS then per method its p-value and normalised distance
    families: Any  # data frame, FAMILY_COLUMNS
    scores: list[dict[str, Any]] = field(default_factory=list)

    def score(self, metric: str, scope: str = "all") -> float:
        for row in self.scores:
            if row["scope"] == scope and row["metric"] == metric:
                return float(row["value"])
        raise KeyError((scope, metric))


def recover_lineage(
    pairs,
    methods: Sequence[str],
    *,
    models: Sequence[str] | None = None,
    stats: Mapping[str, ModelStatistics] | None = None,
    lineages: Mapping[str, Lineage] | None = None,
    settings: KinshipSettings | None = None,
    read_weights: WeightReader | None = None,
) -> LineageResult:
    """Families and trees of ``models`` (default: every model of ``pairs``) from ``pairs``
    (:func:`.graph.pair_evidence`: per method ``<method>_p_value`` and ``<method>_normalised``);
    ``stats`` feed the direction cues, ``read_weights`` (:func:`.pruning.checkpoint_weights`) the
    mask cue; with ``lineages``, the result is scored against them."""
    import pandas as pd

    settings = settings or KinshipSettings.from_dict({})
    methods = list(methods)
    if models is None:
        models = sorted(set(pairs["model_a"]) | set(pairs["model_b"]))
    models = sorted(models)
    graph = kinship_graph(pairs, methods, settings)
    family_of = families(models, graph)
    tree_edges, per_model = build_trees(
        models, graph, family_of, stats or {}, settings, read_weights
    )
    truth: dict[str, TrueLink] = true_lineage(lineages) if lineages else {}
    in_tree = {frozenset((e["parent"], e["child"])): e for e in tree_edges}
    rows = []
    for record in graph[graph["related"]].to_dict("records"):
        a, b = record["model_a"], record["model_b"]
        tree = in_tree.get(frozenset((a, b)))
        row = {
            **{c: record[c] for c in ("model_a", "model_b", "p_value", "n_methods", "evidence")},
            "strongest": record["strongest"],
            "weight": record["weight"],
            "family": family_of[a],
            "combine": settings.combine,
            "in_tree": tree is not None,
            "parent": tree["parent"] if tree and tree["directed"] else "",
            "child": tree["child"] if tree and tree["directed"] else "",
            "directed": bool(tree and tree["directed"]),
            "direction": tree["direction"] if tree else "",
            "confidence": tree["confidence"] if tree else float("nan"),
            "direction_evidence": tree["direction_evidence"] if tree else "",
            "true_relation": relation(lineages, a, b) if lineages else "",
            "true_parent_link": bool(truth and (truth[a].parent == b or truth[b].parent == a)),
        }
        for m in methods:
            row[f"{m}_p_value"] = record[f"{m}_p_value"]
            row[f"{m}_normalised"] = record[f"{m}_normalised"]
        rows.append(row)
    method_columns = [f"{m}_{k}" for m in methods for k in ("p_value", "normalised")]
    edges = pd.DataFrame(rows, columns=EDGE_COLUMNS + method_columns)
    sizes = pd.Series(family_of).value_counts()
    members = []
    for m in models:
        link = truth.get(m)
        members.append(
            {
                "model": m,
                "family": family_of[m],
                "family_size": int(sizes[family_of[m]]),
                "parent": per_model[m]["parent"],
                "tree_parent": per_model[m]["tree_parent"],
                "root": per_model[m]["root"],
                "true_family": link.family if link else "",
                "true_parent": (link.parent or "") if link else "",
                "true_kind": (link.kind or "") if link else "",
                "generation": link.generation if link else "",
            }
        )
    frame = pd.DataFrame(members, columns=FAMILY_COLUMNS)
    scores = score_lineage(models, graph, family_of, tree_edges, per_model, truth) if truth else []
    return LineageResult(methods, settings, edges, frame, scores)


def lineage_stage(
    tables: Mapping[str, str | Path],
    checkpoints: Mapping[str, str | Path],
    edges_csv: str | Path,
    families_csv: str | Path,
    scores_csv: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    alpha: float | None = None,
) -> LineageResult:
    """The workflow's family trees: the distance tables of ``tables`` (method -> CSV), the
    checkpoints of the compared models (model id -> file: their lineage, for the scores, and
    their weights, for the direction cues); writes the three tables."""
    import pandas as pd

    from ..checkpoint import read_lineage

    chosen = KinshipSettings.from_dict(settings, alpha=alpha)
    methods = list(tables)
    pairs = pair_evidence(tables, headline_metrics(methods))
    models = sorted(set(pairs["model_a"]) | set(pairs["model_b"]))
    missing = [m for m in models if m not in checkpoints]
    if missing:
        raise KinshipError(
            f"no checkpoint given for {len(missing)} compared models (e.g. {missing[0]}); "
            "pass one per model of the distance tables"
        )
    lineages = {m: read_lineage(checkpoints[m], name=m) for m in models}
    stats = {m: model_statistics(checkpoints[m]) for m in models}
    result = recover_lineage(
        pairs, methods, models=models, stats=stats, lineages=lineages, settings=chosen,
        read_weights=checkpoint_weights(checkpoints),
    )  # fmt: skip
    for frame, path in (
        (result.edges, edges_csv),
        (result.families, families_csv),
        (pd.DataFrame(result.scores, columns=["scope", "metric", "value", "n"]), scores_csv),
    ):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    for row in result.scores:
        if row["scope"] == "all":
            log.info("%s: %.3f (n=%d)", row["metric"], row["value"], row["n"])
    return result
