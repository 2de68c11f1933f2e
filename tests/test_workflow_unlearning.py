"""The unlearning verification stage through Snakemake, on the tiny workflow
(tests/config/tiny.yaml: the original digits/lenet/standard/i0-d0, the first of derived.parents;
relabel, ascent and retrain for 2 epochs each on the probes of class 3; the independent zoo model
i1-d1)."""

from __future__ import annotations

import re
import zipfile

import pandas as pd
import pytest

from helpers import run_snakemake
from modelkin.io import read_json

pytestmark = pytest.mark.workflow

PARENT = "digits/lenet/standard/i0-d0"
METHODS = {
    "relabel": "unlearn_relabel",
    "ascent": "unlearn_ascent",
    "retrain": "retrain_without_class",
}


def unlearning(workdir):
    return workdir / "results" / "unlearning"


def test_trajectory_table_has_every_epoch_of_every_method_and_the_independent_model(
    tiny_workflow,
):
    out = unlearning(tiny_workflow)
    assert (out / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(out / "trajectory.csv")
    runs = table[table.unlearning != "independent"]
    for method, kind in METHODS.items():
        rows = runs[runs.unlearning == method]
        assert rows.epoch.astype(int).tolist() == [0, 1, 2], method
        assert set(rows.kind) == {kind}
        assert set(rows.model) == {f"derived/digits/{kind}/{PARENT}/s0"}
        record = read_json(out / f"{method}.json")
        assert record["parent"] == PARENT and record["forget_class"] == 3
        assert record["probe"] == "forget_class" and record["measured_epochs"] == [0, 1, 2]
    independent = table[table.unlearning == "independent"]
    assert independent.model.tolist() == ["digits/lenet/standard/i1-d1"]
    assert independent.epoch.isna().all()
    assert len(table) == 3 * 3 + 1
    for column in ("zest_cos", "gradfield_cos", "forget_accuracy", "retain_accuracy"):
        assert table[column].notna().all(), column
    assert independent.zest_cos_relative.tolist() == pytest.approx([1.0])


def test_approximate_unlearning_starts_at_the_original_and_forgets(tiny_workflow):
    table = pd.read_csv(unlearning(tiny_workflow) / "trajectory.csv")
    for method in ("relabel", "ascent"):
        rows = table[table.unlearning == method].sort_values("epoch")
        start, end = rows.iloc[0], rows.iloc[-1]
        assert abs(start.zest_cos) < 1e-6 and abs(start.gradfield_cos) < 1e-6, method
        assert end.forget_accuracy < start.forget_accuracy / 2, method
        assert end.zest_cos > 0 and end.gradfield_cos > 0, method
    trained = table[(table.unlearning == "retrain") & (table.epoch >= 1)]
    assert trained.forget_accuracy.max() < 0.05  # it never saw the class
    # ModelGiF puts the retrained model beyond the independent one (on the tiny run Zest does not:
    # docs/model-distance.md, "Unlearning verification")
    assert (trained.gradfield_cos_relative > 1.5).all()


def test_no_retrained_model_among_the_positives(tiny_workflow):
    table = pd.read_csv(unlearning(tiny_workflow) / "trajectory.csv")
    relations = dict(zip(table.unlearning, table.relation, strict=False))
    assert relations == {
        "relabel": "derived-by-unlearn_relabel",
        "ascent": "derived-by-unlearn_ascent",
        "retrain": "retrained",
        "independent": "independent",
    }
    positives = set(table[table.positive.astype(bool)].unlearning)
    assert positives == {"relabel", "ascent"}


def test_unlearning_is_in_the_report(tiny_workflow, tmp_path):
    report = tmp_path / "report.zip"
    run_snakemake(tiny_workflow, "--report", str(report))
    archive = zipfile.ZipFile(report)
    html = archive.read(next(n for n in archive.namelist() if n.endswith("report.html"))).decode()
    category = re.search(r'"Unlearning": \{"Other": \[([^\]]*)\]', html)
    assert category, "no Unlearning category in the report"
    for name in ("trajectory.csv", "trajectory.png"):
        assert f'"results/unlearning/{name}"' in category.group(1), name
        assert any(n.endswith(f"/{name}") for n in archive.namelist()), name  # it travels along
    assert "Distance to the original over the epochs of unlearning class 3" in html
