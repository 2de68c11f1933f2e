"""The configuration checked completely before any job: model ids of every config list, algorithms,
layer names (a torch-free table, checked here against the real models), sizes, references,
device, paths; and what the loader says about bad YAML and unknown keys."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelkin.config import ConfigError, load_config, read_config_file, validate_config
from modelkin.config_checks import config_problems

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
ESCAPE = "digits/../../../../outside/x"


def tiny(**changes) -> dict:
    """The tiny configuration with ``changes`` applied (``a__b`` is key b of section a),
    validated."""
    config = copy.deepcopy(TINY)
    for key, value in changes.items():
        node = config
        *path, last = key.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return validate_config(config)


def problems(config: dict, **kwargs) -> list[str]:
    return config_problems(config, check_device=kwargs.get("check_device", False))


def test_the_shipped_configurations_have_no_problems():
    for path in (REPO / "config.yaml", REPO / "tests" / "config" / "tiny.yaml"):
        load_config(path)


def _set_stitch_pair(config, pair):
    config["stitching"]["experiments"]["robust"]["pairs"] = [pair]


# Every config list that names models, with a path-traversal id in it.
MODEL_LISTS = {
    "distances.extra_models": lambda c: c["distances"].update(extra_models=[ESCAPE]),
    "similarity.pairs": lambda c: c["similarity"].update(
        pairs=[[ESCAPE, "digits/lenet/standard/i0-d0"]]
    ),
    "similarity.pairs (object)": lambda c: c["similarity"].update(
        pairs=[{"a": "digits/lenet/standard/i0-d0", "b": ESCAPE}]
    ),
    "stitching.experiments": lambda c: _set_stitch_pair(c, [ESCAPE, "digits/lenet/madry/i1-d1"]),
    "concordance.models": lambda c: c["concordance"].update(
        models=[ESCAPE, "digits/lenet/standard/i0-d0", "digits/lenet/standard/i1-d1"]
    ),
    "concordance.parent": lambda c: c["concordance"].update(parent=ESCAPE),
    "gradfield.selection_models": lambda c: c["gradfield"].update(
        selection_models=[ESCAPE, "digits/lenet/standard/i0-d0"]
    ),
    "derived.parents": lambda c: c["derived"].update(parents=[ESCAPE]),
    "derived.derivations.finetune.parents": lambda c: c["derived"]["derivations"][
        "finetune"
    ].update(parents=[ESCAPE]),
    "modeldiff.arch": lambda c: c["modeldiff"].update(arch=".."),
}


@pytest.mark.parametrize("where", MODEL_LISTS)
def test_every_config_list_refuses_path_traversal(where):
    config = copy.deepcopy(TINY)
    MODEL_LISTS[where](config)
    found = problems(validate_config(config))
    key = where.split(" ")[0]
    assert any(p.startswith(key) or f" {key}" in p for p in found), found
    assert all("outside" not in p or "not a model id" in p for p in found), found


def test_every_zest_and_stitching_model_must_be_planned():
    found = problems(
        tiny(
            distances__extra_models=["digits/lenet/standard/i7-d7"],
            similarity__pairs=[["digits/lenet/trades/i0-d0", "digits/lenet/standard/i0-d0"]],
        )
    )
    assert found == [
        "distances.extra_models[0]: digits/lenet/standard/i7-d7 is not a zoo model of this "
        "configuration; its seeds i7-d7 are not in zoo.seeds (i0-d0, i1-d1)",
        "similarity.pairs[0] (a): digits/lenet/trades/i0-d0 is not a zoo model of this "
        "configuration; its algorithm 'trades' is not in zoo.algorithms (standard, madry)",
    ]
    config = copy.deepcopy(TINY)
    _set_stitch_pair(config, ["digits/lenet/foo/i0-d0", "digits/lenet/madry/i1-d1"])
    assert problems(validate_config(config)) == [
        "stitching.experiments.robust.pairs[0] (model 1): digits/lenet/foo/i0-d0 is not a zoo "
        "model of this configuration; its algorithm 'foo' is not in zoo.algorithms "
        "(standard, madry)"
    ]
    # A task donor names a configured task; its algorithm must be defined.
    config = copy.deepcopy(TINY)
    config["stitching"]["experiments"]["cross_task"]["pairs"] = [
        ["digits/lenet/standard/i0-d0", "digits_inverted/lenet/bogus/i1-d1"]
    ]
    assert "task donor digits_inverted/lenet/bogus/i1-d1 names algorithm 'bogus'" in " ".join(
        problems(validate_config(config))
    )


def test_several_problems_give_one_line_each():
    with pytest.raises(ConfigError) as info:
        from modelkin.config_checks import check_config

        check_config(
            tiny(
                zoo__algorithms=["standard", "nope"],
                zest__n_images=5000,
                similarity__layers=["relu9"],
            ),
            source="c.yaml",
            check_device=False,
        )
    lines = str(info.value).splitlines()
    assert lines[0].startswith("invalid configuration (c.yaml), ")
    assert any(
        line.strip().startswith("zoo.algorithms[1]: 'nope' is not defined") for line in lines
    )
    assert any(
        "zest.n_images: 5,000 images asked of digits's train split" in line for line in lines
    )
    assert any("lenet has no layer 'relu9'" in line for line in lines)


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"similarity__layers": ["relu9"]},
            r"similarity.pairs\[0\] \(a: .*lenet has no layer 'relu9'",
        ),
        (
            {"concordance__layer": {"mlp": "relu1"}},
            r"concordance.layer: no entry for lenet .* and no 'default'",
        ),
        ({"concordance__layer": "fc9"}, r"concordance.layer \(.*\): lenet has no layer 'fc9'"),
        (
            {"zest__n_images": 1201},
            r"zest.n_images: 1,201 images asked of digits's train split, which holds 1,200",
        ),
        ({"similarity__images": 598}, r"similarity.images: .*test split, which holds 597"),
        ({"gradfield__reference_points": 30}, r"gradfield.reference_points: 30 points kept of 24"),
        ({"modeldiff__trak": {"n_targets": 600}}, r"modeldiff.trak.n_targets: 600 images"),
        ({"concordance__images": 1000}, r"concordance.images: 1,000 images"),
        (
            {"derived__derivations": {"t": {"kind": "transfer", "classes": [5, 10]}}},
            r"derived.derivations.t.classes: class 10 does not exist in digits \(10 classes",
        ),
        (
            {
                "distances__on_insufficient_reference": "error",
                "distances__calibration": {"min_families": 5, "min_partners": 2},
            },
            r"distances: the reference of setting digits:lenet/standard~lenet/standard would "
            r"rest on 4 independent families of zoo models, fewer than "
            r"distances.calibration.min_families \(5\)",
        ),
        (
            {"training__overrides": [{"algorithm": "nope", "set": {"epochs": 1}}]},
            r"overrides\[0\].algorithm: 'nope' matches no model",
        ),
        ({"modeldiff__arch": "nonet"}, r"modeldiff.arch: 'nonet' is not an architecture"),
        (
            {"gradfield__selection_algorithm": "trades"},
            r"gradfield.selection_algorithm: 'trades' is not in zoo.algorithms",
        ),
    ],
)
def test_cross_field_problems_name_the_key(changes, message):
    found = problems(tiny(**changes))
    assert found, changes
    assert re.search(message, found[0]), found
    assert all(p.split(":")[0].split(" ")[0] == found[0].split(":")[0].split(" ")[0] for p in found)


def test_stitching_layers_are_checked_per_side():
    config = copy.deepcopy(TINY)
    config["stitching"]["experiments"]["cross_task"]["layers"] = [["relu2", "relu7"]]
    found = problems(validate_config(config))
    assert found == [
        "stitching.experiments.cross_task.layers (model 2: digits_inverted/lenet/standard/i1-d1): "
        "lenet has no layer 'relu7'; its layers on digits: conv1, relu1, pool1, conv2, relu2, "
        "pool2, flatten, fc1, relu3, fc2, relu4, fc3 (`modelkin layers lenet --dataset digits`)"
    ]


def test_device_cuda_needs_cuda_here(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    found = config_problems(tiny(device="cuda"), check_device=True)
    assert found == [
        "device: cuda, but CUDA_VISIBLE_DEVICES='' hides every GPU; set device: auto (CUDA when "
        "there is one) or cpu"
    ]
    assert config_problems(tiny(device="cuda"), check_device=False) == []


def test_results_must_be_a_directory(tmp_path):
    afile = tmp_path / "results"
    afile.write_text("not a directory")
    assert problems(tiny(results=str(afile))) == [
        f"results: {afile} is a file, not a directory; set results to a directory"
    ]


def test_unknown_keys_say_where_and_what_is_allowed():
    with pytest.raises(ConfigError) as info:
        validate_config({"zest": {"n_imagez": 3}})
    assert str(info.value) == (
        "invalid configuration: config key zest.n_imagez: unknown key in zest; allowed keys: "
        "split, n_images, n_samples, kernel_size, ratio, max_dist, seed, chunk_size, precision, "
        "build_for_zoo"
    )
    # Inside a oneOf (a pair given as an object): the object form's unknown key, not the whole
    # value "is not valid under any of the given schemas".
    with pytest.raises(
        ConfigError,
        match=r"similarity.pairs.0.layer: unknown key in "
        r"similarity.pairs.0; allowed keys: a, b, name",
    ):
        validate_config({"similarity": {"pairs": [{"a": "x", "b": "y", "layer": "z"}]}})
    with pytest.raises(
        ConfigError, match=r"zoo.seeds.0.x: unknown key in zoo.seeds.0; allowed keys: init, data"
    ):
        validate_config({"zoo": {"seeds": [{"init": 0, "data": 0, "x": 1}]}})


def test_yaml_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("zoo:\n  seeds: [0, 1\n  datasets: [digits]\n")
    with pytest.raises(ConfigError, match=rf"config file {path}, line 3, column 11: "):
        read_config_file(path)
    path.write_text("zest:\n  n_images: 4\nzest:\n  n_samples: 20\n")
    with pytest.raises(
        ConfigError,
        match=r"line 3, column 1: the key 'zest' is given twice "
        r"\(first on line 1\)",
    ):
        load_config(path)
    # YAML merge keys (`<<: *anchor`) merge, and a key they bring may be set again
    path.write_text("a: &r {x: 1, y: 2}\nb: {<<: *r, y: 3}\n")
    assert read_config_file(path) == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping of settings, not list"):
        load_config(path)


def test_layer_table_matches_the_real_models():
    """The torch-free table of named layers (modelkin/models/layer_names.json) is what the models
    built with torch have; regenerate it with `python -m modelkin.models.names` if this fails."""
    from modelkin.models.names import _table, build_table

    assert build_table() == _table()


def test_the_checks_import_no_torch():
    code = (
        "import sys, yaml\n"
        "from modelkin.config import load_config\n"
        f"load_config({str(REPO / 'tests' / 'config' / 'tiny.yaml')!r})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
