"""The stitching stage through Snakemake on the tiny workflow
(tests/config/tiny.yaml: a standard -> Madry run with the paper preset at
relu3, and a cross-task run into a donor trained on inverted digits)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from modelkin.checkpoint import read_metadata
from modelkin.io import file_sha256, read_json
from modelkin.stitching import load_stitched
from modelkin.stitching.evaluate import classification_metrics
from modelkin.stitching.tasks import load_task_split, parse_task

pytestmark = pytest.mark.workflow

ROBUST = "robust/digits.lenet.standard.i0-d0~digits.lenet.madry.i1-d1/relu3"
CROSS = "cross_task/digits.lenet.standard.i0-d0~digits_inverted.lenet.standard.i1-d1/relu2"


def stitching(workdir):
    return workdir / "results" / "stitching"


def test_one_result_per_run_with_its_configuration(tiny_workflow):
    runs = stitching(tiny_workflow) / "runs"
    assert sorted(p.relative_to(runs).as_posix() for p in runs.rglob("*.json")) == sorted(
        [f"{CROSS}.json", f"{ROBUST}.json"]
    )
    result = read_json(runs / f"{ROBUST}.json")
    options = result["options"]
    assert (options["preset"], options["init"], options["target_type"], options["epochs"]) == (
        "paper",
        "ps_inv",
        "soft_2",
        1,
    )
    model2 = tiny_workflow / result["model2"]["checkpoint"]
    assert result["model2"]["checkpoint"] == "results/models/digits/lenet/madry/i1-d1.safetensors"
    assert result["model2"]["sha256"] == file_sha256(model2) and result["model2"]["adversarial"]
    assert (
        result["provenance"]["experiment"] == "robust" and result["execution"]["front"] == "cached"
    )
    # A Madry donor switches robust evaluation on, at the data set's epsilon.
    after = result["evaluations"]["digits"]["after"]
    assert (
        result["robust_eval"] and after["robust_epsilon"] == 0.1 and after["robust_accuracy"] <= 1
    )


def test_task_donor_is_trained_on_the_transformed_task(tiny_workflow):
    path = (
        stitching(tiny_workflow)
        / "donors"
        / "digits_inverted"
        / "lenet"
        / "standard"
        / "i1-d1.safetensors"
    )
    meta = read_metadata(path)
    assert meta["task"] == {
        "name": "digits_inverted",
        "dataset": "digits",
        "transforms": ["invert"],
        "seed": 0,
    }
    assert meta["dataset"] == "digits" and meta["epochs"] == 2
    result = read_json(stitching(tiny_workflow) / "runs" / f"{CROSS}.json")
    assert result["eval_tasks"] == ["digits", "digits_inverted"]
    assert result["evaluations"]["digits_inverted"]["model2"]["accuracy"] > 0.3  # the donor
    assert result["evaluations"]["digits_inverted"]["task_model"] == "model2"
    assert result["evaluations"]["digits"]["task_model"] == "model1"


def test_summary_table_rows_and_relative_accuracy(tiny_workflow):
    table = pd.read_csv(stitching(tiny_workflow) / "summary.csv")
    assert len(table) == 3  # robust on digits; cross-task on digits and on inverted digits
    robust = table[table.experiment == "robust"].iloc[0]
    assert robust["after_relative_accuracy"] == pytest.approx(
        robust["after_accuracy"] / robust["model2_accuracy"]
    )
    assert (
        robust["robust_donor"]
        and 0 <= robust["after_robust_accuracy"] <= 1
        and robust["robust_epsilon"] == 0.1
    )
    cross = table[table.experiment == "cross_task"].set_index("eval_task")
    assert set(cross.index) == {"digits", "digits_inverted"}
    assert cross.loc["digits", "after_relative_to_task_model"] == pytest.approx(
        cross.loc["digits", "after_accuracy"] / cross.loc["digits", "model1_accuracy"]
    )
    for column in ("model1_vs_model2_cka", "after_cka", "ps_inv_cka", "after_mse"):
        assert table[column].between(0, 1e6).all(), column


def test_saved_stitched_model_reproduces_the_reported_accuracy(tiny_workflow, monkeypatch):
    monkeypatch.chdir(
        tiny_workflow
    )  # the result records checkpoint paths relative to the workflow directory
    result = read_json(stitching(tiny_workflow) / "runs" / f"{CROSS}.json")
    model = load_stitched(stitching(tiny_workflow) / "runs" / f"{CROSS}.json", "after")
    task = parse_task(
        "digits_inverted", {"digits_inverted": result["evaluations"]["digits_inverted"]["task"]}
    )
    test = load_task_split(tiny_workflow / "results" / "data" / "digits.safetensors", task, "test")
    accuracy = classification_metrics(model, test, device=torch.device("cpu"))["accuracy"]
    assert accuracy == pytest.approx(result["evaluations"]["digits_inverted"]["after"]["accuracy"])


def test_plots_are_written(tiny_workflow):
    for name in ("relative_accuracy", "cka_vs_accuracy", "robust_accuracy"):
        data = (stitching(tiny_workflow) / "plots" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
