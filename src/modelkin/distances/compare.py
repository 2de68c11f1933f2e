"""Comparing two models end to end: probes, signatures,
distances, and the verdict against a reference.

These are the Python forms of ``modelkin probe``, ``modelkin signature``,
``modelkin distance`` and ``modelkin compare``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingFileError
from ..signatures import check_comparable, get_distance, get_method, read_signature
from .reference import (
    InsufficientReference,
    Normalised,
    ReferenceDistance,
    Setting,
    normalise,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Probes and signatures


def make_probe(method: str, prepared: str | Path, output: str | Path, **options: Any) -> Path:
    """A probe file for ``method`` from a prepared data set (options: the method's probe settings).

    For a method that selects its probe among candidates (ModelGiF), this is the candidate probe
    without the selection (which needs independent models; the workflow does it).
    """
    options = {k: v for k, v in options.items() if v is not None}
    return get_method(method).make_probe(prepared, output, **options)


def make_signature(
    method: str,
    checkpoint: str | Path,
    probe: str | Path,
    output: str | Path,
    *,
    device: str = "auto",
    **options: Any,
) -> Path:
    """The ``method`` signature of ``checkpoint`` on ``probe`` (options: chunk_size and the
    method's signature settings)."""
    from ..signatures.compute import signature_file

    options = {k: v for k, v in options.items() if v is not None}
    return signature_file(method, checkpoint, probe, output, device=device, **options)


# ---------------------------------------------------------------------------------------------
# Distances between two signatures


def signature_distances(a: Any, b: Any, metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Every distance of the signatures' method (or only
    ``metrics``), after checking they are comparable.

    ``a`` and ``b``: :class:`~modelkin.signatures.Signature` objects or signature file paths.
    Signatures from different methods, parameters or probes raise ``SignatureMismatch``.
    """
    a = read_signature(a) if isinstance(a, (str, Path)) else a
    b = read_signature(b) if isinstance(b, (str, Path)) else b
    check_comparable(a, b)
    matrices = get_method(a.method).pairwise([a.data, b.data], metrics)
    return {metric: float(matrix[0, 1]) for metric, matrix in matrices.items()}


# ---------------------------------------------------------------------------------------------
# References


def load_reference(
    path: str | Path,
    method: str,
    setting: str | Setting | None = None,
    *,
    allow_insufficient: bool = False,
) -> tuple[str, dict[str, ReferenceDistance], dict[str, Any]]:
    """The reference distances of one setting from a file the workflow wrote.

    ``path``: ``results/distances/<method>_reference.json`` (references of every setting) or
    ``results/distances/<method>.csv`` (recomputed from its reference pairs). ``setting``: a
    setting key (``dataset:arch/algorithm~arch/algorithm``) or a :class:`Setting`; without it the
    file must hold exactly one setting. Returns (setting key, {metric: reference}, the document).

    A reference the file marks insufficient (fewer independent pairs than the workflow required)
    raises :class:`InsufficientReference`, unless ``allow_insufficient``: then it is used and a
    warning logged.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(
            f"reference file {path} does not exist; the workflow "
            f"writes results/distances/{method}_reference.json"
        )
    if path.suffix == ".csv":
        document = _reference_document_from_csv(path, method)
    else:
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(
                f"{path} is neither a reference JSON nor a distance CSV ({err})"
            ) from err
        if document.get("kind") != "modelkin-reference-distances":
            raise InputError(
                f"{path} is not a modelkin reference file "
                "(results/distances/<method>_reference.json)"
            )
    if document["method"] != method:
        raise InputError(
            f"{path} holds {document['method']} references, but the comparison uses {method}"
        )
    settings = document["references"]
    if setting is None:
        if len(settings) != 1:
            raise InputError(
                f"{path} holds references for {len(settings)} settings; "
                f"choose one with --setting: {', '.join(sorted(settings))}"
            )
        key = next(iter(settings))
    else:
        key = setting.key if isinstance(setting, Setting) else Setting.from_key(str(setting)).key
        if key not in settings:
            raise InputError(
                f"{path} has no reference for setting {key}; it "
                f"has: {', '.join(sorted(settings)) or 'none'}"
            )
    refs = {metric: ReferenceDistance.from_dict(values) for metric, values in settings[key].items()}
    weak = [r for r in refs.values() if not r.sufficient]
    if weak:
        message = (
            f"the reference of setting {key} in {path} rests on {weak[0].n} independently seeded "
            f"pair(s), fewer than the {weak[0].min_pairs} the workflow required (the file marks it "
            "insufficient)"
        )
        if not allow_insufficient:
            raise InsufficientReference(
                f"{message}; train more zoo seeds of this setting, or pass "
                "--allow-insufficient-reference to use it anyway"
            )
        log.warning("%s; its verdicts are weak", message)
    return key, refs, document


def _reference_document_from_csv(path: Path, method: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path)
    needed = {"setting", "reference_pair", "model_a", "model_b"}
    if not needed <= set(frame.columns):
        raise InputError(
            f"{path} is not a modelkin distance table (results/distances/<method>.csv); "
            f"it lacks {sorted(needed - set(frame.columns))}"
        )
    metrics = [d.metric for d in get_method(method).distances if d.metric in frame.columns]
    references: dict[str, dict[str, Any]] = {}
    for setting, rows in frame[frame["reference_pair"].astype(bool)].groupby("setting"):
        references[setting] = {}
        for metric in metrics:
            values = rows[metric].to_numpy(dtype=float)
            references[setting][metric] = ReferenceDistance(
                metric=metric,
                setting=setting,
                mean=float(values.mean()),
                std=float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                n=len(values),
                min_pairs=int(
                    np.nan_to_num(rows.get(f"{metric}_reference_n", pd.Series([len(values)])).max())
                ),
                pairs=list(zip(rows["model_a"], rows["model_b"], strict=True)),
            ).to_dict()
    return {
        "kind": "modelkin-reference-distances",
        "method": method,
        "references": references,
        "probe_sha256": {},
    }


# ---------------------------------------------------------------------------------------------
# Whole comparison


@dataclass
class Comparison:
    method: str
    checkpoint_a: str
    checkpoint_b: str
    distances: dict[str, float]
    setting: str | None = None
    normalised: dict[str, Normalised] = field(default_factory=dict)
    probe: str | None = None
    probe_sha256: str | None = None

    @property
    def verdict(self) -> str | None:
        """The verdict of the method's headline distance (None without a reference)."""
        headline = get_method(self.method).headline.metric
        return self.normalised[headline].verdict if headline in self.normalised else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "checkpoint_a": self.checkpoint_a,
            "checkpoint_b": self.checkpoint_b,
            "probe": self.probe,
            "probe_sha256": self.probe_sha256,
            "distances": self.distances,
            "setting": self.setting,
            "normalised": {m: vars(n) for m, n in self.normalised.items()},
            "verdict": self.verdict,
        }

    def describe(self) -> str:
        lines = [f"{self.method} distances between {self.checkpoint_a} and {self.checkpoint_b}:"]
        for metric, value in self.distances.items():
            info = get_distance(self.method, metric)
            lines.append(
                f"  {metric:<13} {value:.6g}   (range "
                f"{info.range[0]:g}..{info.range[1]:g}, lower = more alike)"
            )
        if self.normalised:
            lines.append(f"against the reference of setting {self.setting}:")
            lines.extend("  " + n.describe() for n in self.normalised.values())
            lines.append(f"verdict ({get_method(self.method).headline.metric}): {self.verdict}")
        return "\n".join(lines)


def normalise_distances(
    distances: dict[str, float],
    references: dict[str, ReferenceDistance],
    method: str,
    threshold: float = 1.0,
) -> dict[str, Normalised]:
    return {
        metric: normalise(
            value,
            references[metric],
            threshold=threshold,
            higher_is_similar=get_distance(method, metric).higher_is_similar,
        )
        for metric, value in distances.items()
        if metric in references
    }


def compare_checkpoints(
    checkpoint_a: str | Path,
    checkpoint_b: str | Path,
    *,
    method: str = "zest",
    data: str | Path | None = None,
    probe: str | Path | None = None,
    reference: str | Path | None = None,
    setting: str | None = None,
    threshold: float | None = None,
    metrics: Sequence[str] | None = None,
    device: str = "auto",
    workdir: str | Path | None = None,
    probe_options: dict[str, Any] | None = None,
    signature_options: dict[str, Any] | None = None,
    allow_insufficient_reference: bool = False,
) -> Comparison:
    """Signatures of two checkpoints on one probe, their
    distances, and the verdict against a reference.

    ``probe``: an existing probe file (use the workflow's, ``results/probes/...``, when comparing
    against its references); without it one is made from ``data`` (a prepared data set; default
    ``results/data/<dataset>.safetensors``, or prepared on the fly for the bundled digits) in a
    temporary directory (``workdir`` to keep the files). ``reference``: a reference JSON or distance
    CSV of the workflow; ``setting`` picks one of its settings (default: the checkpoints' dataset,
    arch and algorithm). A reference computed on another probe is refused: normalising by it would
    compare unlike distances; so is one marked insufficient, unless
    ``allow_insufficient_reference``.
    """
    from ..checkpoint import read_metadata
    from ..io import file_sha256

    get_method(method)
    meta_a, meta_b = read_metadata(checkpoint_a), read_metadata(checkpoint_b)
    if meta_a["dataset"] != meta_b["dataset"]:
        from ..datasets import get_dataset_info

        if get_dataset_info(meta_a["dataset"]).shape != get_dataset_info(meta_b["dataset"]).shape:
            raise InputError(
                f"{checkpoint_a} ({meta_a['dataset']}) and {checkpoint_b} ({meta_b['dataset']}) "
                "take inputs of different shapes and cannot be probed with the same images"
            )
    loaded = None
    if reference is not None:  # refused references fail before any signature is computed
        if setting is None:
            setting = Setting.of(
                meta_a["dataset"],
                meta_a["arch"],
                _algorithm(meta_a),
                meta_b["arch"],
                _algorithm(meta_b),
            ).key
        loaded = load_reference(
            reference, method, setting, allow_insufficient=allow_insufficient_reference
        )
    with tempfile.TemporaryDirectory(prefix="modelkin-compare-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if probe is None:
            prepared = _prepared_data(data, meta_a["dataset"], work)
            probe = make_probe(
                method, prepared, work / f"{method}_probe.h5", **(probe_options or {})
            )
        signatures = []
        for tag, ckpt in (("a", checkpoint_a), ("b", checkpoint_b)):
            signatures.append(
                make_signature(
                    method,
                    ckpt,
                    probe,
                    work / f"{method}_{tag}.h5",
                    device=device,
                    **(signature_options or {}),
                )
            )
        distances = signature_distances(signatures[0], signatures[1], metrics)
        probe_sha = file_sha256(probe)
    comparison = Comparison(
        method,
        str(checkpoint_a),
        str(checkpoint_b),
        distances,
        probe=str(probe),
        probe_sha256=probe_sha,
    )
    if loaded is not None:
        key, refs, document = loaded
        expected = (document.get("probe_sha256") or {}).get(Setting.from_key(key).dataset)
        if expected and expected != probe_sha:
            raise InputError(
                f"the reference in {reference} was computed on a different probe "
                f"(sha256 {expected[:12]}) than this comparison's ({probe_sha[:12]}); "
                f"pass the workflow's probe with --probe (results/probes/{method}/...)"
            )
        threshold = threshold if threshold is not None else float(document.get("threshold", 1.0))
        comparison.setting = key
        comparison.normalised = normalise_distances(distances, refs, method, threshold)
    return comparison


def _algorithm(meta: dict[str, Any]) -> str:
    return str(meta.get("root_algorithm") or meta.get("algorithm") or "imported")


def _prepared_data(data: str | Path | None, dataset: str, work: Path) -> Path:
    from ..data import prepare_dataset
    from ..datasets import get_dataset_info, prepared_path

    if data is not None:
        return Path(data)
    default = prepared_path("results", dataset)
    if default.exists():
        return default
    if get_dataset_info(dataset).source == "sklearn":
        return prepare_dataset(dataset, work / f"{dataset}.safetensors")
    raise MissingFileError(
        f"no prepared {dataset} data at {default}; pass --data "
        f"PREPARED (made by `modelkin prepare-data {dataset}`)"
    )
