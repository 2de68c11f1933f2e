"""Workflow configuration: schema validation with defaults, and the recipe of each zoo model."""

from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, MissingFileError

SCHEMA_RESOURCE = "config.schema.yaml"


class ConfigError(InputError):
    """A configuration that does not match the schema."""


def registry_enums() -> dict[str, list[str]]:
    """The lists the schema takes from modelkin's registries (its ``enum: "@name"`` entries)."""
    from .concordance import known_methods
    from .datasets import DATASETS
    from .models.registry import ARCHITECTURES
    from .signatures.registry import METHODS

    return {
        "datasets": list(DATASETS),
        "architectures": list(ARCHITECTURES),
        "signature_methods": list(METHODS),
        "reserved_task_names": [*DATASETS, "derived", "external"],
        "concordance_methods": known_methods(),
    }


def schema() -> dict[str, Any]:
    """The configuration schema, with its registry lists filled in."""
    text = resources.files("modelkin.schemas").joinpath(SCHEMA_RESOURCE).read_text()
    enums = registry_enums()

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: enums[v[1:]] if k == "enum" and isinstance(v, str) else fill(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    return fill(yaml.safe_load(text))


def _defaulting_validator():
    import jsonschema

    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, sub_schema):
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, sub_schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults in place and raise ConfigError naming the offending key and what is allowed."""
    validator = _defaulting_validator()(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            allowed = ""
            if err.validator == "enum":
                allowed = f" (allowed: {', '.join(map(str, err.validator_value))})"
            elif err.validator == "additionalProperties" and isinstance(
                err.schema.get("properties"), dict
            ):
                allowed = f" (allowed keys: {', '.join(err.schema['properties'])})"
            lines.append(f"config key {where}: {err.message}{allowed}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return config


@functools.lru_cache(maxsize=1)
def _schema_defaults() -> dict[str, Any]:
    return validate_config({})


def schema_default(*keys: str) -> Any:
    """The schema's default of one setting, e.g. ``schema_default("memory_budget_mb")`` or
    ``schema_default("modeldiff", "trak", "precision")`` (the one source of every default)."""
    value: Any = _schema_defaults()
    for key in keys:
        value = value[key]
    return copy.deepcopy(value)


def memory_budget_bytes(memory_budget_mb: float | None = None) -> int:
    """The memory budget in bytes: ``memory_budget_mb`` (the config's setting), else the schema's
    default."""
    mb = schema_default("memory_budget_mb") if memory_budget_mb is None else memory_budget_mb
    if not mb or mb <= 0:
        raise ConfigError(f"memory_budget_mb must be a positive number of MB, got {mb!r}")
    return int(float(mb) * 1_000_000)


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(config).__name__}")
    return validate_config(config)


def zoo_seeds(config: dict[str, Any]) -> list[tuple[int, int]]:
    """(init_seed, data_seed) pairs of the zoo."""
    out = []
    for seed in config["zoo"]["seeds"]:
        out.append((seed, seed) if isinstance(seed, int) else (seed["init"], seed["data"]))
    return out


def recipe_for(
    config: dict[str, Any],
    *,
    dataset: str,
    arch: str,
    algorithm: str,
    init_seed: int,
    data_seed: int,
) -> dict[str, Any]:
    """base, then the algorithm's differences, then every matching override, in order."""
    training = config["training"]
    if algorithm not in training["algorithms"]:
        raise ConfigError(
            f"training algorithm {algorithm!r} is not defined; "
            f"defined: {', '.join(training['algorithms'])}"
        )
    recipe = {**training["base"], **training["algorithms"][algorithm]}
    model = {
        "dataset": dataset,
        "arch": arch,
        "algorithm": algorithm,
        "init_seed": init_seed,
        "data_seed": data_seed,
    }
    for override in training["overrides"]:
        if all(model[k] == v for k, v in override.items() if k != "set"):
            recipe.update(override["set"])
    return recipe
