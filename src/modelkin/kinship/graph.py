"""The kinship graph: one p-value per pair from several methods' calibrated p-values, and an edge
wherever it is below ``alpha``.

Each distance table (:mod:`modelkin.distances.tables`) gives every compared pair a calibrated
p-value per method (the headline metric's ``<metric>_p_value``): the chance that two unrelated
models like these two are as close. Several methods look at the same pair, so their p-values are
strongly dependent (a fine-tuned copy is close in every method at once).

**Combination (default ``holm``).** The Holm-adjusted smallest p-value, ``min(1, k x min p)`` over
the k methods that gave the pair a p-value, is the first step of Holm's procedure (and Bonferroni's
bound): it keeps the false-positive rate of an edge between two unrelated models at most ``alpha``
*whatever the dependence* between the methods, and it needs one method to be sure, not all of them
(Zest sees an extracted copy that the weights cannot). Fisher's ``-2 sum log p`` against
chi-squared with 2k degrees of freedom (``fisher``) is more powerful when methods are independent,
but ours are not: on unrelated pairs that are close in every method at once it turns k moderately
small p-values into a very small one, and its false-positive rate exceeds ``alpha``. It is there to
compare.

A pair no method could judge (every p-value missing: incomparable architectures for the weights,
a setting without enough independent models) gets no edge: an edge is never a guess.

Each pair also gets a **weight** for the trees (:mod:`.tree`): the geometric mean over the methods
of the headline metric's normalised distance (``<metric>_normalised``: the distance over the mean
unrelated distance of the pair's setting, 1 = as far as a typical unrelated pair), which puts
methods with different scales on one. A method's distance of exactly 0 is left out of the mean
(prediction disagreement is 0 for many close relatives); the weight is 0 only where every method
says 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .settings import KinshipError, KinshipSettings


def combine_p_values(p_values: Sequence[float], how: str = "holm") -> float:
    """One p-value from several (NaNs left out; NaN if none is left): ``holm`` is
    ``min(1, k x min p)``, ``fisher`` is the chi-squared tail of ``-2 sum log p`` with 2k df."""
    values = [float(p) for p in p_values if p is not None and np.isfinite(p)]
    if not values:
        return math.nan
    if how == "holm":
        return min(1.0, len(values) * min(values))
    if how == "fisher":
        from scipy.stats import chi2

        statistic = -2.0 * sum(math.log(max(p, 1e-300)) for p in values)
        return float(chi2.sf(statistic, 2 * len(values)))
    raise KinshipError(f"unknown p-value combination {how!r}; use holm or fisher")


def headline_metrics(methods: Sequence[str]) -> dict[str, str]:
    """Each method's headline metric (the column prefix its p-values and verdicts carry)."""
    from ..signatures import get_method

    return {m: get_method(m).headline.metric for m in methods}


def pair_evidence(tables: Mapping[str, object], metrics: Mapping[str, str]):
    """One row per pair of models (``model_a < model_b``) with ``setting`` and, for each method,
    ``<method>_p_value`` and ``<method>_normalised`` of its headline metric, from the methods'
    distance tables (data frames or CSV paths)."""
    import pandas as pd

    merged = None
    for method, source in tables.items():
        frame = source if isinstance(source, pd.DataFrame) else pd.read_csv(source)
        metric = metrics[method]
        needed = ["model_a", "model_b", "setting", f"{metric}_p_value", f"{metric}_normalised"]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise KinshipError(
                f"the {method} distance table lacks {', '.join(missing)}; rebuild it "
                f"(snakemake results/distances/{method}.csv)"
            )
        a, b = frame["model_a"].astype(str), frame["model_b"].astype(str)
        part = pd.DataFrame(
            {
                "model_a": np.where(a < b, a, b),
                "model_b": np.where(a < b, b, a),
                "setting": frame["setting"].astype(str),
                f"{method}_p_value": frame[f"{metric}_p_value"].astype(float),
                f"{method}_normalised": frame[f"{metric}_normalised"].astype(float),
            }
        )
        if merged is None:
            merged = part
        else:
            merged = merged.merge(
                part, on=["model_a", "model_b"], how="outer", suffixes=("", f"_{method}")
            )
            merged["setting"] = merged["setting"].fillna(merged.pop(f"setting_{method}"))
    if merged is None:
        raise KinshipError("no distance tables to build the kinship graph from")
    return merged.sort_values(["model_a", "model_b"]).reset_index(drop=True)


