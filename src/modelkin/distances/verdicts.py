"""Verdicts for any two signatures against a reference file the workflow wrote.

``results/distances/<method>_reference.json`` holds, per setting and metric, the mean of the
unrelated pairs and the fitted null (:mod:`.calibration`), and the signature file of every model
the nulls were fitted on. Two signatures of the reference's method, on its probe, are judged
against their setting's null: their distances to the reference models give each its own effect
(how close it tends to be to unrelated models), and the pair's distance is compared with what
that predicts (:func:`~modelkin.distances.new_models.judge_new`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingFileError
from ..lineage import Lineage
from ..progress import progress
from ..signatures import Signature, get_method, read_signature
from .calibration import PAIRWISE_MODELS, CalibrationSettings, NullFit, set_statistics
from .new_models import HeldOutCheck, judge_new
from .reference import InsufficientReference, ReferenceDistance, Setting, Side, Verdict

REFERENCE_KIND = "modelkin-reference-distances"
log = logging.getLogger(__name__)


@dataclass
class ReferenceFile:
    """A reference document read back."""

    path: Path
    method: str
    document: dict[str, Any]

    @property
    def calibration(self) -> CalibrationSettings:
        return CalibrationSettings.from_dict(self.document.get("calibration"))

    def resolve(self, stored: str) -> Path:
        """A path the document stores (relative to the document's folder)."""
        path = Path(stored)
        return path if path.is_absolute() else self.path.parent / path

    def probe(self, dataset: str) -> tuple[Path | None, str | None]:
        """(path, sha256) of the probe the reference of ``dataset`` was computed on."""
        paths = self.document.get("probe_paths") or {}
        shas = self.document.get("probe_sha256") or {}
        return (self.resolve(paths[dataset]) if dataset in paths else None), shas.get(dataset)

    def settings(self) -> list[str]:
        return sorted(self.document["references"])

    def entry(self, setting: str, metric: str) -> dict[str, Any]:
        try:
            return self.document["references"][setting][metric]
        except KeyError:
            raise InputError(
                f"{self.path} has no {metric} reference for setting {setting}; it has: "
                f"{', '.join(self.settings()) or 'none'}"
            ) from None

    def null(self, setting: str, metric: str) -> NullFit:
        entry = self.entry(setting, metric)
        stored = entry["null"]
        models = self.document.get("models") or {}
        pairs = [tuple(p) for p in entry.get("pairs", [])]
        logs = np.asarray(stored.get("log_distances", []), dtype=np.float64)
        if len(logs) != len(pairs) and self.calibration.model not in PAIRWISE_MODELS:
            raise InputError(
                f"{self.path} lacks the unrelated pairs' distances that the "
                f"{self.calibration.model} null needs; rebuild it with snakemake"
            )
        fit = NullFit(
            self.calibration,
            pairs,
            logs if len(logs) == len(pairs) else np.zeros(len(pairs)),
            {m: info["family"] for m, info in models.items()},
        )
        fit.mu, fit.sigma, fit.df = stored["mu"], stored["sigma"], stored["df"]
        fit.effects = dict(stored.get("effects") or {})
        if self.calibration.model == "ranked":
            if "pair_statistics" not in stored:
                raise InputError(
                    f"{self.path} lacks the unrelated pairs' statistics that the ranked null "
                    "needs (a file of an older modelkin); rebuild it with snakemake"
                )
            set_statistics(fit, stored["pair_statistics"])
            fit.new_statistics = {
                pool: np.asarray(values, dtype=np.float64)
                for pool, values in (stored.get("new_statistics") or {}).items()
            }
            if "both" not in fit.new_statistics:
                raise InputError(
                    f"{self.path} lacks the held-out statistics that the ranked null judges "
                    "models outside it by (a file of an older modelkin); rebuild it with snakemake"
                )
        return fit

    def held_out(self, setting: str) -> dict[str, HeldOutCheck]:
        """The headline metric's verdicts on held-out unrelated models of ``setting``, per pool
        (``both``: two models outside the reference, as :func:`verdicts` judges); empty where the
        file has none (a setting without verdicts, a null other than ``ranked``)."""
        headline = get_method(self.method).headline.metric
        stored = self.entry(setting, headline).get("held_out") or {}
        return {pool: HeldOutCheck(**values) for pool, values in stored.items()}


def load_reference(path: str | Path, method: str) -> ReferenceFile:
    """Read a reference file, checking it holds ``method``'s references."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(
            f"reference file {path} does not exist; the workflow writes "
            f"results/distances/{method}_reference.json (snakemake {path})"
        )
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not a reference JSON ({err})") from err
    if document.get("kind") != REFERENCE_KIND or "models" not in document:
        raise InputError(
            f"{path} is not a modelkin reference file of this version "
            "(results/distances/<method>_reference.json); rebuild it with snakemake"
        )
    if document["method"] != method:
        raise InputError(f"{path} holds {document['method']} references, not {method}")
    return ReferenceFile(path, method, document)


def setting_of_signatures(a: Signature, b: Signature) -> Setting:
    """The setting of two signatures: on a probe, its data set's (a model of another data set is
    a guest there, docs/model-distance.md "Across data sets"); without one, the first model's."""
    if a.probe_dataset is None:
        return setting_of_lineages(a.lineage, b.lineage, probe_dataset=None)
    dataset = a.probe_dataset
    return Setting.of(dataset, _side_on_probe(a, dataset), _side_on_probe(b, dataset))


