"""Checks of the ``models`` and ``questions`` sections: weights that exist, sources of a known
form, questions whose models are planned and share a data set, enough references."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelkinError
from ._common import _catalog

# The forms of a model source, without importing anything (the import_model job imports).
SOURCE_FORMS = re.compile(
    r"^(checkpoint|torchvision:[A-Za-z0-9_.]+|timm:[A-Za-z0-9_.]+|(factory:)?"
    r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*)$"
)
SOURCE_HELP = (
    "torchvision:NAME, timm:NAME, package.module:callable (a factory) or checkpoint (a modelkin "
    "checkpoint)"
)


def _external(config: dict[str, Any]) -> Iterable[str]:
    for name, entry in (config.get("models") or {}).items():
        where = f"models.{name}"
        source = str(entry.get("source", ""))
        if not SOURCE_FORMS.match(source):
            yield f"{where}.source {source!r} is not a model source; use {SOURCE_HELP}"
        weights = Path(str(entry.get("weights", "")))
        if not weights.is_file():
            yield (
                f"{where}.weights: {weights} does not exist (relative paths are from the working "
                "directory); export the model's state dict there (torch.save(model.state_dict(), "
                "PATH)) or fix the path"
            )
    yield from _questions(config)


def _questions(config: dict[str, Any]) -> Iterable[str]:
    from ..questions.plan import derivation_questions

    if not (config.get("questions") or {}).get("derivation"):
        return
    catalog = _catalog(config)
    try:
        questions = derivation_questions(config, catalog.resolve)
    except ModelkinError as err:
        yield str(err)
        return
    calibration = (config.get("distances") or {}).get("calibration") or {}
    min_families = int(calibration.get("min_families", 5))
    for question in questions:
        where = f"questions.derivation.{question.name}"
        datasets = {m: catalog.dataset(m) for m in question.models}
        if len(set(datasets.values())) > 1:
            found = ", ".join(f"{m}: {d}" for m, d in datasets.items())
            yield (
                f"{where}: its models work on different data sets ({found}); signatures compare "
                "models on one probe, so bind them to one data set"
            )
        if 1 + len(question.references) < min_families:
            yield (
                f"{where} has {len(question.references)} references; with the victim they must "
                f"span distances.calibration.min_families = {min_families} independent models "
                f"for a calibrated verdict: add {min_families - 1 - len(question.references)} "
                "more independently trained models"
            )
