"""Stitching runs end to end: result files, the loadable
stitched model, CLI, workflow planning, summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from modelkin.checkpoint import save_checkpoint
from modelkin.cli import main
from modelkin.data import load_split
from modelkin.io import read_json
from modelkin.models import seeded_model
from modelkin.stitching import load_result, load_stitched, stitch_models
from modelkin.stitching.evaluate import classification_metrics
from modelkin.stitching.plan import (
    PlanError,
    checkpoint_for,
    planned_runs,
    run_datasets,
    task_donors,
)
from modelkin.stitching.report import plot_summary, summary_table
from modelkin.train import TrainRecipe, fit

FAST = {
    "epochs": 1,
    "batch_size": 32,
    "train_limit": 96,
    "measure_images": 32,
    "eval_steps": 2,
    "max_robust_images": 16,
}


def _trained(arch, seed, data, algorithm="standard", **recipe):
    model = seeded_model(arch, "digits", seed)
    rec = TrainRecipe(optimizer="adam", lr=3e-3, epochs=1, batch_size=32, train_limit=256, **recipe)
    fit(model, load_split(data, "train"), rec, data_seed=seed, device="cpu")
    return model, {
        "arch": arch,
        "dataset": "digits",
        "num_classes": 10,
        "algorithm": algorithm,
        "recipe": rec.to_dict(),
        "name": f"digits/{arch}/{algorithm}/i{seed}-d{seed}",
    }


@pytest.fixture(scope="module")
def donors(tmp_path_factory, digits_file):
    root = tmp_path_factory.mktemp("stitch-donors")
    paths = {}
    for key, (arch, seed, extra) in {
        "a": ("lenet", 0, {}),
        "b": ("lenet", 1, {}),
        "robust": ("lenet", 2, {"adversary": "madry", "attack_steps": 1}),
        "bn": ("tiny10", 0, {}),
    }.items():
        model, meta = _trained(arch, seed, digits_file, "madry" if extra else "standard", **extra)
        paths[key] = save_checkpoint(root / f"{key}.safetensors", model, meta)
    five = seeded_model("lenet", "digits", 0, num_classes=5)
    paths["five"] = save_checkpoint(
        root / "five.safetensors", five, {"arch": "lenet", "dataset": "digits", "num_classes": 5}
    )
    return paths


def test_identical_donors_stitch_perfectly_with_least_squares(tmp_path, donors, digits_file):
    out = tmp_path / "same.json"
    payload = stitch_models(
        donors["a"],
        donors["a"],
        "relu2",
        "relu2",
        output=out,
        data=[digits_file],
        options={**FAST, "init": "eye"},
        device="cpu",
    )
    ev = payload["evaluations"]["digits"]
    assert ev["before"]["accuracy"] == ev["model2"]["accuracy"] == ev["model1"]["accuracy"]
    assert ev["before"]["agreement_with_model2"] == 1.0
    assert payload["relative_accuracy"]["ps_inv"] == pytest.approx(1.0)
    assert ev["similarity"]["ps_inv_vs_model2"]["cka"] == pytest.approx(1.0, abs=1e-6)
    assert ev["similarity"]["ps_inv_vs_model2"]["mse"] == pytest.approx(0.0, abs=1e-6)
    _, tensors = load_result(out)
    # Channels that never fire on the training images carry no information: least squares gives them
    # weight 0 (minimum norm); every live channel maps onto itself.
    from modelkin.checkpoint import load_checkpoint
    from modelkin.stitching import layer_activation

    with torch.no_grad():
        acts = layer_activation(
            load_checkpoint(donors["a"]).model,
            "relu2",
            load_split(digits_file, "train", limit=96).x,
        )
    live = acts.amax(dim=(0, 2, 3)) > 0
    assert live.sum() >= 8
    torch.testing.assert_close(
        tensors["weight.ps_inv"][:, live], torch.eye(16)[:, live], rtol=0, atol=1e-4
    )
    assert tensors["weight.ps_inv"][:, ~live].abs().max() < 1e-6
    torch.testing.assert_close(tensors["weight.before"], torch.eye(16))
    assert payload["execution"] == {
        "end": "split",
        "end_reason": "layer relu2 is a cut point of LeNet",
        "front": "cached",
        "device": "cpu",
    }


def test_result_records_everything_and_reloads(tmp_path, donors, digits_file):
    out = tmp_path / "run.json"
    payload = stitch_models(
        donors["a"],
        donors["b"],
        "relu1",
        "relu2",
        output=out,
        data=tmp_path.parent / digits_file.parent.name,
        options={**FAST, "preset": "paper", "measures": ["cka", "mse", "procrustes"]},
        device="cpu",
    )
    saved = read_json(out)
    assert saved["options"]["init"] == "ps_inv" and saved["options"]["preset"] == "paper"
    assert saved["model1"]["sha256"] and saved["model2"]["checkpoint"] == str(donors["b"])
    assert saved["geometry"] == {
        "kind": "conv",
        "in_shape": [6, 28, 28],
        "out_shape": [16, 10, 10],
        "resize": "bilinear",
        "in_features": 6,
        "out_features": 16,
    }
    assert len(saved["training"]["step_loss"]) == 3 and saved["donors"]["mode"] == "eval"
    assert set(saved["evaluations"]["digits"]["similarity"]["after_vs_model2"]) == {
        "cka",
        "mse",
        "procrustes",
    }
    assert (
        saved["evaluations"]["digits"]["similarity"]["model1_vs_model2"]["mse"] is None
    )  # shapes differ
    assert (
        not saved["robust_eval"]
        and "robust_accuracy" not in saved["evaluations"]["digits"]["after"]
    )
    _, tensors = load_result(out)
    for variant in ("before", "after", "ps_inv"):
        assert tensors[f"weight.{variant}"].shape == (16, 6) and tensors[
            f"singular_values.{variant}"
        ].shape == (6,)
    test = load_split(digits_file, "test")
    for variant in ("before", "after", "ps_inv"):
        model = load_stitched(out, variant)
        accuracy = classification_metrics(model, test, device=torch.device("cpu"))["accuracy"]
        assert accuracy == pytest.approx(payload["evaluations"]["digits"][variant]["accuracy"])
    with pytest.raises(ValueError, match="not the model1"):
        load_stitched(out, checkpoints=(donors["b"], donors["b"]))


def test_robust_donor_switches_robust_evaluation_on(tmp_path, donors, digits_file):
    payload = stitch_models(
        donors["a"],
        donors["robust"],
        "relu3",
        "relu3",
        output=tmp_path / "r.json",
        data=[digits_file],
        options=FAST,
        device="cpu",
    )
    ev = payload["evaluations"]["digits"]
    assert payload["robust_eval"] and payload["model2"]["adversarial"]
    for key in ("model1", "model2", "before", "after", "ps_inv"):
        assert (
            0 <= ev[key]["robust_accuracy"] <= 1
            and ev[key]["robust_epsilon"] == 0.1
            and ev[key]["robust_images"] == 16
        )


def test_train_mode_donors_are_saved_with_their_statistics(tmp_path, donors, digits_file):
    out = tmp_path / "bn.json"
    payload = stitch_models(
        donors["bn"],
        donors["bn"],
        "relu3",
        "relu3",
        output=out,
        data=[digits_file],
        options={**FAST, "train_bn": True, "init": "eye"},
        device="cpu",
    )
    assert payload["donors"]["mode"] == "train" and payload["execution"]["front"] == "recomputed"
    _, tensors = load_result(out)
    assert any(k.startswith("donor2.") and k.endswith("running_mean") for k in tensors)
    test = load_split(digits_file, "test")
    after = classification_metrics(load_stitched(out, "after"), test, device=torch.device("cpu"))[
        "accuracy"
    ]
    assert after == pytest.approx(payload["evaluations"]["digits"]["after"]["accuracy"])
    # `before` uses the donors as trained, so eye init reproduces model 2 exactly.
    before = payload["evaluations"]["digits"]["before"]
    assert before["accuracy"] == payload["evaluations"]["digits"]["model2"]["accuracy"]


def test_cross_task_run_evaluates_on_both_tasks(tmp_path, donors, digits_file):
    payload = stitch_models(
        donors["a"],
        donors["b"],
        "relu3",
        "relu3",
        output=tmp_path / "x.json",
        data=[digits_file],
        options={**FAST, "ps_inv": False},
        eval_tasks=["digits:invert"],
        device="cpu",
    )
    assert list(payload["evaluations"]) == ["digits", "digits:invert"]
    assert set(payload["relative_accuracy"]) == {"before", "after"} and payload["ps_inv"] is None
    with pytest.raises(ValueError, match="no 'ps_inv' stitching layer"):
        load_stitched(tmp_path / "x.json", "ps_inv")
    inverted = payload["evaluations"]["digits:invert"]
    assert inverted["task"]["transforms"] == ["invert"] and inverted["task_model"] is None
    assert payload["evaluations"]["digits"]["task_model"] == "model2"
    with pytest.raises(ValueError, match="model 2's number of classes"):
        stitch_models(
            donors["a"],
            donors["five"],
            "relu3",
            "relu3",
            output=tmp_path / "y.json",
            data=[digits_file],
            options=FAST,
            device="cpu",
        )
    with pytest.raises(FileNotFoundError, match="prepare-data mnist"):
        stitch_models(
            donors["a"],
            donors["b"],
            "relu3",
            "relu3",
            output=tmp_path / "y.json",
            data=[digits_file],
            options=FAST,
            train_task="mnist",
            device="cpu",
        )


def test_summary_and_plots_from_results(tmp_path, donors, digits_file):
    paths = []
    for layer in ("relu2", "relu3"):
        out = tmp_path / f"{layer}.json"
        stitch_models(
            donors["a"],
            donors["robust"],
            layer,
            layer,
            output=out,
            data=[digits_file],
            options=FAST,
            device="cpu",
            provenance={"experiment": "demo", "pair": "a~robust"},
        )
        paths.append(out)
    table = summary_table(paths, tmp_path / "summary.csv")
    assert (
        list(table["layer1"]) == ["relu2", "relu3"]
        and (table["layer_index"].diff().dropna() > 0).all()
    )
    row = table.iloc[0]
    assert row["after_relative_accuracy"] == pytest.approx(
        row["after_accuracy"] / row["model2_accuracy"]
    )
    assert row["after_relative_to_task_model"] == pytest.approx(row["after_relative_accuracy"])
    assert {"model1_vs_model2_cka", "after_cka", "ps_inv_mse", "after_robust_accuracy"} <= set(
        table.columns
    )
    assert pd.read_csv(tmp_path / "summary.csv").shape == table.shape
    pngs = plot_summary(
        tmp_path / "summary.csv", tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    )
    assert all(p.stat().st_size > 1000 for p in pngs)


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_stitch_and_eval_stitch(tmp_path, donors, digits_file, capsys):
    out = tmp_path / "cli.json"
    argv = [
        "stitch",
        str(donors["a"]),
        str(donors["b"]),
        "relu2",
        "relu2",
        "-o",
        str(out),
        "--data-dir",
        str(digits_file.parent),
        "-e",
        "1",
        "-b",
        "32",
        "--train-limit",
        "64",
        "-i",
        "perm",
        "--target-type",
        "soft_1_plus_2",
        "--temperature",
        "2",
        "-lr",
        "0.01",
        "-wd",
        "0",
        "--l1",
        "0.001",
        "-r",
        "4",
        "--measure",
        "cka",
        "--measure-images",
        "16",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "relu2" in text and "ps_inv" in text and str(out) in text
    saved = read_json(out)
    opts = saved["options"]
    assert (
        opts["init"],
        opts["target_type"],
        opts["temperature"],
        opts["lr"],
        opts["low_rank"],
        opts["l1"],
    ) == ("perm", "soft_1_plus_2", 2.0, 0.01, 4, 0.001)
    assert (
        main(["eval-stitch", str(out), "ps_inv", "--data-dir", str(digits_file.parent), "--json"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["tasks"]["digits"]["accuracy"] == pytest.approx(
        saved["evaluations"]["digits"]["ps_inv"]["accuracy"]
    )
    assert (
        main(
            [
                "stitch",
                str(donors["a"]),
                str(donors["b"]),
                "relu9",
                "relu2",
                "-o",
                str(tmp_path / "bad.json"),
                "--data-dir",
                str(digits_file.parent),
            ]
        )
        == 1
    )
    assert "relu9" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Workflow planning


def _config(**stitching):
    from modelkin.config import validate_config

    return validate_config({"results": "res", "stitching": stitching})


def test_plan_expands_pairs_layers_presets_and_task_donors():
    config = _config(
        defaults={"epochs": 5, "init": "eye"},
        tasks={"inv": {"dataset": "digits", "transforms": ["invert"]}},
        experiments={
            "seeds": {
                "pairs": [["digits/lenet/standard/i0-d0", "digits/lenet/standard/i1-d1"]],
                "layers": ["relu1", ["pool1", "relu1"]],
                "preset": "paper",
                "options": {"lr": 0.1},
            },
            "cross": {
                "pairs": [["digits/lenet/standard/i0-d0", "inv/lenet/standard/i1-d1"]],
                "layers": ["relu3"],
                "eval_tasks": ["inv"],
            },
            "mixed": {"pairs": [["digits/lenet/standard/i0-d0", "digits/mlp/standard/i0-d0"]]},
        },
    )
    runs = {r.key: r for r in planned_runs(config)}
    seeds = runs["seeds/digits.lenet.standard.i0-d0~digits.lenet.standard.i1-d1/relu1"]
    # defaults, then the preset, then the experiment's options
    assert (
        seeds.options["epochs"],
        seeds.options["init"],
        seeds.options["target_type"],
        seeds.options["lr"],
    ) == (5, "ps_inv", "soft_2", 0.1)
    assert "seeds/digits.lenet.standard.i0-d0~digits.lenet.standard.i1-d1/pool1~relu1" in runs
    mixed = sorted(r.layers for r in runs.values() if r.experiment == "mixed")
    # `all`: names both models share that are cut points with stitchable shapes (relu1/relu2 are
    # feature maps in lenet but flat in mlp)
    assert mixed == ["fc1", "fc2", "fc3", "flatten"]
    cross = next(r for r in runs.values() if r.experiment == "cross")
    assert (
        checkpoint_for(cross.model2, config)
        == "res/stitching/donors/inv/lenet/standard/i1-d1.safetensors"
    )
    assert (
        checkpoint_for(cross.model1, config) == "res/models/digits/lenet/standard/i0-d0.safetensors"
    )
    assert run_datasets(cross, config) == ["digits"]
    assert [(d.task, d.arch, d.init_seed) for d in task_donors(config)] == [("inv", "lenet", 1)]


def test_plan_errors_name_the_problem():
    with pytest.raises(PlanError, match="neither a zoo id"):
        planned_runs(
            _config(experiments={"e": {"pairs": [["lenet-a", "lenet-b"]], "layers": ["relu1"]}})
        )
    with pytest.raises(ValueError, match="unknown task"):
        planned_runs(
            _config(
                experiments={
                    "e": {"pairs": [["digits/lenet/standard/i0-d0"] * 2], "eval_tasks": ["nope"]}
                }
            )
        )
    with pytest.raises(ValueError, match="cannot be combined"):
        planned_runs(
            _config(
                experiments={
                    "e": {
                        "pairs": [["digits/lenet/standard/i0-d0"] * 2],
                        "options": {"init": "eye", "low_rank": 2, "mask": "semi-match"},
                    }
                }
            )
        )