def _side_on_probe(signature: Signature, dataset: str) -> Side:
    """A guest's side from the classes its signature recorded (where its data set was known),
    else from its lineage."""
    if signature.probe_columns is None:
        return Side.on_probe(signature.lineage, dataset)
    return Side.guest(signature.lineage, signature.probe_classes)


def setting_of_lineages(
    la: Lineage, lb: Lineage, *, probe_dataset: str | None = "first"
) -> Setting:
    """The setting of two models compared on ``probe_dataset``'s probe (``"first"``: the first
    model's data set; a model of another data set is a guest there); None: a method without a
    probe, whose tables compare the models of one data set only."""
    if probe_dataset is None:
        return Setting.of(la.dataset, Side.of_lineage(la), Side.of_lineage(lb))
    dataset = la.dataset if probe_dataset == "first" else probe_dataset
    return Setting.of(dataset, Side.on_probe(la, dataset), Side.on_probe(lb, dataset))


def check_sufficient(reference: ReferenceFile, key: str, *, allow_insufficient: bool) -> None:
    """Refuse a setting whose reference rests on too few independent families (the file marks it
    insufficient), unless ``allow_insufficient``: then warn; its verdicts read ``not enough
    independent models`` either way, never a guess."""
    headline = get_method(reference.method).headline.metric
    entry = ReferenceDistance.from_dict(reference.entry(key, headline))
    if entry.sufficient:
        return
    message = (
        f"the reference of setting {key} in {reference.path} rests on {entry.families} "
        f"independent famil{'y' if entry.families == 1 else 'ies'} of models, fewer than the "
        f"{entry.min_families} that calibrated verdicts need"
    )
    if not allow_insufficient:
        raise InsufficientReference(
            f"{message}; train more independent seeds of the setting (zoo.seeds or "
            "distances.reference_models), or pass --allow-insufficient-reference to see the "
            "distances without a verdict"
        )
    log.warning("%s: distances without a verdict", message)


def verdicts(
    a: Signature,
    b: Signature,
    distances: dict[str, float],
    reference: ReferenceFile,
    setting: str | None = None,
    *,
    allow_insufficient: bool = False,
    cache: PartnerCache | None = None,
) -> tuple[str, dict[str, Verdict]]:
    """Each metric's verdict for the pair (a, b) at ``distances``, and the setting used.

    Both signatures must be on the reference's probe (checked by hash). The reference models
    that are ``a`` or ``b`` themselves (same checkpoint) are left out of their effects. A setting
    with too few independent families is refused unless ``allow_insufficient``
    (:func:`check_sufficient`). A :class:`PartnerCache` shared by the calls for many pairs of
    the same signatures computes each signature's distances to the reference models once.
    """
    key = setting or setting_of_signatures(a, b).key
    check_sufficient(reference, key, allow_insufficient=allow_insufficient)
    _, expected_sha = reference.probe(Setting.from_key(key).dataset)
    for sig in (a, b):
        if expected_sha and sig.probe_sha256 != expected_sha:
            raise InputError(
                f"{sig.path} was computed on another probe (sha256 {sig.probe_sha256[:12]}) than "
                f"the reference in {reference.path} ({expected_sha[:12]}); compute it on the "
                "reference's probe (the default of `modelkin compare --reference`)"
            )
    own = {a.attrs["checkpoint_sha256"], b.attrs["checkpoint_sha256"]}
    entries = {metric: reference.entry(key, metric) for metric in distances}
    partners = _partner_distances(a, b, reference, key, list(distances), own, cache)
    out = {}
    for metric, distance in distances.items():
        entry = entries[metric]
        fit = reference.null(key, metric)
        judgement = judge_new(fit, distance, partners[metric][0], partners[metric][1])
        ref = ReferenceDistance.from_dict(entry)
        out[metric] = Verdict.of(
            metric, distance, ref, judgement, alpha=fit.settings.alpha, model=fit.settings.model
        )
    return key, out


