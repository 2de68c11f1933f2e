"""Layer similarity and stitching between your own models through Snakemake: three small
factory models (tests/tiny_external.py, untrained, seeded) on a user data set (digits as an RGB
image folder at 16x16), named in the models section and compared by name in the questions
section's similarity and stitching; a fourth entry reads the first model's weights again, so
its similarity with that model is exactly 1. Replacing one weights file plans only what depends
on that model."""

from __future__ import annotations

import os
import re
import time

import pandas as pd
import pytest
import torch

from helpers import REPO, run_snakemake
from modelkin.io import read_json

pytestmark = pytest.mark.workflow

CONFIG = """\
results: results
device: cpu
datasets:
  digits_rgb: {source: imagefolder, path: digits_rgb, size: [16, 16]}
models:
  a: &tiny {source: "tiny_external:tiny_resnet", weights: a.pt, dataset: digits_rgb}
  b: {<<: *tiny, weights: b.pt}
  c: {<<: *tiny, weights: c.pt}
  a_copy: {<<: *tiny, weights: a.pt}
questions:
  similarity:
    pairs:
      - {a: a, b: b, layers: [layer1.1, layer2.1]}
      - [external/a, a_copy]
    layers: [layer2.1]
    measures: [cka, procrustes]
    images: 200
  stitching:
    experiments:
      ext:
        pairs: [[a, c]]
        layers: [layer2.1]
        options: {epochs: 1, train_limit: 100, batch_size: 25, measure_images: 100}
"""
PAIR_AB = "external.a__external.b"
PAIR_SELF = "external.a__external.a_copy"
STITCH = "ext/external.a~external.c/layer2.1"
# The jobs import the factory from tests/.
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}


def save_weights(path, seed: int) -> None:
    from tiny_external import tiny_resnet

    torch.manual_seed(seed)
    torch.save(tiny_resnet().state_dict(), path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from modelkin.data_sources.digits_folder import write_digits_image_folder

    root = tmp_path_factory.mktemp("external")
    write_digits_image_folder(root / "digits_rgb", channels=3)
    for seed, name in enumerate("abc"):
        save_weights(root / f"{name}.pt", seed)
    (root / "config.yaml").write_text(CONFIG)
    start = time.perf_counter()
    run_snakemake(root, "--cores", "2", env=ENV)
    print(f"external workflow: {time.perf_counter() - start:.0f} s")
    return root


def test_only_your_models_are_imported_and_no_zoo_is_trained(workdir):
    models = workdir / "results" / "models"
    found = sorted(p.relative_to(models).as_posix() for p in models.rglob("*.safetensors"))
    assert found == [f"external/{n}.safetensors" for n in ("a", "a_copy", "b", "c")]


def test_similarity_of_named_layers(workdir):
    folder = workdir / "results" / "similarity"
    table = pd.read_csv(folder / f"{PAIR_AB}.csv")
    assert set(table.model_a) == {"external/a"} and set(table.model_b) == {"external/b"}
    # every layer of a with every layer of b, by each measure
    assert sorted(set(zip(table.layer_a, table.layer_b, strict=True))) == [
        ("layer1.1", "layer1.1"),
        ("layer1.1", "layer2.1"),
        ("layer2.1", "layer1.1"),
        ("layer2.1", "layer2.1"),
    ]
    assert (table.status == "ok").all() and (table.samples == 200).all()
    cka = table[table.measure == "cka"].value
    assert ((cka > 0) & (cka < 1)).all()  # two random networks: alike, not identical
    same = pd.read_csv(folder / f"{PAIR_SELF}.csv").set_index("measure").value
    assert same["cka"] == pytest.approx(1, abs=1e-6)
    assert same["procrustes"] == pytest.approx(0, abs=1e-4)
    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary.pair) == {PAIR_AB, PAIR_SELF}
    assert (folder / f"{PAIR_AB}.png").stat().st_size > 0


def test_stitching_between_your_models(workdir):
    result = read_json(workdir / "results" / "stitching" / "runs" / f"{STITCH}.json")
    assert result["provenance"]["models"] == ["external/a", "external/c"]
    assert result["model1"]["checkpoint"] == "results/models/external/a.safetensors"
    assert (result["model1"]["layer"], result["model2"]["layer"]) == ("layer2.1", "layer2.1")
    assert result["model1"]["arch"] == "factory:tiny_external:tiny_resnet"
    # a cut point of a traceable network: its end is the fx split
    assert result["execution"]["end"] == "split"
    assert result["train_task"]["dataset"] == "digits_rgb"
    assert len(result["training"]["epochs"]) == 1 and result["training"]["steps"] == 4
    evaluation = result["evaluations"]["digits_rgb"]
    assert evaluation["test_images"] == 597 and 0 <= evaluation["after"]["accuracy"] <= 1
    (row,) = pd.read_csv(workdir / "results" / "stitching" / "summary.csv").itertuples()
    assert (row.model1, row.model2, row.layer1) == ("external/a", "external/c", "layer2.1")


def test_wrong_layer_names_say_which_model_and_list_its_layers(workdir, monkeypatch, request):
    from modelkin.config import read_config_file
    from modelkin.data_sources import forget_config_datasets, register_config_datasets
    from modelkin.similarity import compare_checkpoints_layers
    from modelkin.stitching.run import stitch_models

    monkeypatch.chdir(workdir)
    register_config_datasets(read_config_file("config.yaml"))  # as a job does
    request.addfinalizer(forget_config_datasets)  # other tests go through every data set
    models = workdir / "results" / "models" / "external"
    data = workdir / "results" / "data" / "digits_rgb.safetensors"
    with pytest.raises(
        ValueError, match=r"model B \(external/b\): unknown layer.*'layer3'.*layer2"
    ):
        compare_checkpoints_layers(
            models / "a.safetensors", models / "b.safetensors", data, ["layer1.1"], ["layer3"],
            ["cka"], 8, name_a="external/a", name_b="external/b", device="cpu",
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"model 2 \(external/c, .*\) has no layer 'layer3'"):
        stitch_models(
            models / "a.safetensors", models / "c.safetensors", "layer2.1", "layer3",
            output=workdir / "wrong.json", data=[data], device="cpu",
        )  # fmt: skip


def planned_outputs(workdir) -> set[str]:
    """The files a dry run would make."""
    proc = run_snakemake(workdir, "-n", "--cores", "2", env=ENV)
    outputs = re.findall(r"^\s+output: (.+)$", proc.stdout, flags=re.MULTILINE)
    return {path for line in outputs for path in line.split(", ")}


def test_replacing_one_models_weights_reruns_only_what_depends_on_it(workdir):
    assert planned_outputs(workdir) == set()
    save_weights(workdir / "c.pt", 7)
    runs = "results/stitching/runs/" + STITCH
    assert planned_outputs(workdir) == {
        "results/models/external/c.safetensors",
        f"{runs}.json",
        f"{runs}.safetensors",
        "results/stitching/summary.csv",
        "results/stitching/plots/relative_accuracy.png",
        "results/stitching/plots/cka_vs_accuracy.png",
        "results/stitching/plots/robust_accuracy.png",
    }


def test_weights_replaced_by_an_older_file_are_imported_again(workdir):
    """The import follows the weights' content, not their timestamp (``cp -p`` of an older
    export keeps the old modification time)."""
    import os

    run_snakemake(workdir, "--cores", "2", env=ENV)  # up to date after the test before
    assert planned_outputs(workdir) == set()
    weights = workdir / "c.pt"
    before = weights.stat()
    save_weights(weights, 8)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "results/models/external/c.safetensors" in planned_outputs(workdir)
