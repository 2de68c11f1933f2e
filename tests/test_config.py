import copy
from pathlib import Path

import pytest
import yaml

from modelkin.config import ConfigError, load_config, recipe_for, validate_config, zoo_seeds

REPO = Path(__file__).resolve().parents[1]


def test_shipped_configs_are_valid():
    # examples/your-models/config.yaml names files that its own script writes first
    study = REPO / "examples" / "extraction-budget" / "config.yaml"
    for path in (REPO / "config.yaml", REPO / "tests" / "config" / "tiny.yaml", study):
        load_config(path)


def test_defaults_fill_omitted_keys():
    config = validate_config({})
    assert config["device"] == "auto" and config["zoo"]["datasets"] == ["digits"]
    assert config["evaluation"]["steps"] == 20


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"device": "gpu"}, r"device: 'gpu' is not one of .*allowed: auto, cpu, cuda"),
        ({"zoo": {"architectures": ["alexnet"]}}, r"zoo.architectures.0: 'alexnet' is not one of"),
        ({"zoo": {"seeds": [-1]}}, r"zoo.seeds.0"),
        ({"bogus": 1}, r"config key bogus: unknown key at the top level; allowed keys: data_root"),
        (
            {"training": {"base": {"epochs": 0}}},
            r"training.base.epochs: 0 is less than the minimum of 1",
        ),
        (
            {"training": {"base": {"optimiser": "sgd"}}},
            r"training.base.optimiser: unknown key in training.base; allowed keys: optimizer, lr",
        ),
        ({"evaluation": {"steps": "many"}}, r"evaluation.steps: 'many' is not of type 'integer'"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(bad, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(copy.deepcopy(bad))


def test_recipes_layer_base_algorithm_and_overrides():
    config = validate_config(
        {
            "zoo": {"seeds": [0, {"init": 3, "data": 7}]},
            "training": {
                "base": {"epochs": 5, "lr": 0.1},
                "algorithms": {"standard": {}, "madry": {"adversary": "madry", "epochs": 8}},
                "overrides": [{"algorithm": "madry", "init_seed": 3, "set": {"lr": 0.01}}],
            },
        }
    )
    assert zoo_seeds(config) == [(0, 0), (3, 7)]
    kw = {"dataset": "digits", "arch": "lenet"}
    assert recipe_for(config, algorithm="standard", init_seed=3, data_seed=7, **kw) == {
        "epochs": 5,
        "lr": 0.1,
    }
    assert recipe_for(config, algorithm="madry", init_seed=3, data_seed=7, **kw)["lr"] == 0.01
    assert recipe_for(config, algorithm="madry", init_seed=0, data_seed=0, **kw)["lr"] == 0.1
    with pytest.raises(ConfigError, match="not defined; defined: standard, madry"):
        recipe_for(config, algorithm="trades", init_seed=0, data_seed=0, **kw)


def test_non_mapping_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
