"""Families and their directed trees.

A family is a connected component of the kinship graph (:func:`.graph.families`). Its tree, with
``w`` the pair weights of :func:`.graph.kinship_graph` and ``score(u -> v)`` the direction score
of :mod:`.direction` (+1: ``u`` is surely ``v``'s parent):

1. **Root**: the member the cues most call a parent, the largest sum over the other members ``v``
   of ``score(u -> v)`` (ties: the member nearer on average to the rest). Its **confidence** is the
   mean of those scores over the members where a cue voted (0 where none did).
2. **Candidate parents** of a member ``v``: the root, and any member ``u`` on the way from the
   root ``r`` to ``v`` and markedly nearer ``v`` than the root is,

       w(r, u) < w(r, v),   w(r, u) + w(u, v) <= (1 + path_tolerance) w(r, v),
       w(u, v) <= (1 - intermediate_margin) w(r, v),   w(r, u) >= intermediate_margin w(r, v),

   unless the cues call ``u`` the child (``score(u -> v) <= -min_confidence``). This is what tells
   a parent from a sibling. Two fine-tuned copies of one parent moved the same way, so they are
   nearer each other than the parent, and a tree on distances alone (MoTHer's, Edmonds' on
   ``w``) hangs one under the other; but neither lies on the way from the parent to the other
   (the two legs add the part of their moves they do not share), while a grandchild lies beyond
   its parent. The last condition keeps out a near copy of the root (a fine-tuned copy, 0.005
   from it) that only the noise of a coarse method made markedly nearer ``v`` than the root is
   (0.33 against 0.40 for a soft-label student on the default run): in a metric ``u`` can be
   nearer ``v`` than the root is by at most ``w(r, u)``, so the margin already demands that much
   of a step. Where the weights of ``r``, ``u`` and ``v`` can be compared (the ``weight_path``
   cue: shared tensors, and the ``weights`` method calls ``r``-``u`` and ``u``-``v`` related, or
   the tables have no ``weights`` method), the way is measured there instead: ``u`` lies on it
   when the angle at ``u`` between ``r - u`` and ``v - u`` is obtuse, cosine at most
   ``path_cosine`` (:mod:`.weight_path`), which tells siblings from a chain where the
   distances' legs cannot.
   For a pruned member the ``mask`` cue (:mod:`.pruning`) then picks, among these
   candidates and its other denser relatives, those whose smallest weights are its zeros: a
   pruned copy, trained on after pruning, is nearer the parent's fine-tuned copies than the
   parent, or nearer the root than its parent, but its zeros are the parent's.
3. **Tree**: Edmonds' algorithm (:func:`networkx.minimum_spanning_arborescence`) over the
   candidate arcs ``u -> v`` at cost ``w(u, v)``. Every arc leads away from the root, so the
   tree gives each member its nearest candidate.

A tree edge is **directed** when its own cues decide it (``score >= min_confidence``:
``decided``), or when they are unsure but the root is decided (root confidence ``>=
min_confidence``: ``rooted``, pointing away from that root). Otherwise it stays undirected:
``conflict`` where its cues point against the tree, ``ambiguous`` where nothing is sure; its
child then gets no predicted parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .direction import ModelStatistics, cue_votes, describe_votes, direction_score
from .pruning import WeightReader, mask_agreement
from .settings import KinshipSettings
from .weight_path import cosine_at


def centralities(members: Sequence[str], weights: Mapping[frozenset, float]) -> dict[str, float]:
    """Each member's mean weight to the other members of its family (finite weights only)."""
    out = {}
    for m in members:
        values = [weights.get(frozenset((m, o)), np.nan) for o in members if o != m]
        finite = [v for v in values if np.isfinite(v)]
        out[m] = float(np.mean(finite)) if finite else np.nan
    return out


