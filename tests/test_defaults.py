"""One source per setting: the schema and the code agree on every setting they share.

The configuration schema holds the workflow's defaults; dataclasses that mirror a config section
(training recipes, stitching options, TRAK settings) hold the library's. Where both exist they
must agree, and the schema's lists of data sets, architectures and methods are the registries'.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from modelkin.attribution.settings import TrakSettings
from modelkin.config import schema, validate_config
from modelkin.datasets import DATASETS
from modelkin.models.registry import ARCHITECTURES
from modelkin.signatures import METHODS
from modelkin.stitching.options import StitchOptions
from modelkin.train import TrainRecipe

SCHEMA = schema()
PROPERTIES = SCHEMA["properties"]


def dataclass_defaults(cls) -> dict:
    out = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return out


def test_registry_lists_fill_the_schema():
    zoo = PROPERTIES["zoo"]["properties"]
    assert zoo["datasets"]["items"]["enum"] == list(DATASETS)
    assert zoo["architectures"]["items"]["enum"] == list(ARCHITECTURES)
    assert PROPERTIES["distances"]["properties"]["methods"]["items"]["enum"] == list(METHODS)
    assert PROPERTIES["modeldiff"]["properties"]["dataset"]["enum"] == list(DATASETS)
    for method in METHODS:  # every registered method has its config section
        assert method in PROPERTIES, method


def test_a_recipe_in_the_config_has_exactly_the_training_settings():
    assert set(SCHEMA["$defs"]["recipe"]["properties"]) == set(dataclass_defaults(TrainRecipe))


def test_stitching_options_and_their_documented_defaults_match_the_code():
    options = PROPERTIES["stitching"]["$defs"]["options"]["properties"]
    code = dataclass_defaults(StitchOptions)
    assert set(options) == set(code) - {"preset"}
    documented = 0
    for name, spec in options.items():
        match = re.search(r"\bdefault (?:is )?(\[[^\]]*\]|[^\s;:),]+)", spec.get("description", ""))
        if match:
            documented += 1
            value = yaml.safe_load(match.group(1))
            if isinstance(code[name], float) and isinstance(value, str):
                value = float(value)  # YAML 1.1 reads 1e-10 as a string
            assert value == code[name], name
    assert documented >= 30  # nearly every option states its default


def test_trak_settings_of_the_workflow_are_the_librarys():
    workflow = validate_config({})["modeldiff"]["trak"]
    library = dataclass_defaults(TrakSettings)
    shared = set(workflow) & set(library)
    assert shared >= {"proj_dim", "proj_type", "seed", "ridge", "rescale_inverse", "batch_size"}
    # ModelDiff scores without traker's out-to-loss weights (docs/modeldiff.md); the library
    # keeps traker's default so that it reproduces traker.
    differing = {key for key in shared if workflow[key] != library[key]}
    assert differing == {"out_to_loss"}


def test_calibration_defaults_are_the_schemas():
    from modelkin.distances.calibration import CalibrationSettings

    workflow = validate_config({})["distances"]["calibration"]
    assert workflow == dataclasses.asdict(CalibrationSettings())


@pytest.mark.parametrize("method", list(METHODS))
def test_probe_and_signature_settings_are_config_keys(method):
    section = validate_config({})[method]
    entry = METHODS[method]
    for key in (*entry.probe_keys, *entry.signature_keys, *entry.selection_keys):
        assert key in section, f"{method}.{key} is not a config key"
