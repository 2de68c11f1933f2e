"""Distance tables of a model collection: every pair, its relation, distances and verdicts.

A collection is a list of :class:`Member` (model id, lineage, signature). For each method the
table holds every pair of members that saw the same probe, with

- the pair's relation (:func:`modelkin.lineage.relation`);
- every distance of the method: raw, normalised (divided by the mean of the unrelated pairs of
  the pair's setting), its calibrated p-value and verdict at ``alpha``, and the reference's size.

A setting is the probe's data set and each side's architecture, algorithm (a derived model
counts with its root's) and class set (:class:`~modelkin.distances.reference.Setting`). Its
reference is every pair of unrelated models in it (relation ``independent``: no shared lineage
or seed), zoo seeds and other parents' derived models alike; a pair that is itself unrelated is
judged with its own distance left out (:mod:`.calibration`).

Everything a table needs is in the signature files (:mod:`modelkin.signatures.store` records
each model's lineage), so the stage opens no checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_path, write_json
from ..lineage import Lineage, ancestor_of_pair, family, relation
from ..signatures import Signature, check_comparable, get_method, read_signature
from .calibration import CalibrationSettings, NullFit, fit_null, judge
from .new_models import POOLS, HeldOutCheck, held_out_check
from .reference import ReferenceDistance, Setting, Side, Verdict, reference_distance

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
    """One model of a table: its id, lineage and signature (a file, or one already read).

    A model trained on another data set than its probe's (a transfer to another data set, on its
    root's probe) is a *guest* of that probe's data set: ``probe_dataset`` names it, and
    ``probe_classes`` are the probe's classes the model predicts, matched by name (None: all)."""

    model_id: str
    lineage: Lineage
    signature: Signature | Path | None = None
    probe_dataset: str | None = None
    probe_classes: tuple[int, ...] | None = None

    @classmethod
    def from_signature(cls, model_id: str, signature: Signature | str | Path) -> Member:
        sig = signature if isinstance(signature, Signature) else read_signature(signature)
        lineage = Lineage.from_metadata(sig.lineage.to_dict(), name=model_id)
        if sig.probe_columns is None:
            return cls(model_id, lineage, sig)
        return cls(model_id, lineage, sig, sig.probe_dataset, sig.probe_classes)

    @property
    def derived(self) -> bool:
        return self.lineage.derived

    @property
    def guest(self) -> bool:
        return self.probe_dataset is not None and self.probe_dataset != self.lineage.dataset

    @property
    def dataset(self) -> str:
        """The data set of the probe the member is compared on."""
        return self.probe_dataset if self.probe_dataset and self.guest else self.lineage.dataset

    @property
    def key(self) -> str:
        """Unique among a table's members: the model id, ``@`` the probe's data set for a guest."""
        return f"{self.model_id}@{self.dataset}" if self.guest else self.model_id

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


def side_of(member: Member) -> Side:
    """A member's side of a setting (:meth:`Side.of_lineage`); a guest's holds the probe's
    classes it predicts and its own data set."""
    if member.guest:
        return Side.guest(member.lineage, member.probe_classes)
    return Side.of_lineage(member.lineage)


def setting_of(a: Member, b: Member) -> Setting:
    return Setting.of(a.dataset, side_of(a), side_of(b))


@dataclass
class DistanceTable:
    """What :func:`distance_table` computes: rows (one per pair), references and nulls, the raw
    matrices, and which signature files the references rest on."""

    method: str
    members: list[Member]
    rows: list[dict[str, Any]]
    references: dict[str, dict[str, ReferenceDistance]]  # setting key -> metric -> reference
    nulls: dict[str, dict[str, NullFit]] = field(default_factory=dict)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    matrices: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    probes: dict[str, str] = field(default_factory=dict)  # dataset -> probe sha256
    signature_params: dict[str, Any] = field(default_factory=dict)
    probe_paths: dict[str, str] = field(default_factory=dict)  # dataset -> probe file
    # setting key -> pool -> the headline metric's verdicts on held-out unrelated models
    held_out: dict[str, dict[str, HeldOutCheck]] = field(default_factory=dict)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def metric_columns(metric: str) -> list[str]:
    return [
        metric,
        f"{metric}_normalised",
        f"{metric}_p_value",
        f"{metric}_verdict",
        f"{metric}_reference_mean",
        f"{metric}_reference_n",
        f"{metric}_reference_families",
    ]


