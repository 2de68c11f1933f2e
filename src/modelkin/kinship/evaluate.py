"""How well the recovered families and trees match the true lineage.

Every model the workflow makes records its parent and derivation kind (:mod:`modelkin.lineage`).
The **true tree** links a derived model to its parent when its kind inherits from the parent
(:attr:`modelkin.derive.kinds.DerivationKind.inherits`); a model retrained from scratch on its
parent's data learnt nothing from the parent itself, so it starts a family of its own (a negative
control, as in the distance tables). True families are the true trees' components.

Scores (long format: ``scope``, ``metric``, ``value``, ``n`` = the denominator), for ``all``
models, per derivation kind of the child (``kind:<kind>``) and per generation
(``generation:<g>``, 1 = a child of a zoo model):

- ``ari``: adjusted Rand index of the families against the true families (``all`` only);
- ``edge_precision``/``edge_recall``: of the kinship graph's edges, the share that join two
  models of one true family / of the pairs within true families, the share with an edge;
  ``false_edges``: edges between different true families;
- ``tree_edge_precision``/``tree_edge_recall``: the trees' edges against the true
  parent-child links (direction ignored);
- ``parent_accuracy``: of the derived models whose true parent is compared, the share whose
  predicted parent (over a directed tree edge) is the true one; an undirected edge counts as
  wrong here; ``tree_parent_accuracy``: the same for the tree's parent however sure;
- ``direction_decided``: of the true links found by the trees, the share that are directed;
  ``direction_accuracy``: of those directed, the share that point from parent to child.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lineage import Lineage


@dataclass(frozen=True)
class TrueLink:
    """One model's place in the true lineage."""

    parent: str | None  # the inheriting parent, if it is among the models
    family: str
    kind: str | None
    generation: int


def true_lineage(lineages: Mapping[str, Lineage]) -> dict[str, TrueLink]:
    """Each model's true parent (if it inherits from one that is among ``lineages``), family
    (its first inheriting ancestor), derivation kind and generation."""
    from ..derive.kinds import KINDS

    def parent_of(model: str) -> str | None:
        record = lineages[model]
        if not record.parent or record.parent not in lineages:
            return None
        kind = KINDS.get(str(record.derivation))
        return record.parent if kind is None or kind.inherits else None

    out = {}
    for model, record in lineages.items():
        chain, seen = [model], {model}
        while (up := parent_of(chain[-1])) is not None and up not in seen:
            chain.append(up)
            seen.add(up)
        out[model] = TrueLink(
            parent_of(model),
            chain[-1],
            str(record.derivation) if record.derivation else None,
            len(chain) - 1,
        )
    return out


def score_lineage(
    models: Sequence[str],
    graph,
    family_of: Mapping[str, str],
    tree_edges: Sequence[Mapping[str, Any]],
    per_model: Mapping[str, Mapping[str, Any]],
    truth: Mapping[str, TrueLink],
) -> list[dict[str, Any]]:
    """The scores of the module docstring, one row per scope and metric."""
    from sklearn.metrics import adjusted_rand_score

    rows: list[dict[str, Any]] = []

    def add(scope: str, metric: str, hits: float, n: int) -> None:
        rows.append({"scope": scope, "metric": metric, "value": hits / n if n else np.nan, "n": n})

    models = sorted(models)
    rows.append(
        {
            "scope": "all",
            "metric": "ari",
            "value": float(
                adjusted_rand_score(
                    [truth[m].family for m in models], [family_of[m] for m in models]
                )
            ),
            "n": len(models),
        }
    )
    same = [
        truth[a].family == truth[b].family
        for a, b in zip(graph["model_a"], graph["model_b"], strict=True)
    ]
    related = graph["related"].to_numpy(dtype=bool)
    same_arr = np.asarray(same, dtype=bool)
    add("all", "edge_precision", float((related & same_arr).sum()), int(related.sum()))
    add("all", "edge_recall", float((related & same_arr).sum()), int(same_arr.sum()))
    rows.append(
        {
            "scope": "all",
            "metric": "false_edges",
            "value": float((related & ~same_arr).sum()),
            "n": int(related.sum()),
        }
    )
    true_links = {frozenset((m, t.parent)) for m, t in truth.items() if t.parent and m in family_of}
    found = {frozenset((e["parent"], e["child"])) for e in tree_edges}
    add("all", "tree_edge_precision", len(found & true_links), len(found))
    add("all", "tree_edge_recall", len(found & true_links), len(true_links))
    edge_of = {frozenset((e["parent"], e["child"])): e for e in tree_edges}
    scopes: dict[str, list[str]] = {"all": []}
    for m in models:
        link = truth[m]
        if link.parent is None:
            continue
        scopes["all"].append(m)
        scopes.setdefault(f"kind:{link.kind}", []).append(m)
        scopes.setdefault(f"generation:{link.generation}", []).append(m)
    for scope, children in scopes.items():
        parent_hits = sum(per_model[c]["parent"] == truth[c].parent for c in children)
        tree_hits = sum(per_model[c]["tree_parent"] == truth[c].parent for c in children)
        add(scope, "parent_accuracy", parent_hits, len(children))
        add(scope, "tree_parent_accuracy", tree_hits, len(children))
        in_tree = [edge_of[frozenset((c, truth[c].parent))] for c in children
                   if frozenset((c, truth[c].parent)) in edge_of]  # fmt: skip
        directed = [e for e in in_tree if e["directed"]]
        add(scope, "link_recall", len(in_tree), len(children))
        add(scope, "direction_decided", len(directed), len(in_tree))
        right = 0
        for c in children:
            e = edge_of.get(frozenset((c, truth[c].parent)))
            if e is not None and e["directed"] and e["child"] == c:
                right += 1
        add(scope, "direction_accuracy", right, len(directed))
    return rows
