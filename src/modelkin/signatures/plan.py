"""Where the signature stage's files live, and what each of its jobs is given (torch-free).

Paths, for method M, data set D and model id X:

- ``probes/M/D.h5``: the probe every model of D is compared on;
- ``probes/M/D.candidates.h5`` and ``probes/M/candidates/X.h5``: for a method that selects its
  probe (ModelGiF), the candidates and the selecting models' signatures on them;
- ``signatures/M/X.h5``: the signature;
- ``signatures/M@D/X.h5``: the signature of a model of another data set on D's probe (a transfer
  to another data set, compared with its root's family: ``distances.cross_dataset``).
"""

from __future__ import annotations

from typing import Any

from ..catalog import ModelCatalog
from ..errors import InputError
from .registry import get_method


def probe_path(results: str, method: str, dataset: str) -> str:
    return f"{results}/probes/{method}/{dataset}.h5"


def candidates_path(results: str, method: str, dataset: str) -> str:
    return f"{results}/probes/{method}/{dataset}.candidates.h5"


def candidate_signature_path(results: str, method: str, model: str) -> str:
    return f"{results}/probes/{method}/candidates/{model}.h5"


def signature_path(results: str, method: str, model: str, probe: str | None = None) -> str:
    """``probe``: the data set of the probe, where it is not the model's own."""
    folder = method if probe is None else f"{method}@{probe}"
    return f"{results}/signatures/{folder}/{model}.h5"


def method_section(config: dict[str, Any], method: str) -> dict[str, Any]:
    return dict(config.get(method) or {})


def probe_settings(config: dict[str, Any], method: str) -> dict[str, Any]:
    return get_method(method).settings_from_config(method_section(config, method), "probe")


def default_settings(method: str, part: str) -> dict[str, Any]:
    """The configuration's defaults (the schema's) for one part of a method's settings: what a
    probe or signature made outside the workflow uses unless told otherwise."""
    entry = get_method(method)
    section = entry.config_defaults()
    if part == "probe":
        return entry.standalone_probe_settings(section)
    return entry.settings_from_config(section, part)


def selection_settings(config: dict[str, Any], method: str) -> dict[str, Any]:
    return get_method(method).settings_from_config(method_section(config, method), "selection")


def signature_job(config: dict[str, Any], method: str, model: str) -> dict[str, Any]:
    """What the ``signature`` rule passes to :func:`modelkin.signatures.compute.signature_file`."""
    section = method_section(config, method)
    return {
        "method": method,
        "name": model,
        "settings": get_method(method).settings_from_config(section, "signature"),
        "chunk_size": section.get("chunk_size"),
        "device": config.get("device", "auto"),
    }


def selection_models(config: dict[str, Any], catalog: ModelCatalog, method: str, dataset: str):
    """The models whose signatures on the candidates select a method's probe (at least two):
    ``<method>.selection_models``, else the models trained for the selection alone."""
    section = method_section(config, method)
    if section.get("selection_models"):
        where = f"{method}.selection_models"
        models = [m for m in catalog.resolve_all(section["selection_models"], where)
                  if catalog.dataset(m) == dataset]  # fmt: skip
    else:
        models = [str(m) for m in catalog.selection_models if m.dataset == dataset]
    if len(models) < 2:
        raise InputError(
            f"{method} probe selection for {dataset} needs at least two models; it has {models}. "
            f"List model ids under {method}.selection_models or seeds under "
            f"{method}.selection_seeds"
        )
    victim = section.get("selection_victim")
    if section.get("selection_criterion") == "victim":
        if not victim:
            raise InputError(f"{method}.selection_criterion victim needs {method}.selection_victim")
        victim = catalog.resolve(victim, f"{method}.selection_victim")
        if catalog.dataset(victim) == dataset and victim not in models:
            models = [victim, *models]  # the victim first: select_probe reads it from there
    return models
