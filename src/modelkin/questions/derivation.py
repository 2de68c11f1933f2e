"""Was each suspect derived from the victim? One calibrated verdict per suspect and method.

The null is the user's own: the victim and the reference models are independent of each other
(the user says so, e.g. models trained from scratch on the same task), so every pair among them
is an unrelated pair. The null of :mod:`modelkin.distances.calibration` (``ranked`` or
``pairwise``) is fitted on those pairs (a mean plus one effect per model); a suspect's own
effect comes from its distances to the references (never to the victim, to which it may be
related), and its distance to the victim is compared with what the victim's and its own effects
predict:
:func:`~modelkin.distances.new_models.judge_member_and_new`, which ranks the statistic among
those of references held out of the fit and judged the same way (pool ``member``). A suspect is
*related* when p < alpha. On unrelated models the verdict is meant to err at rate alpha; on the
digits zoo, each family held out of everything and judged as new models, it erred at 1.9% (Zest)
and 0.9% (ModelGiF) at alpha 0.01 (docs/model-distance.md, verdicts for your own models).

That rate is also checked on the question's own models: each reference in turn is held out,
the null refitted on the rest and the held-out reference judged as a suspect. It is independent
of the victim, so every "related" there is a false positive; the table reports how many
(``held_out_false_positives``), a direct, if small, measurement of the error rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..distances.calibration import (
    NOT_ENOUGH,
    CalibrationSettings,
    Judgement,
    fit_null,
)
from ..distances.new_models import judge_member_and_new
from ..errors import InputError
from ..io import atomic_path
from ..signatures import get_method, read_signature
from .plan import DerivationQuestion

COLUMNS = [
    "question", "method", "metric", "headline", "victim", "suspect", "distance",
    "expected_unrelated", "ratio", "p_value", "verdict", "alpha", "null_model",
    "reference_models", "reference_pairs", "reference_families", "df",
    "held_out_false_positives", "held_out_judged",
]  # fmt: skip
NOT_COMPARABLE = "not comparable"


def answer_derivation(
    question: DerivationQuestion,
    signatures: Mapping[str, Mapping[str, str | Path]],
    calibration: CalibrationSettings | Mapping[str, Any] | None = None,
    memory_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """The question's table: one row per (method, metric, suspect).

    ``signatures``: ``{method: {model id: signature file}}`` for every model of the question.
    """
    settings = (
        calibration
        if isinstance(calibration, CalibrationSettings)
        else CalibrationSettings.from_dict(calibration)
    )
    rows: list[dict[str, Any]] = []
    for method in question.methods:
        files = signatures.get(method) or {}
        missing = [m for m in question.models if m not in files]
        if missing:
            raise InputError(
                f"question {question.name}: no {method} signature for {', '.join(missing)}"
            )
        entry = get_method(method)
        read = [read_signature(files[m], lazy=entry.streams_to_disk) for m in question.models]
        _check_same_probe(question, method, read)
        matrices = entry.pairwise(read, memory_bytes=memory_bytes)
        index = {m: i for i, m in enumerate(question.models)}
        for k, distance in enumerate(entry.distances):
            matrix = matrices[distance.metric]
            rows.extend(
                _metric_rows(question, method, distance.metric, k == 0, matrix, index, settings)
            )
    return rows


def _check_same_probe(question: DerivationQuestion, method: str, signatures: Sequence[Any]) -> None:
    probes = {sig.probe_sha256 for sig in signatures}
    if len(probes) > 1:
        raise InputError(
            f"question {question.name}: the {method} signatures were computed on "
            f"{len(probes)} different probes; its models must share one data set"
        )


def _metric_rows(question, method, metric, headline, matrix, index, settings) -> list[dict]:
    victim, references = question.victim, list(question.references)
    fit = _null(victim, references, matrix, index, settings)
    held_out = _held_out_check(victim, references, matrix, index, settings)
    rows = []
    for suspect in question.suspects:
        d = float(matrix[index[victim], index[suspect]])
        to_references = {r: float(matrix[index[suspect], index[r]]) for r in references}
        if not math.isfinite(d):
            judgement, verdict = None, NOT_COMPARABLE
        else:
            judgement = judge_member_and_new(fit, victim, d, to_references)
            verdict = judgement.verdict
        rows.append(
            _row(
                question,
                method,
                metric,
                headline,
                suspect,
                d,
                judgement,
                verdict,
                fit,
                held_out,
                settings,
                len(references),
            )  # fmt: skip
        )
    return rows


def _null(victim, references, matrix, index, settings):
    members = [victim, *references]
    pairs = list(itertools.combinations(members, 2))
    distances = [float(matrix[index[a], index[b]]) for a, b in pairs]
    return fit_null(pairs, distances, {m: m for m in members}, settings)


def _held_out_check(victim, references, matrix, index, settings) -> tuple[int, int]:
    """(false positives, references judged): each reference judged as a suspect against the
    null of the others."""
    false_positives = judged = 0
    for held in references:
        rest = [r for r in references if r != held]
        fit = _null(victim, rest, matrix, index, settings)
        d = float(matrix[index[victim], index[held]])
        if not math.isfinite(d):
            continue
        to_rest = {r: float(matrix[index[held], index[r]]) for r in rest}
        verdict = judge_member_and_new(fit, victim, d, to_rest).verdict
        if verdict == NOT_ENOUGH:
            continue
        judged += 1
        false_positives += verdict == "related"
    return false_positives, judged


def _row(question, method, metric, headline, suspect, d, judgement: Judgement | None, verdict,
         fit, held_out, settings, n_references) -> dict[str, Any]:  # fmt: skip
    expected = (
        math.exp(judgement.expected)
        if judgement and math.isfinite(judgement.expected)
        else math.nan
    )
    return {
        "question": question.name,
        "method": method,
        "metric": metric,
        "headline": headline,
        "victim": question.victim,
        "suspect": suspect,
        "distance": d,
        "expected_unrelated": expected,
        "ratio": d / expected if expected and math.isfinite(expected) else math.nan,
        "p_value": judgement.p_value if judgement else math.nan,
        "verdict": verdict,
        "alpha": settings.alpha,
        "null_model": settings.model,
        "reference_models": n_references,
        "reference_pairs": fit.n_pairs,
        "reference_families": fit.n_families,
        "df": fit.df,
        "held_out_false_positives": held_out[0],
        "held_out_judged": held_out[1],
    }


def write_derivation_table(rows: Sequence[Mapping[str, Any]], output: str | Path) -> Path:
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(output)


def derivation_stage(
    question: DerivationQuestion,
    signature_files: Sequence[str],
    output: str | Path,
    *,
    calibration: Mapping[str, Any] | None = None,
    memory_budget_mb: float | None = None,
) -> Path:
    """The ``derivation_question`` rule: signature files (method by method, in the order of
    :func:`signature_inputs`) -> the question's CSV."""
    from ..config import memory_budget_bytes

    files = signature_inputs(question, signature_files)
    rows = answer_derivation(
        question, files, calibration, memory_bytes=memory_budget_bytes(memory_budget_mb)
    )
    return write_derivation_table(rows, output)


