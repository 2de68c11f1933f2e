"""The similarity stage of the tiny workflow: per-pair tables and heatmaps, the summary, and
agreement of the workflow's numbers with the library run on the workflow's own checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from modelkin.similarity import COLUMNS, SUMMARY_COLUMNS, compare_checkpoints_layers, read_table

PAIR = "digits.lenet.standard.i0-d0__digits.lenet.standard.i1-d1"
LAYERS = ["relu2", "relu4"]
MEASURES = ["cka", "cca", "procrustes"]


@pytest.fixture(scope="module")
def results(tiny_workflow):
    return tiny_workflow / "results"


def test_pair_table_and_heatmap(results):
    table = read_table(results / "similarity" / f"{PAIR}.csv")
    assert list(table.columns) == ["model_a", "model_b", *COLUMNS, "split"]
    assert len(table) == len(LAYERS) ** 2 * len(MEASURES)
    assert set(table["model_a"]) == {"digits/lenet/standard/i0-d0"}
    assert set(table["model_b"]) == {"digits/lenet/standard/i1-d1"}
    assert (table["samples"][table["status"] != "skipped"] == 100).all()
    cka = table[table["measure"] == "cka"]
    assert (cka["status"] == "ok").all() and cka["value"].between(0, 1).all()
    procrustes = table[table["measure"] == "procrustes"]
    assert (
        procrustes["value"].between(0, np.sqrt(2)).all()
        and not procrustes["higher_is_similar"].any()
    )
    # relu2 has 1600 features for 100 images: its CCA cells are degenerate, NaN, and say why.
    cca = table[
        (table["measure"] == "cca")
        & ((table["layer_a"] == "relu2") | (table["layer_b"] == "relu2"))
    ]
    assert (cca["status"] == "degenerate").all() and cca["value"].isna().all()
    assert cca["reason"].str.contains("degrees of freedom").all()
    png = results / "similarity" / f"{PAIR}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (results / "logs" / "similarity" / f"{PAIR}.log").read_text().count(
        "compared 2 x 2 layers"
    ) == 1


def test_summary_has_every_layer_of_every_pair(results):
    summary = read_table(results / "similarity" / "summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary) == len(LAYERS) * len(MEASURES)
    assert set(summary["pair"]) == {PAIR}
    assert (summary["layer_a"] == summary["layer_b"]).all() and (
        summary["match"] == "same_name"
    ).all()
    table = read_table(results / "similarity" / f"{PAIR}.csv")
    diagonal = table[table["layer_a"] == table["layer_b"]].set_index(["measure", "layer_a"])[
        "value"
    ]
    for row in summary.itertuples():
        expected = diagonal[(row.measure, row.layer_a)]
        assert (np.isnan(row.value) and np.isnan(expected)) or row.value == pytest.approx(expected)


def test_workflow_values_match_the_library(results):
    models = results / "models" / "digits" / "lenet" / "standard"
    again = compare_checkpoints_layers(
        models / "i0-d0.safetensors",
        models / "i1-d1.safetensors",
        results / "data" / "digits.safetensors",
        LAYERS,
        LAYERS,
        ["cka", "procrustes"],
        n_images=100,
        split="test",
        device="cpu",
    )
    table = read_table(results / "similarity" / f"{PAIR}.csv")
    stored = table[table["measure"].isin(["cka", "procrustes"])]["value"].to_numpy()
    np.testing.assert_allclose(again["value"].to_numpy(), stored, rtol=1e-9)
