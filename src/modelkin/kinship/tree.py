"""Families and their directed trees.

A family is a connected component of the kinship graph (:func:`.graph.families`). Within one,
every edge becomes two arcs, ``u -> v`` costing, as in MoTHer,

    w(u, v) + lambda x mean(w) x (1 - score(u -> v)) / 2

(``w`` the edge's weight, ``score`` the direction score of :mod:`.direction` in [-1, 1],
``lambda`` = ``direction.tree_weight``), and Edmonds' algorithm
(:func:`networkx.minimum_spanning_arborescence`) picks the cheapest tree in which every member
but one (the root) has one parent. Distances place the edges; the direction evidence breaks the
symmetry. An edge of the tree is **directed** only when its score in the tree's direction reaches
``min_confidence``; otherwise it stays undirected (``ambiguous``, or ``conflict`` where the
evidence points against the tree), and its child gets no predicted parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .direction import ModelStatistics, cue_votes, describe_votes, direction_score
from .settings import KinshipSettings


def centralities(members: Sequence[str], weights: Mapping[frozenset, float]) -> dict[str, float]:
    """Each member's mean weight to the other members of its family (finite weights only)."""
    out = {}
    for m in members:
        values = [weights.get(frozenset((m, o)), np.nan) for o in members if o != m]
        finite = [v for v in values if np.isfinite(v)]
        out[m] = float(np.mean(finite)) if finite else np.nan
    return out


def family_tree(
    members: Sequence[str],
    edges: Sequence[tuple[str, str, float]],
    weights: Mapping[frozenset, float],
    stats: Mapping[str, ModelStatistics],
    settings: KinshipSettings,
) -> list[dict[str, Any]]:
    """The tree of one family: one record per tree edge (``parent``/``child`` as the tree points,
    ``directed``, ``direction`` (``decided``, ``ambiguous`` or ``conflict``), ``confidence`` (the
    score in the tree's direction), ``direction_evidence``)."""
    import networkx as nx

    members = sorted(members)
    if len(members) < 2:
        return []
    direction = settings.direction
    central = centralities(members, weights) if "centrality" in direction.cues else {}
    finite = [w for _, _, w in edges if np.isfinite(w)]
    mean_weight = float(np.mean(finite)) if finite else 1.0
    graph = nx.DiGraph()
    graph.add_nodes_from(members)
    arcs: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}
    for a, b, w in edges:
        weight = float(w) if np.isfinite(w) else 2.0 * mean_weight + 1.0
        for u, v in ((a, b), (b, a)):
            votes = cue_votes(u, v, stats, central, direction)
            score = direction_score(votes, direction)
            cost = weight + direction.tree_weight * mean_weight * (1.0 - score) / 2.0
            graph.add_edge(u, v, weight=cost)
            arcs[(u, v)] = (score, votes)
    tree = nx.minimum_spanning_arborescence(graph, attr="weight")
    records = []
    for u, v in sorted(tree.edges()):
        score, votes = arcs[(u, v)]
        if score >= direction.min_confidence:
            state = "decided"
        elif score <= -direction.min_confidence:
            state = "conflict"
        else:
            state = "ambiguous"
        records.append(
            {
                "parent": u,
                "child": v,
                "directed": state == "decided",
                "direction": state,
                "confidence": round(float(score), 6),
                "direction_evidence": describe_votes(votes),
            }
        )
    return records


def build_trees(
    models: Sequence[str],
    graph,
    family_of: Mapping[str, str],
    stats: Mapping[str, ModelStatistics],
    settings: KinshipSettings,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every family's tree: the tree edges (:func:`family_tree`, with ``family``) and per model
    its ``tree_parent`` (the tree's, however sure), ``parent`` (only over a directed edge) and
    ``root`` (the tree's root)."""
    weights = {
        frozenset((a, b)): float(w)
        for a, b, w in zip(graph["model_a"], graph["model_b"], graph["weight"], strict=True)
    }
    related = graph[graph["related"]]
    members_of: dict[str, list[str]] = {}
    for m in models:
        members_of.setdefault(family_of[m], []).append(m)
    tree_edges: list[dict[str, Any]] = []
    per_model: dict[str, dict[str, Any]] = {
        m: {"tree_parent": "", "parent": "", "root": True} for m in models
    }
    for name, members in sorted(members_of.items()):
        inside = related[related["model_a"].isin(members) & related["model_b"].isin(members)]
        edges = list(zip(inside["model_a"], inside["model_b"], inside["weight"], strict=True))
        for record in family_tree(members, edges, weights, stats, settings):
            tree_edges.append({"family": name, **record})
            child = per_model[record["child"]]
            child["tree_parent"] = record["parent"]
            child["parent"] = record["parent"] if record["directed"] else ""
            child["root"] = False
    return tree_edges, per_model