class _Family:
    """One family's distances and direction scores, computed once per ordered pair."""

    def __init__(
        self,
        members: Sequence[str],
        related: set[frozenset],
        weights: Mapping[frozenset, float],
        stats: Mapping[str, ModelStatistics],
        shared_weights: Mapping[frozenset, bool] | None,
        settings: KinshipSettings,
        read: WeightReader | None = None,
    ) -> None:
        self.members = sorted(members)
        self.related = related
        self.weights = weights
        self.stats = stats
        self.direction = settings.direction
        # the centrality cue's input, and the root's tie-break whether or not that cue votes
        self.central = centralities(self.members, weights)
        self.shared_weights = shared_weights
        self.read = read
        self._scores: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}

    def w(self, a: str, b: str) -> float:
        return 0.0 if a == b else float(self.weights.get(frozenset((a, b)), np.nan))

    def score(self, u: str, v: str) -> tuple[float, dict[str, float]]:
        """``score(u -> v)`` and the votes behind it."""
        if (u, v) not in self._scores:
            shared = self.weights_related(u, v)
            votes = cue_votes(u, v, self.stats, self.central, self.direction, shared)
            self._scores[(u, v)] = (direction_score(votes, self.direction), votes)
        return self._scores[(u, v)]

    def root(self) -> tuple[str, float]:
        """The root and its confidence."""
        total = {u: sum(self.score(u, v)[0] for v in self.members if v != u) for u in self.members}
        root = min(
            self.members,
            key=lambda u: (-round(total[u], 9), np.nan_to_num(self.central[u], nan=np.inf)),
        )
        scores = [self.score(root, v) for v in self.members if v != root]
        voted = [score for score, votes in scores if votes]
        return root, float(np.mean(voted)) if voted else 0.0

    def relatives(self, v: str) -> list[str]:
        """The members with a kinship edge to ``v``."""
        return [u for u in self.members if frozenset((u, v)) in self.related]

    def weights_related(self, a: str, b: str) -> bool | None:
        """Whether the ``weights`` method calls the two models' weights related; None where the
        tables have no ``weights`` method. A pair it did not judge (no verdict in its setting,
        another data set) counts as not shown related: between a student and its victim's
        transfer to another data set, weight kurtosis has either sign, as between any two
        models that share no weights, and on the default run it made such a transfer the root
        of its family."""
        if self.shared_weights is None:
            return None
        return self.shared_weights.get(frozenset((a, b)), False)

    def weight_path(self, root: str, u: str, v: str) -> bool | None:
        """Whether ``u`` lies on the way from ``root`` to ``v`` in weight space (None: the
        ``weight_path`` cue is off, no weights are read, or the weights cannot say)."""
        if self.read is None or "weight_path" not in self.direction.cues:
            return None
        if self.weights_related(root, u) is False or self.weights_related(u, v) is False:
            return None
        cosine = cosine_at(self.read(u), self.read(root), self.read(v))
        if not np.isfinite(cosine):
            return None
        return cosine <= self.direction.path_cosine

    def candidates(self, root: str, v: str) -> list[str]:
        """The candidate parents of ``v`` by distance and direction (step 2, before the mask)."""
        direction = self.direction
        to_v = self.w(root, v)
        relatives = self.relatives(v)
        out = [root] if root in relatives else []
        intermediates = [u for u in relatives if u != root] if np.isfinite(to_v) else []
        for u in intermediates:
            if self.score(u, v)[0] <= -direction.min_confidence:
                continue
            in_weights = self.weight_path(root, u, v)
            if in_weights is not None:
                if in_weights:
                    out.append(u)
                continue
            to_u, between = self.w(root, u), self.w(u, v)
            if not (np.isfinite(to_u) and np.isfinite(between)) or to_u >= to_v:
                continue
            if to_u + between > (1.0 + direction.path_tolerance) * to_v:
                continue
            if to_u < direction.intermediate_margin * to_v:  # a near copy of the root
                continue
            if between > (1.0 - direction.intermediate_margin) * to_v:
                continue
            out.append(u)
        if not out:  # no relative on the way from the root: the relatives nearer it, or any
            nearer = [u for u in relatives if self.w(root, u) < to_v]
            out = nearer or relatives
        return out

    def unmasked(self, v: str, candidates: list[str], read: WeightReader | None) -> list[str]:
        """The parents the ``mask`` cue picks for a pruned ``v``, among ``candidates`` and every
        other denser relative of ``v`` (``candidates`` unchanged where the cue cannot speak).

        Relatives off the way from the root count too: a pruned copy trained on after pruning
        can end nearer the root than the model it was pruned from (on the default run, a pruned
        student trained on the true labels moved back towards its victim), while its zeros stay
        that model's smallest weights."""
        child = self.stats.get(v, ModelStatistics())
        if read is None or "mask" not in self.direction.cues or not child.sparsity:
            return candidates
        margin = self.direction.sparsity_margin
        minimum = self.direction.min_confidence
        others = [
            u for u in self.relatives(v) if u not in candidates and self.score(u, v)[0] > -minimum
        ]
        agreement = {}
        for u in [*candidates, *others]:
            parent = self.stats.get(u, ModelStatistics())
            if parent.shapes == child.shapes and (parent.sparsity or 0.0) < child.sparsity - margin:
                agreement[u] = mask_agreement(read(u), read(v))
        finite = [a for a in agreement.values() if np.isfinite(a)]
        if not finite:
            return candidates
        best = max(finite)
        return [u for u, a in agreement.items() if a >= best - self.direction.mask_tolerance]