@dataclass
class PartnerCache:
    """The reference models' signatures, read once, and each signature's distances to them (by
    checkpoint and probe hash), kept across :func:`verdicts` calls for many pairs."""

    signatures: dict[str, Signature] = field(default_factory=dict)
    distances: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)


def _reference_signature(reference: ReferenceFile, model: str, cache: PartnerCache | None):
    """``model``'s signature in the reference (``MODEL@DATASET``: a guest's, on that data set's
    probe)."""
    if cache is not None and model in cache.signatures:
        return cache.signatures[model]
    path = reference.resolve(reference.document["models"][model]["signature"])
    if not path.exists():
        raise MissingFileError(
            f"the reference model {model}'s signature {path} is missing; rebuild it with "
            f"`snakemake {path}` in the workflow directory"
        )
    other = read_signature(path)
    if cache is not None:
        cache.signatures[model] = other
    return other


def _partner_distances(a, b, reference: ReferenceFile, key: str, metrics, own, cache=None):
    """Per metric: the distances of a and of b to each model of the setting's null."""
    method = get_method(reference.method)
    in_null = sorted(
        {m for metric in metrics for p in reference.entry(key, metric)["pairs"] for m in p}
    )
    out: dict[str, tuple[dict[str, float], dict[str, float]]] = {m: ({}, {}) for m in metrics}
    models = progress(
        in_null, desc="distances to the reference models", unit="model", disable=cache is not None
    )
    dataset = Setting.from_key(key).dataset
    stored = reference.document.get("models") or {}
    for model in models:
        # a model of another data set than the setting's is in the null as a guest on its probe
        guest = f"{model}@{dataset}"
        other = _reference_signature(reference, guest if guest in stored else model, cache)
        if other.attrs["checkpoint_sha256"] in own:
            continue
        for side, sig in enumerate((a, b)):
            slot = (str(sig.attrs["checkpoint_sha256"]), str(sig.probe_sha256), model, *metrics)
            values = cache.distances.get(slot) if cache is not None else None
            if values is None:
                matrices = method.pairwise([sig, other], metrics)
                values = {metric: float(matrices[metric][0, 1]) for metric in metrics}
                if cache is not None:
                    cache.distances[slot] = values
            for metric in metrics:
                out[metric][side][model] = values[metric]
    return out


def describe_verdicts(
    setting: str,
    verdicts_: dict[str, Verdict],
    headline: str,
    held_out: HeldOutCheck | None = None,
) -> list[str]:
    """What ``modelkin compare`` prints: every metric's verdict, the headline's, and (``held_out``)
    the rate at which the headline called held-out unrelated models related."""
    lines = [f"against the unrelated pairs of setting {setting}:"]
    lines.extend("  " + v.describe() for v in verdicts_.values())
    if headline in verdicts_:
        v = verdicts_[headline]
        p = f"p = {v.p_value:.2g}" if math.isfinite(v.p_value) else "no p-value"
        lines.append(f"verdict ({headline}): {v.verdict} ({p}, alpha {v.alpha:g})")
        if held_out is not None and held_out.judged:
            lines.append(
                f"error rate of this verdict, measured: {held_out.rate:.1%} of "
                f"{held_out.judged} pairs of unrelated models, each held out of the reference "
                f"and judged like this pair, were called related ({held_out.false_positives})"
            )
        elif held_out is not None:
            lines.append(
                "error rate of this verdict: not measured (too few independent families in the "
                "reference to hold two out and still judge them)"
            )
    return lines