def distance_table(
    method: str,
    members: Sequence[Member],
    *,
    calibration: CalibrationSettings | Mapping[str, Any] | None = None,
    on_insufficient_reference: str = "warn",
    memory_budget_mb: float | None = None,
) -> DistanceTable:
    """Compare every pair of ``members`` (with signatures of ``method``) that share a probe, and
    judge each pair against the unrelated pairs of its setting (:mod:`.calibration`).

    A method whose signatures are large (``streams_to_disk``: ModelGiF) compares them block by
    block from their files, within ``memory_budget_mb`` (default: the configuration's).
    """
    from ..config import memory_budget_bytes

    entry = get_method(method)
    settings = (
        calibration
        if isinstance(calibration, CalibrationSettings)
        else CalibrationSettings.from_dict(calibration)
    )
    members = list(members)
    lineages = {m.model_id: m.lineage for m in members}
    if len({m.key for m in members}) != len(members):
        raise InputError("a model id appears twice among the members of one probe's data set")
    families = {m.model_id: family(lineages, m.model_id) for m in members}
    metrics = [d.metric for d in entry.distances]
    rows: list[dict[str, Any]] = []
    matrices: dict[str, dict[str, np.ndarray]] = {}
    probes: dict[str, str] = {}
    probe_paths: dict[str, str] = {}
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
        probe_paths[dataset] = str(signatures[0].attrs.get("probe", ""))
        signature_params = signatures[0].params
        matrix = entry.pairwise(signatures, memory_bytes=memory_budget_bytes(memory_budget_mb))
        matrices[dataset] = matrix
        for i, j in itertools.combinations(range(len(group)), 2):
            a, b = group[i], group[j]
            if a.guest and b.guest:
                continue  # guests are compared with each other on their own data set's probe
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
                "reference_pair": rel == "independent",
            }
            for metric in metrics:
                row[metric] = float(matrix[metric][i, j])
            rows.append(row)
    references, nulls = _references(rows, metrics, families, settings, on_insufficient_reference)
    held_out = {
        setting: held_out_check(by_metric[metrics[0]], POOLS)
        for setting, by_metric in nulls.items()
        if by_metric[metrics[0]].sufficient and settings.model == "ranked"
    }
    for row in rows:
        for metric in metrics:
            reference = references[row["setting"]][metric]
            null = nulls[row["setting"]][metric]
            judgement = judge(null, row["model_a"], row["model_b"], row[metric])
            mean = reference.mean
            if row["reference_pair"] and reference.n > 1:  # its own distance left out
                mean = (reference.mean * reference.n - row[metric]) / (reference.n - 1)
            verdict = Verdict.of(
                metric, row[metric], reference, judgement, alpha=settings.alpha,
                model=settings.model, reference_mean=mean,
            )  # fmt: skip
            values = (
                verdict.normalised,
                verdict.p_value,
                verdict.verdict,
                verdict.reference_mean,
                verdict.reference_n,
                verdict.reference_families,
            )
            row.update(zip(metric_columns(metric)[1:], values, strict=True))
    return DistanceTable(
        method,
        members,
        rows,
        references,
        nulls,
        settings,
        matrices,
        probes,
        signature_params,
        probe_paths,
        held_out,
    )


def _references(
    rows, metrics, families, settings: CalibrationSettings, on_insufficient: str
) -> tuple[dict[str, dict[str, ReferenceDistance]], dict[str, dict[str, NullFit]]]:
    references: dict[str, dict[str, ReferenceDistance]] = {}
    nulls: dict[str, dict[str, NullFit]] = {}
    for setting in sorted({r["setting"] for r in rows}):
        unrelated = [r for r in rows if r["setting"] == setting and r["reference_pair"]]
        pairs = [(r["model_a"], r["model_b"]) for r in unrelated]
        references[setting], nulls[setting] = {}, {}
        for index, metric in enumerate(metrics):
            null = fit_null(pairs, [r[metric] for r in unrelated], families, settings)
            nulls[setting][metric] = null
            # The headline metric's reference raises or warns once for the setting.
            references[setting][metric] = reference_distance(
                [r[metric] for r in unrelated],
                metric=metric,
                setting=setting,
                families=null.n_families,
                min_families=settings.min_families,
                on_insufficient=on_insufficient,
                quiet=index > 0,
            )
    return references, nulls


# ---------------------------------------------------------------------------------------------
# Files


def write_distance_table(
    table: DistanceTable, csv_path: str | Path, reference_path: str | Path | None = None
) -> None:
    """The pair table as CSV, and the references (with the probes they hold for) as JSON."""
    import pandas as pd

    entry = get_method(table.method)
    columns = list(BASE_COLUMNS) + [c for d in entry.distances for c in metric_columns(d.metric)]
    frame = pd.DataFrame(table.rows, columns=columns)
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if reference_path is not None:
        write_json(reference_path, reference_document(table, Path(reference_path).parent))


def reference_document(table: DistanceTable, folder: str | Path = ".") -> dict[str, Any]:
    """What ``modelkin compare --reference`` reads: per setting and metric, the reference and the
    fitted null, the probes, and the signature files of the models the nulls were fitted on
    (paths relative to ``folder``, where the document is written)."""

    def relative(path: Any) -> str:
        return os.path.relpath(Path(str(path)).resolve(), Path(folder).resolve())

    signatures = {
        m.key: relative(m.signature.path if isinstance(m.signature, Signature) else m.signature)
        for m in table.members
    }
    headline = get_method(table.method).headline.metric
    return {
        "kind": "modelkin-reference-distances",
        "method": table.method,
        "signature_params": table.signature_params,
        "probe_sha256": table.probes,
        "probe_paths": {d: relative(p) for d, p in table.probe_paths.items() if p},
        "calibration": asdict(table.calibration),
        "references": {
            setting: {
                metric: {
                    **reference.to_dict(),
                    "null": table.nulls[setting][metric].to_dict(),
                    "pairs": [list(p) for p in table.nulls[setting][metric].pairs],
                    **(
                        {"held_out": {p: c.to_dict() for p, c in table.held_out[setting].items()}}
                        if setting in table.held_out and metric == headline
                        else {}
                    ),
                }
                for metric, reference in refs.items()
            }
            for setting, refs in table.references.items()
        },
        "models": {
            m.key: {
                "signature": signatures[m.key],
                "family": family({x.model_id: x.lineage for x in table.members}, m.model_id),
                "dataset": m.dataset,
                "side": side_of(m).key,
            }
            for m in table.members
        },
    }


def distance_stage(
    method: str,
    model_ids: Sequence[str],
    signatures: Sequence[str | Path],
    output_csv: str | Path,
    output_reference: str | Path,
    *,
    calibration: Mapping[str, Any] | None = None,
    on_insufficient_reference: str = "warn",
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
        calibration=calibration,
        on_insufficient_reference=on_insufficient_reference,
        memory_budget_mb=memory_budget_mb,
    )
    write_distance_table(table, output_csv, output_reference)
    return table
