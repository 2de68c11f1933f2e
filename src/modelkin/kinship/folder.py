"""Family trees of a user's own checkpoints (``modelkin lineage``; docs/lineage.md).

For each reference file of the distance stage (``results/distances/<method>_reference.json``,
one per method), every checkpoint gets its signature on the reference's own probe (a signature
the workflow already made of the same checkpoint on that probe is reused), every pair its
headline distance, and each distance its calibrated p-value against the reference's null of the
pair's setting (:func:`modelkin.distances.verdicts.verdicts`). The per-method tables have the
columns of the workflow's distance tables that :func:`.graph.pair_evidence` reads, so the
kinship graph, families and trees are those of the workflow's ``lineage`` stage
(:func:`.recover.recover_lineage`). Scores against a true lineage only where the checkpoints'
metadata records parents among them.

Torch is imported only where signatures are computed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..lineage import Lineage
from .recover import LineageResult, recover_lineage
from .settings import KinshipSettings

log = logging.getLogger(__name__)

TRUTH_COLUMNS = {
    "edges": ["true_relation", "true_parent_link"],
    "families": ["true_family", "true_parent", "true_kind", "generation"],
}
OUTPUT_FILES = ("edges.csv", "families.csv", "trees.png")


@dataclass
class FolderLineage:
    """The families and trees of a set of checkpoints, and what they rest on."""

    result: LineageResult
    checkpoints: dict[str, Path]  # label (the file's path relative to the files' folder) -> file
    references: dict[str, Path]  # method -> reference file
    scored: bool  # whether the checkpoints record parents among themselves (result.scores)
    unjudged: dict[str, list[str]] = field(default_factory=dict)  # method -> settings it lacks

    def edges(self):
        """The edge table, without the truth columns when there is no recorded lineage."""
        return (
            self.result.edges
            if self.scored
            else self.result.edges.drop(columns=TRUTH_COLUMNS["edges"])
        )

    def families(self):
        """The family table, without the truth columns when there is no recorded lineage."""
        frame = self.result.families
        return frame if self.scored else frame.drop(columns=TRUTH_COLUMNS["families"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (NaN as null)."""
        document = {
            "checkpoints": {k: str(v) for k, v in self.checkpoints.items()},
            "references": {k: str(v) for k, v in self.references.items()},
            "alpha": self.result.settings.alpha,
            "combine": self.result.settings.combine,
            "families": _records(self.families()),
            "edges": _records(self.edges()),
            "unjudged_settings": self.unjudged,
        }
        if self.scored:
            document["scores"] = _records_of(self.result.scores)
        return document


