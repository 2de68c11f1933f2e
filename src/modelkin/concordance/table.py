"""The concordance tables: every pair's verdicts side by side, and how far the methods agree.

:func:`join_verdicts` puts each pair record next to the distance tables' rows of the same pair
and orients every verdict (:mod:`.methods`). Rank correlations (Spearman's rho and Kendall's
tau-b, with their p-values) are computed between every two methods over all pairs and within each
group of pairs (``derived``: one model descends from the other; ``siblings``: a common ancestor;
``independent``; :func:`modelkin.lineage.group_of`), and the mean of each oriented verdict per
relation. Rank correlations are blind to any strictly increasing transformation, so the
orientation only sets their sign and the scale of the means and plots. Torch-free.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingFileError
from ..io import atomic_path, read_json
from ..lineage import Lineage, group_of, relation
from ..progress import progress
from .defaults import schema_default
from .methods import STITCHING_DIRECTIONS, STITCHING_VARIANTS, ConcordanceError, method_info
from .pairs import RECORD_KIND, pair_files
from .plan import pair_key

log = logging.getLogger(__name__)

# Groups of pairs in table and plot order; any other relation is a group of its own, after these.
GROUPS = ("derived", "siblings", "retrained", "independent", "shared-seed", "same-model")
CORRELATION_COLUMNS = [
    "scope",
    "method_a",
    "method_b",
    "n_pairs",
    "spearman",
    "spearman_p",
    "kendall",
    "kendall_p",
]


def _unordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _group_rank(group: str) -> int:
    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def ordered_groups(groups) -> list[str]:
    """The distinct ``groups`` in :data:`GROUPS` order, any others after them, sorted."""
    present = list(dict.fromkeys(groups))
    return [g for g in GROUPS if g in present] + sorted(g for g in present if g not in GROUPS)


def pair_relations(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """Each record's relation from the lineage metadata of every model of the records
    (:func:`modelkin.lineage.relation`, the distance tables' definition)."""
    members: dict[str, Lineage] = {}
    for r in records:
        for side, model in (("a", r["model_a"]), ("b", r["model_b"])):
            members.setdefault(model, Lineage.from_metadata(r["lineage"][side], name=model))
    return {
        _unordered(r["model_a"], r["model_b"]): relation(members, r["model_a"], r["model_b"])
        for r in records
    }


def _distance_lookups(infos, distance_tables: Mapping[str, Any]):
    """method -> {unordered pair: row} of each distance method's table, its columns checked."""
    lookups: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
    for info in infos:
        if info.kind != "distance":
            continue
        build = f"`snakemake results/distances/{info.name}.csv`"
        if info.name not in distance_tables:
            raise ConcordanceError(
                f"method {info.name} needs results/distances/{info.name}.csv; build it with "
                f"{build} (distances.methods)"
            )
        frame = distance_tables[info.name]
        column = f"{info.metric}_normalised"
        missing = [c for c in ("model_a", "model_b", "relation", column) if c not in frame.columns]
        if missing:
            raise ConcordanceError(
                f"the {info.name} distance table lacks column(s) {', '.join(missing)}; it is not "
                f"a distance table of this modelkin version: rebuild it with {build}"
            )
        lookups[info.name] = {
            _unordered(r["model_a"], r["model_b"]): r for r in frame.to_dict("records")
        }
    return lookups


def join_verdicts(
    records: Sequence[Mapping[str, Any]],
    distance_tables: Mapping[str, Any],
    methods: Sequence[str],
    *,
    distance_metric: str | None = None,
):
    """One row per pair of ``records``: model ids, relation, group, each method's raw value and
    its oriented verdict (column named after the method). ``distance_tables``: method ->
    DataFrame of its distance table; ``distance_metric`` defaults to the schema's."""
    import pandas as pd

    if distance_metric is None:
        distance_metric = schema_default("distance_metric")
    if not records:
        raise ConcordanceError("no pair records to join; the concordance_pairs jobs produce them")
    infos = [method_info(m, distance_metric=distance_metric) for m in methods]
    relations = pair_relations(records)
    lookups = _distance_lookups(infos, distance_tables)

    rows = []
    disagreements: dict[str, list[str]] = {}
    for rec in records:
        a, b = rec["model_a"], rec["model_b"]
        key = _unordered(a, b)
        rel = relations[key]
        row: dict[str, Any] = {
            "model_a": a,
            "model_b": b,
            "relation": rel,
            "group": group_of(rel),
            "layer_a": rec.get("layer_a"),
            "layer_b": rec.get("layer_b"),
        }
        for info in infos:
            if info.kind == "distance":
                found = lookups[info.name].get(key)
                if found is None:
                    raise ConcordanceError(
                        f"the pair {a} ~ {b} is not in results/distances/{info.name}.csv; the "
                        "table was built for other models: rebuild it (`snakemake "
                        f"results/distances/{info.name}.csv`) or change concordance.models"
                    )
                if found["relation"] != rel:
                    disagreements.setdefault(info.name, []).append(
                        f"{a} ~ {b}: {found['relation']} vs {rel}"
                    )
                row[info.raw_column] = float(found[f"{info.metric}_normalised"])
                row[f"{info.name}_{info.metric}"] = float(found[str(info.metric)])
            elif info.kind == "measure":
                entry = (rec.get("measures") or {}).get(info.name)
                if entry is None:
                    raise ConcordanceError(
                        f"the pair record of {a} ~ {b} has no {info.name} value (measures: "
                        f"{', '.join(rec.get('measures') or {}) or 'none'}); re-run its "
                        "concordance_pairs job"
                    )
                row[info.raw_column] = np.nan if entry["value"] is None else float(entry["value"])
            else:
                stitching = rec.get("stitching")
                if not stitching:
                    raise ConcordanceError(
                        f"the pair record of {a} ~ {b} has no stitching results; re-run its "
                        "concordance_pairs job"
                    )
                variant = STITCHING_VARIANTS[info.name]
                value = stitching.get(info.name)
                row[info.raw_column] = np.nan if value is None else float(value)
                for d in STITCHING_DIRECTIONS:
                    value = stitching["directions"][d]["relative_accuracy"].get(variant)
                    row[f"{info.name}_{d}"] = np.nan if value is None else float(value)
            row[info.name] = float(info.orient([row[info.raw_column]])[0])
        rows.append(row)
    for method, found in disagreements.items():
        log.warning(
            "%d pair(s) have another relation in the %s table than the checkpoints' lineage "
            "gives (a stale table? rebuild it): %s",
            len(found),
            method,
            "; ".join(found[:3]),
        )
    return pd.DataFrame(rows)


def check_frame(frame, methods: Sequence[str]) -> None:
    """A :class:`ConcordanceError` naming the fix unless ``frame`` has a column per method."""
    missing = [m for m in methods if m not in frame.columns]
    if missing:
        raise ConcordanceError(
            f"the concordance table has no column(s) {', '.join(missing)} (columns: "
            f"{', '.join(map(str, frame.columns))}); build it with join_verdicts / "
            "`snakemake results/concordance/pairs.csv` including those methods"
        )


def rank_correlations(
    frame, methods: Sequence[str], *, by_group: bool = True, min_pairs: int | None = None
):
    """Spearman's rho and Kendall's tau-b (with p-values) between every two methods' oriented
    verdicts, over all pairs (``scope`` = ``all``) and, with ``by_group``, within each group with
    >= ``min_pairs`` pairs (default: the schema's ``min_group_pairs``). Pairs where either value is
    NaN are left out (``n_pairs`` counts the rest); a constant column gives NaN (no ranking to
    correlate)."""
    import pandas as pd
    from scipy import stats

    if min_pairs is None:
        min_pairs = schema_default("min_group_pairs")
    check_frame(frame, methods)
    if len(methods) < 2:
        raise ConcordanceError(f"rank correlations need at least two methods, got {list(methods)}")
    scopes = [("all", frame)]
    if by_group and "group" in frame.columns:
        scopes += [
            (f"group:{g}", frame[frame["group"] == g]) for g in ordered_groups(frame["group"])
        ]
    rows = []
    for scope, part in scopes:
        if scope != "all" and len(part) < min_pairs:
            continue
        for a, b in itertools.combinations(methods, 2):
            x, y = part[a].to_numpy(np.float64), part[b].to_numpy(np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
            n = int(ok.sum())
            rho = rho_p = tau = tau_p = np.nan
            if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                rho, rho_p = (float(v) for v in stats.spearmanr(x, y))
                tau, tau_p = (float(v) for v in stats.kendalltau(x, y))
            values = (scope, a, b, n, rho, rho_p, tau, tau_p)
            rows.append(dict(zip(CORRELATION_COLUMNS, values, strict=True)))
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def relation_means(frame, methods: Sequence[str]):
    """Mean, standard deviation and count of each oriented verdict per group and per relation."""
    import pandas as pd

    check_frame(frame, methods)

    def relation_order(relation_name: str):
        return _group_rank(group_of(relation_name)), relation_name

    rows = []
    for level in ("group", "relation"):
        if level == "group":
            values = ordered_groups(frame[level])
        else:
            values = sorted(frame[level].unique(), key=relation_order)
        for value in values:
            part = frame[frame[level] == value]
            row: dict[str, Any] = {"level": level, "value": value, "n_pairs": len(part)}
            for m in methods:
                col = part[m].to_numpy(np.float64)
                col = col[np.isfinite(col)]
                row[f"{m}_mean"] = float(col.mean()) if col.size else np.nan
                row[f"{m}_std"] = float(col.std(ddof=1)) if col.size > 1 else np.nan
            rows.append(row)
    columns = ["level", "value", "n_pairs"] + [f"{m}_{s}" for m in methods for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=columns)


def read_pair_records(
    paths: Sequence[str | Path], expected: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Pair records from files and from the folders of
    :func:`~modelkin.concordance.pairs.concordance_pairs`; with ``expected`` (pair keys), exactly
    those pairs must be there."""
    files = [
        p for path in paths for p in (pair_files([path]) if Path(path).is_dir() else [Path(path)])
    ]
    records = []
    for path in progress(files, desc="pair records"):
        record = read_json(path)
        if record.get("kind") != RECORD_KIND:
            raise ConcordanceError(
                f"{path} is not a concordance pair record (kind {record.get('kind')!r})"
            )
        records.append(record)
    if expected is not None:
        found = [pair_key(r["model_a"], r["model_b"]) for r in records]
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        duplicates = sorted({k for k in found if found.count(k) > 1})
        if missing or extra or duplicates:
            raise ConcordanceError(
                f"the pair records do not match the planned pairs (missing {missing[:3]}, "
                f"unplanned {extra[:3]}, repeated {duplicates[:3]}); re-run the concordance_pairs "
                "jobs (snakemake --forcerun concordance_pairs)"
            )
    return records


def concordance_table(
    pair_records: Sequence[str | Path],
    distance_files: Mapping[str, str | Path],
    methods: Sequence[str],
    *,
    pairs_csv: str | Path,
    correlations_csv: str | Path,
    relations_csv: str | Path,
    distance_metric: str | None = None,
    min_group_pairs: int | None = None,
    expected_pairs: Sequence[str] | None = None,
):
    """The stage's tables: pairs.csv (every pair's raw and oriented verdicts), correlations.csv
    (rank correlations between methods, overall and per group), relations.csv (mean verdicts per
    relation). ``pair_records``: record files or folders of them; ``expected_pairs``: the pair
    keys they must cover; ``distance_metric`` and ``min_group_pairs`` default to the schema's."""
    import pandas as pd

    records = read_pair_records(pair_records, expected_pairs)
    tables = {}
    for method, path in distance_files.items():
        if not Path(path).exists():
            raise MissingFileError(f"{path} does not exist; build it with `snakemake {path}`")
        tables[method] = pd.read_csv(path)
    frame = join_verdicts(records, tables, methods, distance_metric=distance_metric)
    order = frame["group"].map(_group_rank)
    frame = (
        frame.assign(_order=order)
        .sort_values(["_order", "relation", "model_a", "model_b"])
        .drop(columns="_order")
    )
    correlations = rank_correlations(frame, methods, min_pairs=min_group_pairs)
    means = relation_means(frame, methods)
    for table, path in (
        (frame, pairs_csv),
        (correlations, correlations_csv),
        (means, relations_csv),
    ):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    overall = correlations[correlations["scope"] == "all"]
    log.info(
        "concordance of %d pairs, %d methods; Spearman: %s",
        len(frame),
        len(methods),
        "; ".join(f"{r.method_a}~{r.method_b} {r.spearman:.2f}" for r in overall.itertuples()),
    )
    return frame, correlations, means
