"""Distance tables of a model collection: every pair, its relation, raw and normalised distances.

A collection is a list of :class:`Member` (model id, lineage, signature). For each method the
table holds every pair of members that saw the same probe, with

- the pair's relation (:func:`modelkin.lineage.relation`);
- every distance of the method, raw and divided by the reference distance of the pair's
  setting, the reference's mean/std/n and the verdict.

The reference of a setting (data set, each side's architecture and algorithm) comes from the
independent pairs of root models (no derived model) of exactly that setting; a derived model
counts as its own architecture trained with its root model's algorithm.

Everything a table needs is in the signature files (:mod:`modelkin.signatures.store` records
each model's lineage), so the stage opens no checkpoint.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_path, write_json
from ..lineage import Lineage, ancestor_of_pair, relation
from ..signatures import Signature, check_comparable, get_method, read_signature
from .reference import ReferenceDistance, Setting, normalise, reference_distance

log = logging.getLogger(__name__)

BASE_COLUMNS = (
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
)


@dataclass
class Member:
    """One model of a table: its id, lineage and signature (a file, or one already read)."""

    model_id: str
    lineage: Lineage
    signature: Signature | Path | None = None

    @classmethod
    def from_signature(cls, model_id: str, signature: Signature | str | Path) -> Member:
        sig = signature if isinstance(signature, Signature) else read_signature(signature)
        lineage = sig.lineage
        return cls(model_id, Lineage.from_metadata(lineage.to_dict(), name=model_id), sig)

    @property
    def derived(self) -> bool:
        return self.lineage.derived

    @property
    def dataset(self) -> str:
        return self.lineage.dataset

    @property
    def profile(self) -> tuple[str, str]:
        return self.lineage.profile

    def read(self, lazy: bool = False) -> Signature:
        """The signature (``lazy``: its array left on disk, read slice by slice)."""
        if isinstance(self.signature, Signature):
            return self.signature
        if self.signature is None:
            raise InputError(f"{self.model_id} has no signature")
        return read_signature(self.signature, lazy=lazy)


def setting_of(a: Member, b: Member) -> Setting:
    return Setting.of(a.dataset, *a.profile, *b.profile)


@dataclass
class DistanceTable:
    """What :func:`distance_table` computes: rows (one per pair), references, the raw matrices."""

    method: str
    members: list[Member]
    rows: list[dict[str, Any]]
    references: dict[str, dict[str, ReferenceDistance]]  # setting key -> metric -> reference
    matrices: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
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
    memory_budget_mb: float | None = None,
) -> DistanceTable:
    """Compare every pair of ``members`` (with signatures of ``method``) that share a probe.

    A method whose signatures are large (``streams_to_disk``: ModelGiF) compares them block by
    block from their files, within ``memory_budget_mb`` (default: the configuration's).
    """
    from ..config import memory_budget_bytes

    entry = get_method(method)
    members = list(members)
    lineages = {m.model_id: m.lineage for m in members}
    if len(lineages) != len(members):
        raise InputError("a model id appears twice among the members")
    metrics = [d.metric for d in entry.distances]
    rows: list[dict[str, Any]] = []
    matrices: dict[str, dict[str, np.ndarray]] = {}
    probes: dict[str, str] = {}
    signature_params: dict[str, Any] = {}
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(m.dataset, []).append(m)
    for dataset, group in sorted(groups.items()):
        signatures = [m.read(lazy=entry.streams_to_disk) for m in group]
        for sig in signatures:
            if sig.method != method:
                raise InputError(f"{sig.path} is a {sig.method} signature, not {method}")
            check_comparable(signatures[0], sig)
        probes[dataset] = signatures[0].probe_sha256
        signature_params = signatures[0].params
        matrix = entry.pairwise(
            [s.data for s in signatures], memory_bytes=memory_budget_bytes(memory_budget_mb)
        )
        matrices[dataset] = matrix
        for i, j in itertools.combinations(range(len(group)), 2):
            a, b = group[i], group[j]
            rel = relation(lineages, a.model_id, b.model_id)
            derived = rel.startswith("derived-by-")
            row: dict[str, Any] = {
                "model_a": a.model_id,
                "model_b": b.model_id,
                "dataset": dataset,
                "arch_a": a.profile[0],
                "algorithm_a": a.lineage.algorithm,
                "arch_b": b.profile[0],
                "algorithm_b": b.lineage.algorithm,
                "relation": rel,
                "ancestor": ancestor_of_pair(lineages, a.model_id, b.model_id) if derived else "",
                "setting": setting_of(a, b).key,
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
                higher_is_similar=entry.distance(metric).higher_is_similar,
            )
            values = (norm.normalised, ref.mean, ref.std, ref.n, norm.verdict)
            row.update(zip(metric_columns(metric)[1:], values, strict=True))
    return DistanceTable(method, members, rows, references, matrices, probes, signature_params)


def _references(
    rows, metrics, min_pairs, on_insufficient
) -> dict[str, dict[str, ReferenceDistance]]:
    out: dict[str, dict[str, ReferenceDistance]] = {}
    headline = metrics[0]
    for setting in sorted({r["setting"] for r in rows}):
        eligible = [r for r in rows if r["setting"] == setting and r["reference_pair"]]
        pairs = [(r["model_a"], r["model_b"]) for r in eligible]
        # The headline metric's reference raises or warns once for the setting; the others
        # rest on the same pairs.
        refs = {
            headline: reference_distance(
                [r[headline] for r in eligible],
                metric=headline,
                setting=setting,
                min_pairs=min_pairs,
                on_insufficient=on_insufficient,
                pairs=pairs,
            )
        }
        for metric in metrics[1:]:
            refs[metric] = reference_distance(
                [r[metric] for r in eligible],
                metric=metric,
                setting=setting,
                min_pairs=min_pairs,
                on_insufficient="quiet",
                pairs=pairs,
            )
        out[setting] = refs
    return out


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

    entry = get_method(table.method)
    columns = list(BASE_COLUMNS) + [c for d in entry.distances for c in metric_columns(d.metric)]
    frame = pd.DataFrame(table.rows, columns=columns)
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if reference_path is not None:
        write_json(reference_path, reference_document(table, threshold=threshold))


def reference_document(table: DistanceTable, *, threshold: float = 1.0) -> dict[str, Any]:
    """What ``modelkin compare --reference`` reads:
    per setting and metric, the reference distance."""
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
    output_csv: str | Path,
    output_reference: str | Path,
    *,
    min_reference_pairs: int = 5,
    on_insufficient_reference: str = "error",
    threshold: float = 1.0,
    memory_budget_mb: float | None = None,
) -> DistanceTable:
    """The workflow's distance table of one method, from the signature files alone."""
    if len(model_ids) != len(signatures):
        raise InputError("model_ids and signatures must have the same length")
    members = [
        Member.from_signature(mid, sig) for mid, sig in zip(model_ids, signatures, strict=True)
    ]
    table = distance_table(
        method,
        members,
        min_reference_pairs=min_reference_pairs,
        on_insufficient_reference=on_insufficient_reference,
        threshold=threshold,
        memory_budget_mb=memory_budget_mb,
    )
    write_distance_table(table, output_csv, output_reference, threshold=threshold)
    return table