def _records_of(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    def clean(value: Any) -> Any:
        if hasattr(value, "item"):
            value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return [{k: clean(v) for k, v in row.items()} for row in rows]


def _records(frame) -> list[dict[str, Any]]:
    return _records_of(frame.to_dict("records"))


def checkpoint_labels(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Each checkpoint's label: its path relative to the folder that holds all of them. Two
    paths to one file, or fewer than two files, are refused."""
    if len(paths) < 2:
        raise InputError(
            f"lineage needs at least 2 checkpoints, got {len(paths)}; pass the model files, "
            "e.g. `modelkin lineage models/*.safetensors --reference ...`"
        )
    resolved = [Path(p).resolve() for p in paths]
    seen: dict[Path, str] = {}
    for given, path in zip(paths, resolved, strict=True):
        if path in seen:
            raise InputError(f"{given} is given twice (also as {seen[path]}); pass each file once")
        seen[path] = str(given)
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    return {
        str(p.relative_to(common)): Path(given) for p, given in zip(resolved, paths, strict=True)
    }


def open_reference(path: str | Path):
    """A reference file of any method (:func:`~modelkin.distances.verdicts.load_reference`)."""
    from ..distances.verdicts import load_reference
    from ..signatures import get_method

    method = None
    try:
        document = json.loads(Path(path).read_text())
        method = document.get("method") if isinstance(document, dict) else None
    except (OSError, ValueError):
        pass  # load_reference names the problem
    reference = load_reference(path, str(method))
    get_method(reference.method)
    return reference


def _datasets(reference) -> set[str]:
    from ..distances.reference import Setting

    return {Setting.from_key(key).dataset for key in reference.settings()}


def check_references(references: Sequence[Any], lineages: Mapping[str, Lineage]) -> None:
    """One reference per method, all of one data set, that of every checkpoint."""
    methods = [r.method for r in references]
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise InputError(f"two references of method {twice[0]}; pass one reference per method")
    covered = {str(r.path): _datasets(r) for r in references}
    if len({frozenset(d) for d in covered.values()}) > 1:
        listed = "; ".join(f"{p}: {', '.join(sorted(d)) or 'none'}" for p, d in covered.items())
        raise InputError(
            f"the references are of different data sets ({listed}); pass references that the "
            "distance stage made for the checkpoints' data set"
        )
    datasets = sorted({lineage.dataset for lineage in lineages.values()})
    if len(datasets) > 1:
        raise InputError(
            f"the checkpoints are of different data sets ({', '.join(datasets)}); run lineage "
            "on the checkpoints of one data set at a time"
        )
    have = next(iter(covered.values()))
    if datasets[0] not in have:
        raise InputError(
            f"the references hold no settings of {datasets[0]}, the checkpoints' data set (they "
            f"have: {', '.join(sorted(have)) or 'none'})"
        )


def method_evidence(
    reference,
    checkpoints: Mapping[str, Path],
    lineages: Mapping[str, Lineage],
    work: Path,
    *,
    device: str = "auto",
    allow_insufficient: bool = False,
):
    """One method's table of every pair: ``model_a``, ``model_b``, ``setting`` and the headline
    metric's distance, ``_normalised``, ``_p_value`` and ``_verdict`` (the columns of a distance
    table that :func:`.graph.pair_evidence` reads), and the settings the reference lacks (their
    pairs get no p-value from this method)."""
    import numpy as np
    import pandas as pd

    from ..distances.calibration import NOT_ENOUGH
    from ..distances.compare import _cached_signature, _reference_probe, make_signature
    from ..distances.reference import ReferenceDistance
    from ..distances.verdicts import PartnerCache, check_sufficient, setting_of_lineages, verdicts
    from ..io import file_sha256
    from ..progress import progress
    from ..signatures import check_comparable, get_method, read_signature
    from ..signatures.store import NO_PROBE

    name = reference.method
    method = get_method(name)
    metric = method.headline.metric
    labels = list(checkpoints)
    pairs = list(itertools.combinations(labels, 2))
    # every signature is on the first model's data set's probe
    probe_dataset = lineages[labels[0]].dataset if method.probe_kind is not None else None
    keys = {
        p: setting_of_lineages(lineages[p[0]], lineages[p[1]], probe_dataset=probe_dataset).key
        for p in pairs
    }
    known = set(reference.settings())
    unjudged = sorted({k for k in keys.values() if k not in known})
    sufficient = {}
    for key in sorted(set(keys.values()) & known):  # refused before anything is computed
        check_sufficient(reference, key, allow_insufficient=allow_insufficient)
        entry = ReferenceDistance.from_dict(reference.entry(key, metric))
        sufficient[key] = (entry.sufficient, entry.mean)
    for key in unjudged:
        log.warning("%s has no setting %s: its pairs get no %s p-value", reference.path, key, name)
    probe = None
    if method.probe_kind is not None:
        probe = _reference_probe(reference, lineages[labels[0]].dataset, None)
    probe_sha = file_sha256(probe) if probe is not None else NO_PROBE
    options = {
        k: v for k, v in (reference.document.get("signature_params") or {}).items()
        if k in method.signature_keys
    }  # fmt: skip
    signatures = []
    for i, label in enumerate(progress(labels, desc=f"{name} signatures", unit="model")):
        cached = _cached_signature(reference, file_sha256(checkpoints[label]), probe_sha)
        if cached is None:
            out = work / f"{name}_{i}.h5"
            make_signature(name, checkpoints[label], probe, out, device=device, **options)
            cached = read_signature(out)
        signatures.append(cached)
    for other in signatures[1:]:
        check_comparable(signatures[0], other)
    matrix = method.pairwise(signatures, [metric])[metric]
    index = {label: i for i, label in enumerate(labels)}
    cache = PartnerCache()
    rows = []
    for a, b in progress(pairs, desc=f"{name} verdicts", unit="pair"):
        distance = float(matrix[index[a], index[b]])
        key = keys[(a, b)]
        p_value, normalised, verdict = math.nan, math.nan, NOT_ENOUGH
        if key in sufficient and not sufficient[key][0]:
            mean = sufficient[key][1]
            normalised = distance / mean if np.isfinite(mean) and mean > 0 else math.nan
        elif key in sufficient and np.isfinite(distance):
            _, judged = verdicts(
                signatures[index[a]], signatures[index[b]], {metric: distance}, reference, key,
                allow_insufficient=True, cache=cache,
            )  # fmt: skip
            p_value, normalised = judged[metric].p_value, judged[metric].normalised
            verdict = judged[metric].verdict
        rows.append({
            "model_a": a, "model_b": b, "setting": key, metric: distance,
            f"{metric}_normalised": normalised, f"{metric}_p_value": p_value,
            f"{metric}_verdict": verdict,
        })  # fmt: skip
    return pd.DataFrame(rows), unjudged


def recorded_lineages(checkpoints: Mapping[str, Path]) -> tuple[dict[str, Lineage], bool]:
    """Each checkpoint's lineage record under its label, its parent renamed to the label of the
    checkpoint that carries the parent's name; and whether any parent is among them."""
    from ..checkpoint import read_lineage

    records = {label: read_lineage(path) for label, path in checkpoints.items()}
    names: dict[str, list[str]] = {}
    for label, record in records.items():
        names.setdefault(record.name, []).append(label)
    label_of = {n: labels[0] for n, labels in names.items() if len(labels) == 1}
    out, scored = {}, False
    for label, record in records.items():
        parent = label_of.get(record.parent or "")
        scored = scored or parent is not None
        values = {**record.to_dict(), "name": label, "parent": parent}
        out[label] = Lineage.from_dict(values)
    return out, scored


def folder_lineage(
    checkpoints: Sequence[str | Path],
    references: Sequence[str | Path],
    *,
    alpha: float | None = None,
    settings: Mapping[str, Any] | None = None,
    device: str = "auto",
    allow_insufficient_reference: bool = False,
) -> FolderLineage:
    """Families and trees of ``checkpoints`` (modelkin checkpoint files) from their calibrated
    p-values against ``references`` (the distance stage's reference files, one per method);
    ``alpha`` defaults to ``settings``' or the schema's ``lineage.alpha`` (not the references'
    verdict alpha: one false edge merges two families, docs/lineage.md); ``settings``: a
    ``lineage`` section."""
    from ..checkpoint import read_metadata
    from .direction import model_statistics
    from .graph import headline_metrics, pair_evidence
    from .pruning import checkpoint_weights

    if not references:
        raise InputError(
            "lineage needs at least one --reference (results/distances/M_reference.json)"
        )
    labels = checkpoint_labels(checkpoints)
    for path in labels.values():
        read_metadata(path)  # a file that is no modelkin checkpoint is refused first
    lineages, scored = recorded_lineages(labels)
    opened = [open_reference(r) for r in references]
    check_references(opened, lineages)
    chosen = KinshipSettings.from_dict(settings, alpha=alpha)
    tables, unjudged = {}, {}
    with tempfile.TemporaryDirectory(prefix="modelkin-lineage-") as tmp:
        for reference in opened:
            tables[reference.method], missing = method_evidence(
                reference, labels, lineages, Path(tmp), device=device,
                allow_insufficient=allow_insufficient_reference,
            )  # fmt: skip
            if missing:
                unjudged[reference.method] = missing
    methods = list(tables)
    pairs = pair_evidence(tables, headline_metrics(methods))
    if not any(pairs[f"{m}_p_value"].notna().any() for m in methods):
        raise InputError(
            "no pair of the checkpoints could be judged: the references have no sufficient "
            f"setting for them (settings without a reference: {unjudged})"
        )
    stats = {label: model_statistics(path) for label, path in labels.items()}
    result = recover_lineage(
        pairs, methods, models=list(labels), stats=stats,
        lineages=lineages if scored else None, settings=chosen,
        read_weights=checkpoint_weights(labels),
    )  # fmt: skip
    return FolderLineage(result, labels, {r.method: Path(r.path) for r in opened}, scored, unjudged)


def write_folder_lineage(lineage: FolderLineage, folder: str | Path) -> list[Path]:
    """``edges.csv``, ``families.csv`` and ``trees.png`` in ``folder`` (each written whole or
    not at all)."""
    from ..io import atomic_path
    from .plot import plot_family_trees

    folder = Path(folder)
    edges, families = folder / OUTPUT_FILES[0], folder / OUTPUT_FILES[1]
    for frame, path in ((lineage.edges(), edges), (lineage.families(), families)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    figure = plot_family_trees(edges, families, folder / OUTPUT_FILES[2])
    return [edges, families, figure]
