"""Which derived models a configuration asks for (the ``derived`` section), without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ids import DerivedId, ModelId, ModelIdError, ZooId, parse_model_id
from .kinds import DerivationError, derived_dataset, resolve_settings


@dataclass(frozen=True)
class PlannedModel:
    """One derived model the workflow will build."""

    model_id: str
    derivation: str  # the configured name
    kind: str
    parent: str
    seed: int
    dataset: str
    arch: str
    root_algorithm: str
    settings: dict[str, Any]

    @property
    def profile(self) -> tuple[str, str, str]:
        """(dataset, arch, algorithm) of the zoo models
        that serve as its independent counterparts."""
        return self.dataset, self.arch, self.root_algorithm

    @property
    def id(self) -> DerivedId:
        model = parse_model_id(self.model_id)
        assert isinstance(model, DerivedId)
        return model


def seed_pairs(seeds: Any, config: dict[str, Any]) -> list[tuple[int, int]]:
    """(init, data) seed pairs from a seed list (ints
    or {init, data}); ``"all"``: the zoo's seeds."""
    from ..config import zoo_seeds

    if seeds == "all":
        return zoo_seeds(config)
    return [(s, s) if isinstance(s, int) else (int(s["init"]), int(s["data"])) for s in seeds]


def resolve_parents(entries: list[Any], config: dict[str, Any]) -> list[str]:
    """Parent model ids from config entries: model ids, or {dataset, arch, algorithm, seed | seeds}
    where ``seeds: all`` (the default) means every zoo seed."""
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(str(parse_model_id(entry)))
            continue
        entry = dict(entry)
        algorithm = entry.get("algorithm", "standard")
        if "seed" in entry and "seeds" in entry:
            raise DerivationError(f"parent entry {entry} gives both 'seed' and 'seeds'; use one")
        seeds = [entry["seed"]] if "seed" in entry else entry.get("seeds", "all")
        out.extend(
            str(ZooId(entry["dataset"], entry["arch"], algorithm, i, d))
            for i, d in seed_pairs(seeds, config)
        )
    return list(dict.fromkeys(out))


def planned_derivations(config: dict[str, Any]) -> list[PlannedModel]:
    """Every derived model of the ``derived`` config section, parents before their descendants."""
    section = config.get("derived") or {}
    default_parents = resolve_parents(section.get("parents") or [], config)
    default_seeds = section.get("seeds") or [0]
    planned: dict[str, PlannedModel] = {}
    for name, raw in (section.get("derivations") or {}).items():
        settings = resolve_settings(raw)
        parents = resolve_parents(raw["parents"], config) if raw.get("parents") else default_parents
        seeds = raw.get("seeds") or default_seeds
        for parent in parents:
            parent_id = parse_model_id(parent)
            if isinstance(parent_id, DerivedId):
                if parent not in planned:
                    raise DerivationError(
                        f"derivation {name!r} has parent {parent}, which no earlier derivation "
                        f"produces; list the derivation that makes it first (known: "
                        f"{', '.join(planned) or 'none'})"
                    )
                up = planned[parent]
                parent_dataset, parent_arch, root_algorithm = up.dataset, up.arch, up.root_algorithm
            elif isinstance(parent_id, ZooId):
                parent_dataset, parent_arch, root_algorithm = parent_id.profile
            else:
                raise ModelIdError(
                    f"derivation {name!r} has parent {parent}; derived models of external models "
                    "are not planned by the derived section"
                )
            dataset = derived_dataset(parent_dataset, settings)
            arch = settings.get("arch") or parent_arch
            for seed in seeds:
                model: ModelId = DerivedId(dataset, name, parent_id, int(seed))
                planned[str(model)] = PlannedModel(
                    str(model),
                    name,
                    settings["kind"],
                    parent,
                    int(seed),
                    dataset,
                    arch,
                    root_algorithm,
                    settings,
                )
    return list(planned.values())
