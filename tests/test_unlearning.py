"""Unlearning verification (modelkin.unlearning): trajectories on tiny settings, plan and table.

The science the stage must show (METHODS.md section 5): approximate unlearning stays close to the
original while the forgotten class's accuracy falls; exact retraining without the class is far
from it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from modelkin.catalog import ModelCatalog
from modelkin.checkpoint import load_checkpoint
from modelkin.config import validate_config
from modelkin.data import load_split
from modelkin.errors import InputError
from modelkin.signatures.gradfield.probe import load_gradfield_probe
from modelkin.signatures.store import read_probe
from modelkin.signatures.zest.extract import load_zest_probe
from modelkin.train import train_checkpoint
from modelkin.unlearning import (
    INDEPENDENT,
    METHOD_KINDS,
    Measurement,
    independent_rows,
    plot_trajectory,
    trajectory_table,
    unlearning_plan,
    unlearning_probe_file,
    unlearning_trajectory,
)

PARENT_ID = "digits/mlp/standard/i0-d0"
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 3, "batch_size": 32, "train_limit": 600}
FORGET = 3
SIGNATURES = {"zest": {"chunk_size": 256}, "gradfield": {"target": "label", "n_steps": 8}}


@pytest.fixture(scope="module")
def models(digits_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearning")
    paths = {}
    for seed in (0, 1):
        name = f"digits/mlp/standard/i{seed}-d{seed}"
        paths[name] = train_checkpoint(
            root / f"i{seed}.safetensors",
            prepared=digits_file,
            arch="mlp",
            algorithm="standard",
            recipe=RECIPE,
            init_seed=seed,
            data_seed=seed,
            extra_meta={"name": name},
            device="cpu",
        )
    return paths


def make_probes(prepared, root, classes):
    zest = unlearning_probe_file(
        prepared,
        root / "zest.h5",
        method="zest",
        classes=classes,
        split="train",
        n_images=6 if classes else 12,
        n_samples=60,
        kernel_size=3,
        ratio=0.2,
        max_dist=200,
        seed=0,
    )
    gradfield = unlearning_probe_file(
        prepared,
        root / "gradfield.h5",
        method="gradfield",
        classes=classes,
        split="train",
        n_points=500 if classes else 24,  # with the class: more than it has, so every image of it
    )
    return {"zest": zest, "gradfield": gradfield}


@pytest.fixture(scope="module")
def probes(digits_file, tmp_path_factory):
    """Probes of every class (``probe: all``)."""
    return make_probes(digits_file, tmp_path_factory.mktemp("unlearning-probes"), None)


@pytest.fixture(scope="module")
def trajectories(models, probes, digits_file):
    parent = load_checkpoint(models[PARENT_ID])
    measure = Measurement.of(
        parent.model,
        signature_methods=["zest", "gradfield"],
        probes={m: read_probe(p) for m, p in probes.items()},
        settings=SIGNATURES,
        test=load_split(digits_file, "test"),
        train=load_split(digits_file, "train", limit=RECIPE["train_limit"]),
        forget_class=FORGET,
        device=torch.device("cpu"),
    )
    out = {}
    for method, kind in (
        ("relabel", "unlearn_relabel"),
        ("ascent", "unlearn_ascent"),
        ("retrain", "retrain_without_class"),
    ):
        settings = {"kind": kind, "forget_class": FORGET, "recipe": {"epochs": 2}}
        rows, meta = unlearning_trajectory(
            parent,
            measure,
            method=method,
            settings=settings,
            prepared=digits_file,
            model_id=f"derived/digits/{kind}/{PARENT_ID}/s0",
            parent_id=PARENT_ID,
        )
        out[method] = pd.DataFrame(rows)
        assert meta["epochs"] == 2
    other = load_checkpoint(models["digits/mlp/standard/i1-d1"])
    out[INDEPENDENT] = pd.DataFrame(independent_rows({"i1-d1": other.model}, measure))
    return out


def test_probes_hold_the_first_images_of_every_class_or_of_the_forgotten_one(
    probes, digits_file, tmp_path
):
    train = load_split(digits_file, "train")
    zest = load_zest_probe(probes["zest"])
    np.testing.assert_array_equal(zest.images, train.x[:12].numpy())
    assert load_gradfield_probe(probes["gradfield"]).params["classes"] is None
    forget = make_probes(digits_file, tmp_path, [FORGET])
    zest = load_zest_probe(forget["zest"])
    assert zest.n_images == 6 and zest.params["classes"] == [FORGET]
    first = np.flatnonzero(train.y.numpy() == FORGET)[:6]
    np.testing.assert_array_equal(zest.images, train.x[first].numpy())
    gradfield = load_gradfield_probe(forget["gradfield"])
    assert (gradfield.labels == FORGET).all()
    assert len(gradfield.labels) == int((train.y == FORGET).sum())  # capped at the class's images


def test_every_epoch_is_measured_from_the_original(trajectories):
    for method in ("relabel", "ascent", "retrain"):
        rows = trajectories[method]
        assert rows["epoch"].tolist() == [0, 1, 2], method
        assert {"zest_cos", "zest_l2", "gradfield_cos", "gradfield_zscore"} <= set(rows.columns)
        assert rows["forget_accuracy"].between(0, 1).all()
        assert (
            rows["model"].tolist() == [f"derived/digits/{METHOD_KINDS[method]}/{PARENT_ID}/s0"] * 3
        )
    # epoch 0 of approximate unlearning is the original itself: every distance 0
    for method in ("relabel", "ascent"):
        start = trajectories[method].iloc[0]
        for column in ("zest_cos", "zest_l2", "zest_l1", "gradfield_cos"):
            assert abs(start[column]) < 1e-5, (method, column)
        assert start["forget_accuracy"] > 0.8
        assert np.isnan(start["train_loss"])  # nothing trained yet
        assert not np.isnan(trajectories[method].iloc[1]["train_loss"])


def test_approximate_unlearning_forgets_and_retraining_looks_independent(trajectories):
    relabel = trajectories["relabel"].iloc[-1]
    ascent = trajectories["ascent"].iloc[-1]
    retrain = trajectories["retrain"].iloc[-1]
    independent = trajectories[INDEPENDENT].iloc[0]
    before = trajectories["relabel"].iloc[0]["forget_accuracy"]
    for row in (relabel, ascent, retrain):
        assert row["forget_accuracy"] < before / 2
        assert row["forget_train_accuracy"] < 0.2
        assert row["retain_accuracy"] > 0.75
    assert retrain["forget_accuracy"] < 0.05
    # the retrained model is at least as far from the original as an unrelated model, and
    # further than either approximately unlearned copy under ModelGiF
    for column in ("zest_cos", "gradfield_cos"):
        assert retrain[column] > independent[column], column
    assert retrain["gradfield_cos"] > 1.3 * max(relabel["gradfield_cos"], ascent["gradfield_cos"])
    # epoch 0 of retraining is a fresh network: far from the original, and it then approaches
    # the original only as far as the shared data allow
    start = trajectories["retrain"].iloc[0]
    assert start["retain_accuracy"] < 0.3 and start["gradfield_cos"] > retrain["gradfield_cos"]


def test_rows_carry_the_lineage_relation_and_no_retrained_model_is_a_positive(trajectories):
    expected = {
        "relabel": ("derived-by-unlearn_relabel", True),
        "ascent": ("derived-by-unlearn_ascent", True),
        "retrain": ("retrained", False),
        INDEPENDENT: ("independent", False),
    }
    for method, (relation, positive) in expected.items():
        rows = trajectories[method]
        assert set(rows["relation"]) == {relation}, method
        assert set(rows["positive"]) == {positive}, method


def test_table_adds_distances_relative_to_independent_models(trajectories, tmp_path):
    paths = []
    for name, frame in trajectories.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    table = trajectory_table(paths, tmp_path / "trajectory.csv")
    assert len(table) == 3 * 3 + 1
    assert table["unlearning"].tolist() == ["relabel"] * 3 + ["ascent"] * 3 + ["retrain"] * 3 + [
        INDEPENDENT
    ]
    assert not any("seconds" in c or "time" in c for c in table.columns)  # no timings stored
    independent = table[table["unlearning"] == INDEPENDENT]
    assert independent["zest_cos_relative"].tolist() == pytest.approx([1.0])
    retrain = table[table["unlearning"] == "retrain"]
    assert (retrain["gradfield_cos_relative"] > 1).all()
    first = (tmp_path / "trajectory.csv").read_bytes()
    trajectory_table(paths, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == first  # byte-reproducible
    plot_trajectory(tmp_path / "trajectory.csv", tmp_path / "trajectory.png")
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "trajectory.png").stat().st_size > 10_000
    with pytest.raises(InputError, match="unlearning.methods"):
        trajectory_table([], tmp_path / "none.csv")


def test_plan_paths_jobs_and_its_errors():
    config = validate_config(
        {
            "zoo": {"architectures": ["lenet"], "seeds": [0, 1, 2]},
            "unlearning": {
                "parent": "digits/lenet/standard/i0-d0",
                "methods": ["relabel", "retrain"],
                "epochs": 2,
            },
        }
    )
    plan = unlearning_plan(config, ModelCatalog(config))
    assert plan is not None and plan.parent == "digits/lenet/standard/i0-d0"
    assert plan.independent == ("digits/lenet/standard/i1-d1", "digits/lenet/standard/i2-d2")
    assert plan.parts == ["relabel", "retrain", INDEPENDENT]
    assert plan.probe == "forget_class"  # the schema's default
    assert plan.table_path == "results/unlearning/trajectory.csv"
    assert plan.plot_path == "results/unlearning/trajectory.png"
    assert plan.trajectory_path("relabel") == "results/unlearning/relabel.csv"
    assert plan.record_path("retrain") == "results/unlearning/retrain.json"
    assert plan.probe_files == {
        "zest": "results/unlearning/probes/zest.h5",
        "gradfield": "results/unlearning/probes/gradfield.h5",
    }
    assert plan.probe_settings["gradfield"] == {"split": "train", "n_points": 128, "classes": [3]}
    assert plan.probe_settings["zest"]["classes"] == [3]
    assert plan.signature_settings["gradfield"]["target"] == "label"
    job = plan.trajectory_job("retrain")
    assert job["settings"] == {
        "kind": "retrain_without_class",
        "forget_class": 3,
        "recipe": {"epochs": 2},
    }
    assert job["model_id"] == "derived/digits/retrain_without_class/digits/lenet/standard/i0-d0/s0"
    assert job["probes"] == plan.probe_files and job["forget_class"] == 3
    assert plan.trajectory_job("relabel")["settings"]["kind"] == "unlearn_relabel"
    assert plan.independent_job()["models"] == list(plan.independent)
    config["unlearning"].update(probe="all", lr_factor=0.25)
    plan = unlearning_plan(config, ModelCatalog(config))
    assert plan.probe_settings["gradfield"] == {"split": "train", "n_points": 128, "classes": None}
    assert plan.signature_settings["gradfield"]["target"] == "label"
    assert plan.derivation_settings("relabel")["lr_factor"] == 0.25
    assert "lr_factor" not in plan.derivation_settings("retrain")  # the original's recipe
    config["unlearning"]["enabled"] = False
    assert unlearning_plan(config, ModelCatalog(config)) is None
    config["unlearning"].update(enabled="auto", forget_class=10)
    with pytest.raises(InputError, match="forget_class: class 10 does not exist in digits"):
        unlearning_plan(config, ModelCatalog(config))
    config["unlearning"].update(forget_class=3, parent="digits/lenet/standard/i7-d7")
    with pytest.raises(InputError, match="unlearning.parent.*not a zoo model"):
        unlearning_plan(config, ModelCatalog(config))
    config["unlearning"]["parent"] = "digits/lenet/standard/i0-d0"
    config["zoo"]["seeds"] = [0]
    assert unlearning_plan(config, ModelCatalog(config)) is None  # auto: nothing to compare with
    config["unlearning"]["enabled"] = True
    with pytest.raises(InputError, match="independent: false"):
        unlearning_plan(config, ModelCatalog(config))
    config["unlearning"]["independent"] = False
    assert unlearning_plan(config, ModelCatalog(config)).parts == ["relabel", "retrain"]


def test_the_original_defaults_to_the_first_derived_parent():
    config = validate_config(
        {
            "zoo": {"architectures": ["lenet", "mlp"], "seeds": [0, 1]},
            "derived": {"parents": ["digits/mlp/standard/i1-d1"]},
        }
    )
    plan = unlearning_plan(config, ModelCatalog(config))
    assert plan.parent == "digits/mlp/standard/i1-d1"
    assert plan.independent == ("digits/mlp/standard/i0-d0",)
    assert plan.methods == ("relabel", "ascent", "retrain")
    config["derived"]["parents"] = []
    assert unlearning_plan(config, ModelCatalog(config)) is None  # auto: no original named


def test_planning_tables_and_plots_import_no_torch():
    code = (
        "import sys, modelkin.unlearning, modelkin.unlearning.plan, modelkin.unlearning.table; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