def resolution(d_matrix: np.ndarray) -> np.ndarray:
    """Per method (column), the smallest positive distance of the table (NaN where none): what a
    0 stands for in a pair's weight. A coarse metric (prediction disagreement on a few hundred
    probe images) is 0 for close relatives that still differ; left out of the geometric mean, as
    before, the pairs where it is 0 were averaged over fewer methods than those where it is not,
    and on the default run a victim's soft-label student, with no disagreement at all, weighed
    0.44 to its victim and 0.36 to the victim's fine-tuned copy, with which it disagreed on a
    few images."""
    positive = np.where(np.isfinite(d_matrix) & (d_matrix > 0), d_matrix, np.inf)
    smallest = positive.min(axis=0) if len(positive) else np.full(d_matrix.shape[1], np.inf)
    return np.where(np.isfinite(smallest), smallest, np.nan)


def kinship_graph(pairs, methods: Sequence[str], settings: KinshipSettings):
    """``pairs`` (:func:`pair_evidence`) with ``p_value`` (combined), ``n_methods`` (methods
    with a p-value), ``evidence`` (the methods whose own p-value is below ``alpha``, strongest
    first), ``strongest`` (the method of the smallest p-value), ``weight`` and ``related``
    (``p_value < alpha``)."""
    frame = pairs.copy()
    p_columns = [f"{m}_p_value" for m in methods]
    d_columns = [f"{m}_normalised" for m in methods]
    p_matrix = frame[p_columns].to_numpy(dtype=float)
    d_matrix = frame[d_columns].to_numpy(dtype=float)
    frame["p_value"] = [combine_p_values(row, settings.combine) for row in p_matrix]
    frame["n_methods"] = np.isfinite(p_matrix).sum(axis=1)
    evidence, strongest = [], []
    for row in p_matrix:
        order = [
            i for i in np.argsort(np.where(np.isfinite(row), row, np.inf)) if np.isfinite(row[i])
        ]
        evidence.append(";".join(methods[i] for i in order if row[i] < settings.alpha))
        strongest.append(methods[order[0]] if order else "")
    frame["evidence"] = evidence
    frame["strongest"] = strongest
    judged = np.isfinite(d_matrix)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(judged, np.maximum(d_matrix, resolution(d_matrix)), np.nan))
        counts = np.isfinite(logs).sum(axis=1)
        means = np.where(counts > 0, np.nansum(logs, axis=1) / np.maximum(counts, 1), np.nan)
    # 0 only where every method says 0 (the same checkpoint twice): a coarse metric (prediction
    # disagreement on a few hundred images) is often 0 for close relatives that differ
    identical = judged.any(axis=1) & np.where(judged, d_matrix == 0, True).all(axis=1)
    frame["weight"] = np.where(identical, 0.0, np.exp(means))
    frame["related"] = frame["p_value"] < settings.alpha
    return frame


def families(models: Sequence[str], graph) -> dict[str, str]:
    """Each model's family: the connected component of the kinship graph it lies in, named by its
    first member in sorted order (a model without edges is a family of its own)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(models)
    edges = graph[graph["related"]]
    g.add_edges_from(zip(edges["model_a"], edges["model_b"], strict=True))
    out: dict[str, str] = {}
    for component in nx.connected_components(g):
        name = min(component)
        out.update({m: name for m in component})
    return {m: out[m] for m in sorted(out)}
