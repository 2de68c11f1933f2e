"""Comparing two models end to end: probes, signatures,
distances, and the verdict against a reference.

These are the Python forms of ``modelkin probe``, ``modelkin signature``,
``modelkin distance`` and ``modelkin compare``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingFileError
from ..signatures import Signature, check_comparable, get_distance, get_method, read_signature
from ..signatures.store import NO_PROBE
from .new_models import HeldOutCheck
from .reference import Verdict
from .verdicts import (
    ReferenceFile,
    check_sufficient,
    describe_verdicts,
    load_reference,
    setting_of_lineages,
    verdicts,
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
    probe: str | Path | None,
    output: str | Path,
    *,
    device: str = "auto",
    **options: Any,
) -> Path:
    """The ``method`` signature of ``checkpoint`` on ``probe`` (None for a method that reads no
    probe, e.g. ``weights``; options: chunk_size and the method's signature settings)."""
    from ..signatures.compute import signature_file

    if probe is None and get_method(method).probe_kind is not None:
        raise InputError(
            f"the {method} signature needs a probe: pass --probe FILE (or --probe auto --data "
            "PREPARED)"
        )

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
    matrices = get_method(a.method).pairwise([a, b], metrics)
    return {metric: float(matrix[0, 1]) for metric, matrix in matrices.items()}


# ---------------------------------------------------------------------------------------------
# Whole comparison


@dataclass
class Comparison:
    method: str
    checkpoint_a: str
    checkpoint_b: str
    distances: dict[str, float]
    setting: str | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    probe: str | None = None
    probe_sha256: str | None = None
    reused: list[str] = field(default_factory=list)  # cached signatures used
    # the headline's verdicts on held-out unrelated pairs judged like this one (the error rate)
    held_out: HeldOutCheck | None = None

    @property
    def verdict(self) -> str | None:
        """The verdict of the method's headline distance (None without a reference)."""
        headline = get_method(self.method).headline.metric
        return self.verdicts[headline].verdict if headline in self.verdicts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "checkpoint_a": self.checkpoint_a,
            "checkpoint_b": self.checkpoint_b,
            "probe": self.probe,
            "probe_sha256": self.probe_sha256,
            "distances": self.distances,
            "setting": self.setting,
            "verdicts": {m: vars(v) for m, v in self.verdicts.items()},
            "verdict": self.verdict,
            "reused_signatures": self.reused,
            "held_out": self.held_out.to_dict() if self.held_out else None,
        }

    def describe(self) -> str:
        lines = [f"{self.method} distances between {self.checkpoint_a} and {self.checkpoint_b}:"]
        for metric, value in self.distances.items():
            info = get_distance(self.method, metric)
            lines.append(
                f"  {metric:<13} {value:.6g}   (range "
                f"{info.range[0]:g}..{info.range[1]:g}, lower = more alike)"
            )
        if self.verdicts:
            headline = get_method(self.method).headline.metric
            lines.extend(
                describe_verdicts(str(self.setting), self.verdicts, headline, self.held_out)
            )
        return "\n".join(lines)


