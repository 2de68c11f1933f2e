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
    from .datasets import AUGMENTATIONS, DATASETS
    from .models.registry import ARCHITECTURES
    from .signatures.registry import METHODS

    return {
        "datasets": list(DATASETS),
        "augmentations": list(AUGMENTATIONS),
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


def validate_config(config: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Fill defaults in place; :class:`ConfigError` with one line per problem, each naming the key,
    its place and what is allowed (``source``: the file the configuration came from).

    The config's own data sets (``datasets:``) are registered first, so that every key naming a
    data set accepts them; what is wrong with their files is a config check
    (:func:`modelkin.data_sources.config_dataset_problems`)."""
    from .data_sources import register_config_datasets

    register_config_datasets(config)
    _questions_only(config, source)
    _modeldiff_form(config)
    validator = _defaulting_validator()(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = list(dict.fromkeys(line for err in errors for line in _describe(err)))
    if problems:
        raise ConfigError(problems_message(problems, source))
    return config


# What a stage's section says when a configuration with questions leaves it out: off.
QUESTION_ONLY_DEFAULTS: dict[str, dict[str, Any]] = {
    "zoo": {"datasets": []},
    "distances": {"methods": []},
    "modeldiff": {"run_by_default": False},
    "lineage": {"enabled": False},
    "concordance": {"enabled": False},
    "unlearning": {"enabled": False},
}


# Stage sections that may also be written under `questions:` (`questions: {similarity: ...}` is
# the similarity section), so that a configuration that only compares layers or stitches its own
# models turns the other stages off as every configuration with questions does.
QUESTION_SECTIONS = ("similarity", "stitching")


def _questions_only(config: dict[str, Any], source: str | None = None) -> None:
    """A configuration that asks questions studies only what it names: the stages whose sections
    it leaves out are off (not the schema's defaults, which train and compare a digits zoo).
    ``questions.similarity`` and ``questions.stitching`` move to the top level, where they are
    the stages' sections. Runs before the defaults are filled, so it sees what the file itself
    says."""
    if not isinstance(config, dict) or not config.get("questions"):
        return
    questions = config["questions"]
    if isinstance(questions, dict):
        for section in QUESTION_SECTIONS:
            if section not in questions:
                continue
            if section in config:
                raise ConfigError(
                    problems_message(
                        [
                            f"config keys questions.{section} and {section}: the same section "
                            "written twice; keep one (they mean the same)"
                        ],
                        source,
                    )
                )
            config[section] = questions.pop(section)
    for section, values in QUESTION_ONLY_DEFAULTS.items():
        if section not in config:
            config[section] = copy.deepcopy(values)


# The two forms of the modeldiff section: checkpoints the workflow trains (two training
# algorithms and seeds) or the user's own (models_a and models_b, names of the models section).
MODELDIFF_TRAINED_KEYS = ("algorithm_a", "algorithm_b", "seeds")
MODELDIFF_EXTERNAL_KEYS = ("models_a", "models_b")


def _modeldiff_form(config: dict[str, Any]) -> None:
    """Exactly one form of ``modeldiff``: checked before the defaults fill algorithm_a, algorithm_b
    and seeds, so it sees what the file itself says."""
    section = config.get("modeldiff") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        return
    external = [k for k in MODELDIFF_EXTERNAL_KEYS if k in section]
    if not external:
        return
    trained = [k for k in MODELDIFF_TRAINED_KEYS if k in section]
    if trained:
        raise ConfigError(
            f"modeldiff: give either your own checkpoints ({', '.join(external)}) or the "
            f"algorithms the workflow trains ({', '.join(trained)}), not both"
        )
    if len(external) == 1:
        missing = next(k for k in MODELDIFF_EXTERNAL_KEYS if k not in section)
        raise ConfigError(
            f"modeldiff.{external[0]} needs modeldiff.{missing}: ModelDiff compares two sets of "
            "checkpoints"
        )


def validate_recipe(recipe: Any, where: str = "recipe") -> dict[str, Any]:
    """A training recipe (``training.base``'s keys) checked against the schema's recipe
    definition: :class:`ConfigError` naming the setting and what is allowed."""
    import jsonschema

    full = schema()
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where} must be a mapping of training settings, not {recipe!r}")
    validator = jsonschema.Draft202012Validator({**full["$defs"]["recipe"], "$defs": full["$defs"]})
    errors = sorted(validator.iter_errors(recipe), key=lambda e: list(map(str, e.absolute_path)))
    problems = [
        line.replace("config key (top level)", where)
        .replace("config key ", f"{where} ")
        .replace("at the top level", f"in {where}")
        for err in errors
        for line in _describe(err)
    ]
    if problems:
        raise ConfigError("; ".join(dict.fromkeys(problems)))
    return recipe


def problems_message(problems: list[str], source: str | None = None) -> str:
    """One line for one problem; a count, then one indented line per problem, for more."""
    where = f" ({source})" if source else ""
    if len(problems) == 1:
        return f"invalid configuration{where}: {problems[0]}"
    return f"invalid configuration{where}, {len(problems)} problems:\n  " + "\n  ".join(problems)


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path)


# Schema keywords that rule an alternative out by the value's kind alone.
_MISMATCH = ("type", "const")


def _describe(err: Any) -> list[str]:
    """What one schema error means, as lines ``config key PATH: ...`` (see validate_config)."""
    if err.validator in ("oneOf", "anyOf") and err.context:
        # Describe the alternative that fits the value's type (e.g. the object form of a pair
        # with an unknown key), rather than "... is not valid under any of the given schemas"
        # with the whole value; if none fits, say which types or values would.
        branches: dict[Any, list[Any]] = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        mismatched = {
            key
            for key, subs in branches.items()
            if any(len(e.relative_schema_path) == 2 and e.validator in _MISMATCH for e in subs)
        }
        fitting = [e for key, subs in branches.items() if key not in mismatched for e in subs]
        if fitting:
            return _describe(max(fitting, key=lambda e: len(e.absolute_path)))
        wanted = [
            str(e.validator_value) if e.validator == "type" else repr(e.validator_value)
            for subs in branches.values()
            for e in subs
            if len(e.relative_schema_path) == 2 and e.validator in _MISMATCH
        ]
        return [
            f"config key {_key_path(err.absolute_path) or '(top level)'}: "
            f"{_short(repr(err.instance))} is not {' or '.join(dict.fromkeys(wanted))}"
        ]
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties")
        if isinstance(known, dict):
            place = f"in {where}" if where else "at the top level"
            allowed = ", ".join(known)
            return [
                f"config key {_key_path([*err.absolute_path, key])}: unknown key {place}; "
                f"allowed keys: {allowed}"
                for key in err.instance
                if key not in known
            ]
    if err.validator == "const":
        return [
            f"config key {where or '(top level)'}: {_short(repr(err.instance))} is not "
            f"{err.validator_value!r}"
        ]
    allowed = ""
    if err.validator == "enum":
        allowed = f" (allowed: {', '.join(map(str, err.validator_value))})"
    return [f"config key {where or '(top level)'}: {_short(err.message)}{allowed}"]


def _short(message: str, limit: int = 160) -> str:
    """A schema message whose quoted value may be a whole section, cut to one readable line."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last one,
    silently dropping the first)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: its keys may be overridden; SafeLoader merges them
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice (first on line {seen[key].line + 1}); "
                    "keep one",
                    mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML document at ``path``; :class:`ConfigError` naming the file, line and column of a
    syntax error (or a key given twice)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({err.reason})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(err.problem or err.context or "invalid YAML").split())
        raise ConfigError(f"{what} {path}{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{what} {path} is not valid YAML: {' '.join(str(err).split())}"
        ) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML config file, unvalidated (the workflow's ``configfile``)."""
    config = read_yaml(path)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of settings, not {type(config).__name__}"
        )
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
    """A config file, validated against the schema (defaults filled) and checked across fields
    (:mod:`modelkin.config_checks`)."""
    from .config_checks import check_config

    config = validate_config(read_config_file(path), source=str(path))
    check_config(config, source=str(path), check_device=False)
    return config


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