def signature_inputs(
    question: DerivationQuestion, files: Sequence[str] | None = None, path_of=None
) -> dict[str, dict[str, str]]:
    """``{method: {model: file}}``: from ``path_of(method, model)`` (planning), or pairing the
    rule's ``files`` (method-major, models in question order) back up."""
    pairs = [(method, model) for method in question.methods for model in question.models]
    if files is None:
        if path_of is None:
            raise ValueError("signature_inputs needs files or path_of")
        files = [path_of(method, model) for method, model in pairs]
    if len(files) != len(pairs):
        raise InputError(f"question {question.name}: {len(files)} signature files for {len(pairs)}")
    out: dict[str, dict[str, str]] = {}
    for (method, model), path in zip(pairs, files, strict=True):
        out.setdefault(method, {})[model] = str(path)
    return out


def summary_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the table says, one line per suspect and method (headline metrics)."""
    lines = []
    for row in rows:
        if not row["headline"]:
            continue
        p = row["p_value"]
        p_text = f"p = {p:.2g}" if isinstance(p, float) and np.isfinite(p) else "no p-value"
        lines.append(
            f"{row['suspect']} vs {row['victim']} ({row['method']} {row['metric']}): "
            f"{row['verdict']} ({p_text}, alpha {row['alpha']}; distance {row['distance']:.4g} = "
            f"{row['ratio']:.2f} x what unrelated models give; null of "
            f"{row['reference_models']} references, {row['held_out_false_positives']} of "
            f"{row['held_out_judged']} held-out references called related)"
        )
    return lines
