"""Which models the distance stage compares, and what its jobs are given (torch-free)."""

from __future__ import annotations

from typing import Any

from ..catalog import ModelCatalog


def distance_models(config: dict[str, Any], catalog: ModelCatalog) -> list[str]:
    """The derived models, the zoo models of their settings (``include_zoo: auto``) or every zoo
    model (``all``), the reference models and ``distances.extra_models``; each once."""
    settings = config.get("distances") or {}
    zoo = catalog.zoo_of()
    if settings.get("include_zoo", "auto") == "all":
        chosen = zoo
    else:
        planned = catalog.derived.values()
        profiles = {m.profile for m in planned}
        profiles |= {catalog.profile(m.parent) for m in planned if catalog.is_zoo(m.parent)}
        chosen = [m for m in zoo if catalog.profile(m) in profiles]
    extra = catalog.resolve_all(settings.get("extra_models") or [], "distances.extra_models")
    references = [str(m) for m in catalog.reference_models]
    return list(dict.fromkeys(chosen + list(catalog.derived) + references + extra))


def cross_dataset_guests(
    config: dict[str, Any], catalog: ModelCatalog, method: str
) -> list[tuple[str, str]]:
    """(model, probe's data set) of each compared model that works on another data set than its
    root (a transfer to another data set and its own derived models), on the root's data set's
    probe, so that it is compared with its root's family and that data set's models
    (``distances.cross_dataset``; only for a method that reads a probe)."""
    from ..signatures.registry import get_method

    if not (config.get("distances") or {}).get("cross_dataset", True):
        return []
    if get_method(method).probe_kind is None:
        return []
    guests = []
    for model in distance_models(config, catalog):
        if model in catalog.derived:
            root = catalog.derived[model].id.root
            home, probe = catalog.dataset(model), catalog.dataset(root)
            if home != probe:
                guests.append((model, probe))
    return guests


def distance_signatures(config: dict[str, Any], catalog: ModelCatalog, method: str) -> list[str]:
    """The ``distance_table`` rule's signature files: each compared model's own, then each
    guest's on its root's probe (the order of :func:`distance_job`'s models)."""
    from ..signatures.plan import signature_path

    own = [signature_path(catalog.results, method, m) for m in distance_models(config, catalog)]
    guests = cross_dataset_guests(config, catalog, method)
    return own + [signature_path(catalog.results, method, m, probe) for m, probe in guests]


def distance_job(config: dict[str, Any], catalog: ModelCatalog, method: str) -> dict[str, Any]:
    """What the ``distance_table`` rule passes to
    :func:`modelkin.distances.tables.distance_stage`: the models, in the order of the rule's
    signature files (each compared model's own, then the guests' on their roots' probes)."""
    settings = config.get("distances") or {}
    guests = [model for model, _ in cross_dataset_guests(config, catalog, method)]
    return {
        "models": distance_models(config, catalog) + guests,
        "calibration": dict(settings["calibration"]),
        "on_insufficient_reference": settings["on_insufficient_reference"],
        "memory_budget_mb": config.get("memory_budget_mb"),
    }