def compare_checkpoints(
    checkpoint_a: str | Path,
    checkpoint_b: str | Path,
    *,
    method: str = "zest",
    data: str | Path | None = None,
    probe: str | Path | None = None,
    reference: str | Path | None = None,
    setting: str | None = None,
    metrics: Sequence[str] | None = None,
    device: str = "auto",
    workdir: str | Path | None = None,
    probe_options: dict[str, Any] | None = None,
    signature_options: dict[str, Any] | None = None,
    allow_insufficient_reference: bool = False,
) -> Comparison:
    """Signatures of two checkpoints on one probe, their distances, and, with ``reference`` (a
    workflow's ``results/distances/<method>_reference.json``), each distance's calibrated verdict.

    With a reference, the probe defaults to the reference's own (checked by hash before anything
    is computed), and a signature the workflow already made for the same checkpoint on that probe
    is reused. Without one, ``probe`` is an existing probe file, or one is made from ``data`` (a
    prepared data set; default ``results/data/<dataset>.safetensors``, or prepared on the fly for
    the bundled digits) in a temporary directory (``workdir`` keeps the files). A reference
    whose setting rests on too few independent families is refused before anything is computed,
    unless ``allow_insufficient_reference``.
    """
    from ..checkpoint import read_metadata
    from ..io import file_sha256

    get_method(method)
    meta_a, meta_b = read_metadata(checkpoint_a), read_metadata(checkpoint_b)
    if meta_a["dataset"] != meta_b["dataset"]:
        shape_a, shape_b = _input_shape(meta_a), _input_shape(meta_b)
        # unknown (a user data set not registered here, an external model bound to none): the
        # signature's own check says whether the model takes the probe's images
        if shape_a is not None and shape_b is not None and shape_a != shape_b:
            raise InputError(
                f"{checkpoint_a} ({meta_a['dataset']}, {_shape_text(shape_a)} images) and "
                f"{checkpoint_b} ({meta_b['dataset']}, {_shape_text(shape_b)} images) take "
                "inputs of different shapes and cannot be probed with the same images"
            )
    reads_probe = get_method(method).probe_kind is not None
    ref = load_reference(reference, method) if reference is not None else None
    if ref is not None:
        from ..lineage import Lineage

        lineages = [Lineage.from_metadata(m) for m in (meta_a, meta_b)]
        probe_dataset = meta_a["dataset"] if reads_probe else None
        key = setting or setting_of_lineages(*lineages, probe_dataset=probe_dataset).key
        # a model of a data set not registered here has no known class names: the classes its
        # workflow signature recorded decide its setting once the signatures are read (below)
        deferred = setting is None and key not in ref.settings() and len({
            meta_a["dataset"], meta_b["dataset"]}) == 2  # fmt: skip
        if not deferred:
            check_sufficient(ref, key, allow_insufficient=allow_insufficient_reference)
        if reads_probe:
            probe = _reference_probe(ref, meta_a["dataset"], probe)
    with tempfile.TemporaryDirectory(prefix="modelkin-compare-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not reads_probe:
            probe = None  # e.g. weights: the signature is the model's own parameters
        elif probe is None:
            prepared = _prepared_data(data, meta_a["dataset"], work)
            probe = make_probe(
                method, prepared, work / f"{method}_probe.h5", **(probe_options or {})
            )
        probe_sha = file_sha256(probe) if probe is not None else NO_PROBE
        signatures, reused = [], []
        for tag, ckpt in (("a", checkpoint_a), ("b", checkpoint_b)):
            cached = _cached_signature(ref, file_sha256(ckpt), probe_sha) if ref else None
            if cached is not None:
                signatures.append(cached)
                reused.append(str(cached.path))
                continue
            path = make_signature(
                method, ckpt, probe, work / f"{method}_{tag}.h5", device=device,
                **(signature_options or {}),
            )  # fmt: skip
            signatures.append(read_signature(path))
        distances = signature_distances(signatures[0], signatures[1], metrics)
        comparison = Comparison(
            method, str(checkpoint_a), str(checkpoint_b), distances, probe=str(probe or ""),
            probe_sha256=probe_sha, reused=reused,
        )  # fmt: skip
        if ref is not None:
            comparison.setting, comparison.verdicts = verdicts(
                signatures[0], signatures[1], distances, ref, setting, allow_insufficient=True
            )
            comparison.held_out = ref.held_out(comparison.setting).get("both")
    return comparison


def _input_shape(meta: dict[str, Any]) -> tuple[int, ...] | None:
    """The (C, H, W) of the images a checkpoint takes: the data shape an external model records,
    else its data set's (built-in or registered user data set); None when neither is known."""
    from ..datasets import DATASETS

    recorded = meta.get("data_shape")
    if recorded:
        return tuple(int(v) for v in recorded)
    info = DATASETS.get(str(meta.get("dataset")))
    return tuple(info.shape) if info is not None else None


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


def _reference_probe(ref: ReferenceFile, dataset: str, probe: str | Path | None) -> Path:
    """The probe a comparison against ``ref`` must use: the given one if it is the reference's
    (by hash), else the reference's own."""
    from ..io import file_sha256

    path, sha = ref.probe(dataset)
    if sha is None:
        raise InputError(f"{ref.path} has no reference on {dataset} (it has: {ref.settings()})")
    if probe is not None:
        if file_sha256(probe) != sha:
            raise InputError(
                f"{probe} is not the probe the reference in {ref.path} was computed on (sha256 "
                f"{sha[:12]}); leave out --probe to use the reference's ({path})"
            )
        return Path(probe)
    if path is None or not path.exists():
        raise MissingFileError(
            f"the reference's probe {path} is missing; build it with `snakemake {path}` in the "
            "workflow directory, or pass it with --probe"
        )
    return path


def _cached_signature(ref: ReferenceFile, checkpoint_sha: str, probe_sha: str) -> Signature | None:
    """A signature of the reference's models made from the same checkpoint on the same probe."""
    import h5py

    for info in (ref.document.get("models") or {}).values():
        path = ref.resolve(info["signature"])
        if not path.exists():
            continue
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            same = attrs.get("checkpoint_sha256") == checkpoint_sha
            same = same and attrs.get("probe_sha256") == probe_sha
        if same:
            return read_signature(path)
    return None


def _prepared_data(data: str | Path | None, dataset: str, work: Path) -> Path:
    from ..data import prepare_dataset
    from ..datasets import DATASETS, prepared_path

    if data is not None:
        return Path(data)
    default = prepared_path("results", dataset)
    if default.exists():
        return default
    info = DATASETS.get(dataset)  # a user data set may not be registered in this process
    if info is not None and info.source == "sklearn":
        return prepare_dataset(dataset, work / f"{dataset}.safetensors")
    raise MissingFileError(
        f"no prepared {dataset} data at {default}; pass --data "
        f"PREPARED (made by `modelkin prepare-data {dataset}`)"
    )
