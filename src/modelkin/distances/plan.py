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


def distance_job(config: dict[str, Any], catalog: ModelCatalog) -> dict[str, Any]:
    """What the ``distance_table`` rule passes to
    :func:`modelkin.distances.tables.distance_stage`."""
    settings = config.get("distances") or {}
    return {
        "models": distance_models(config, catalog),
        "calibration": dict(settings["calibration"]),
        "on_insufficient_reference": settings["on_insufficient_reference"],
        "memory_budget_mb": config.get("memory_budget_mb"),
    }