def family_tree(
    members: Sequence[str],
    edges: Sequence[tuple[str, str]],
    weights: Mapping[frozenset, float],
    stats: Mapping[str, ModelStatistics],
    settings: KinshipSettings,
    *,
    shared_weights: Mapping[frozenset, bool] | None = None,
    read_weights: WeightReader | None = None,
) -> list[dict[str, Any]]:
    """The tree of one family (module docstring) over its kinship ``edges`` (pairs related at
    ``alpha``; ``weights`` may hold every pair): one record per tree edge (``parent``/``child``
    as the tree points, ``directed``, ``direction`` (``decided``, ``rooted``, ``ambiguous`` or
    ``conflict``), ``confidence`` (the edge's own score, or the root's for a rooted edge),
    ``direction_evidence``). ``shared_weights`` says, per pair the ``weights`` method judged,
    whether it calls their weights related (kurtosis and the weight path only speak then; a pair
    it did not judge counts as not related; None: no ``weights`` method, and they speak wherever
    shapes match); ``read_weights`` gives a model's weight tensors (the mask and weight-path
    cues)."""
    import networkx as nx

    related = {frozenset(e) for e in edges}
    family = _Family(members, related, weights, stats, shared_weights, settings, read_weights)
    if len(family.members) < 2:
        return []
    root, root_confidence = family.root()
    graph = nx.DiGraph()
    graph.add_nodes_from(family.members)
    for v in family.members:
        if v == root:
            continue
        for u in family.unmasked(v, family.candidates(root, v), read_weights):
            cost = family.w(u, v)
            graph.add_edge(u, v, weight=cost if np.isfinite(cost) else np.inf)
    try:
        tree = nx.minimum_spanning_arborescence(graph, attr="weight")
    except nx.NetworkXException:  # a member the candidate arcs do not reach: every edge, both ways
        for a, b in map(tuple, related):
            graph.add_edge(a, b, weight=family.w(a, b))
            graph.add_edge(b, a, weight=family.w(a, b))
        tree = nx.minimum_spanning_arborescence(graph, attr="weight")
    minimum = settings.direction.min_confidence
    records = []
    for u, v in sorted(tree.edges()):
        score, votes = family.score(u, v)
        evidence = describe_votes(votes)
        if score >= minimum:
            state, confidence = "decided", score
        elif score <= -minimum:
            state, confidence = "conflict", score
        elif root_confidence >= minimum:
            state, confidence = "rooted", root_confidence
            evidence = ";".join(filter(None, (evidence, f"root:{root_confidence:+.2f}")))
        else:
            state, confidence = "ambiguous", score
        records.append(
            {
                "parent": u,
                "child": v,
                "directed": state in ("decided", "rooted"),
                "direction": state,
                "confidence": round(float(confidence), 6),
                "direction_evidence": evidence,
            }
        )
    return records


def weights_related(graph, alpha: float) -> dict[frozenset, bool] | None:
    """Per pair judged by the ``weights`` method, whether it calls their weights related at
    ``alpha`` (None when the graph has no ``weights`` column: then kurtosis and the weight path
    speak wherever shapes match)."""
    if "weights_p_value" not in graph:
        return None
    return {
        frozenset((a, b)): bool(p < alpha)
        for a, b, p in zip(
            graph["model_a"], graph["model_b"], graph["weights_p_value"], strict=True
        )
        if np.isfinite(p)
    }


def build_trees(
    models: Sequence[str],
    graph,
    family_of: Mapping[str, str],
    stats: Mapping[str, ModelStatistics],
    settings: KinshipSettings,
    read_weights: WeightReader | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every family's tree: the tree edges (:func:`family_tree`, with ``family``) and per model
    its ``tree_parent`` (the tree's, however sure), ``parent`` (only over a directed edge) and
    ``root`` (the tree's root)."""
    weights = {
        frozenset((a, b)): float(w)
        for a, b, w in zip(graph["model_a"], graph["model_b"], graph["weight"], strict=True)
    }
    shared = weights_related(graph, settings.alpha)
    members_of: dict[str, list[str]] = {}
    for m in models:
        members_of.setdefault(family_of[m], []).append(m)
    tree_edges: list[dict[str, Any]] = []
    per_model: dict[str, dict[str, Any]] = {
        m: {"tree_parent": "", "parent": "", "root": True} for m in models
    }
    related = graph[graph["related"]]
    for name, members in sorted(members_of.items()):
        inside = related[related["model_a"].isin(members) & related["model_b"].isin(members)]
        edges = list(zip(inside["model_a"], inside["model_b"], strict=True))
        records = family_tree(
            members, edges, weights, stats, settings,
            shared_weights=shared, read_weights=read_weights,
        )  # fmt: skip
        for record in records:
            tree_edges.append({"family": name, **record})
            child = per_model[record["child"]]
            child["tree_parent"] = record["parent"]
            child["parent"] = record["parent"] if record["directed"] else ""
            child["root"] = False
    return tree_edges, per_model
