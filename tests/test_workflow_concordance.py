"""The concordance stage through Snakemake, on the tiny workflow (tests/config/tiny.yaml: parent
digits/lenet/standard/i0-d0 with finetune, prune and a 5-class transfer, seed i1-d1; concordance
at relu4 on 100 test images, as the similarity stage)."""

from __future__ import annotations

import itertools
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import kendalltau, spearmanr

from helpers import TINY_CONFIG, run_snakemake
from modelkin.concordance import pair_key
from modelkin.config import validate_config
from modelkin.io import read_json

pytestmark = pytest.mark.workflow

PARENT = "digits/lenet/standard/i0-d0"
OTHER = "digits/lenet/standard/i1-d1"
MODELS = [
    PARENT,
    OTHER,
    f"derived/digits/finetune/{PARENT}/s0",
    f"derived/digits/prune/{PARENT}/s0",
]
# concordance.methods null: the distance stage's methods, then CKA and both stitching variants
METHODS = [
    *validate_config(yaml.safe_load(TINY_CONFIG.read_text()))["distances"]["methods"],
    "cka",
    "stitching",
    "stitching_ps_inv",
]


def concordance(workdir):
    return workdir / "results" / "concordance"


def unordered(frame):
    return {frozenset((r.model_a, r.model_b)): r for r in frame.itertuples()}


def test_outputs_cover_the_family_without_the_transfer(tiny_workflow):
    out = concordance(tiny_workflow)
    for name in ("pairs.csv", "correlations.csv", "relations.csv", "concordance.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "concordance.png").read_bytes()[:4] == b"\x89PNG"
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 6
    assert set(unordered(pairs)) == {frozenset(p) for p in itertools.combinations(MODELS, 2)}
    assert (
        not pairs.model_a.str.contains("transfer").any()
        and not pairs.model_b.str.contains("transfer").any()
    )
    for method in METHODS:
        assert np.isfinite(pairs[method]).all(), method


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_distance_verdicts_are_the_distance_tables(tiny_workflow, method):
    pairs = unordered(pd.read_csv(concordance(tiny_workflow) / "pairs.csv"))
    table = unordered(pd.read_csv(tiny_workflow / "results" / "distances" / f"{method}.csv"))
    for key, row in pairs.items():
        source = table[key]
        assert getattr(row, f"{method}_cos_normalised") == pytest.approx(
            source.cos_normalised, rel=1e-12
        )
        assert getattr(row, f"{method}_cos") == pytest.approx(source.cos, rel=1e-12)
        assert getattr(row, method) == pytest.approx(1.0 - source.cos_normalised, rel=1e-12)
        assert row.relation == source.relation


def test_layer_verdicts_agree_with_the_similarity_and_stitching_results(tiny_workflow):
    pairs = unordered(pd.read_csv(concordance(tiny_workflow) / "pairs.csv"))
    # The similarity stage compared i0-d0 and i1-d1 at relu4 on the same 100 test images.
    similarity = pd.read_csv(
        tiny_workflow
        / "results"
        / "similarity"
        / f"{PARENT.replace('/', '.')}__{OTHER.replace('/', '.')}.csv"
    )
    cell = similarity[
        (similarity.layer_a == "relu4")
        & (similarity.layer_b == "relu4")
        & (similarity.measure == "cka")
    ]
    row = pairs[frozenset((PARENT, OTHER))]
    assert row.cka == pytest.approx(float(cell.value.iloc[0]), rel=1e-9)
    assert (row.layer_a, row.layer_b) == ("relu4", "relu4")
    for row in pairs.values():
        folder = concordance(tiny_workflow) / "jobs"
        stitch_dir = next(folder.glob(f"*/stitching/{pair_key(row.model_a, row.model_b)}"))
        runs = {d: read_json(stitch_dir / f"{d}.json") for d in ("a_to_b", "b_to_a")}
        assert (
            runs["a_to_b"]["model1"]["name"] == row.model_a
            and runs["b_to_a"]["model1"]["name"] == row.model_b
        )
        assert (
            runs["a_to_b"]["options"]["init"] == "ps_inv"
            and runs["a_to_b"]["options"]["epochs"] == 1
        )
        for direction, payload in runs.items():
            assert getattr(row, f"stitching_{direction}") == pytest.approx(
                payload["relative_accuracy"]["after"]
            )
            assert getattr(row, f"stitching_ps_inv_{direction}") == pytest.approx(
                payload["relative_accuracy"]["ps_inv"]
            )
        assert row.stitching == pytest.approx((row.stitching_a_to_b + row.stitching_b_to_a) / 2)
    # a derived copy is closer to its parent than the independent seed, by every signature and CKA
    finetune = pairs[frozenset((PARENT, MODELS[2]))]
    for method in ("zest", "gradfield", "cka"):
        assert getattr(finetune, method) > getattr(pairs[frozenset((PARENT, OTHER))], method), (
            method
        )


def test_correlations_and_means_recompute_from_the_pair_table(tiny_workflow):
    out = concordance(tiny_workflow)
    pairs = pd.read_csv(out / "pairs.csv")
    correlations = pd.read_csv(out / "correlations.csv")
    overall = correlations[correlations.scope == "all"]
    assert len(overall) == len(METHODS) * (len(METHODS) - 1) // 2
    for row in overall.itertuples():
        x, y = pairs[row.method_a], pairs[row.method_b]
        assert row.n_pairs == 6
        assert row.spearman == pytest.approx(spearmanr(x, y)[0], nan_ok=True)
        assert row.kendall == pytest.approx(kendalltau(x, y)[0], nan_ok=True)
    assert "group:independent" in set(
        correlations.scope
    )  # 3 independent pairs; derived: 2, siblings: 1
    means = pd.read_csv(out / "relations.csv").set_index(["level", "value"])
    for group, part in pairs.groupby("group"):
        assert means.loc[("group", group), "n_pairs"] == len(part)
        for method in METHODS:
            assert means.loc[("group", group), f"{method}_mean"] == pytest.approx(
                part[method].mean()
            )
    assert set(pairs.group) == {"derived", "siblings", "independent"}


def test_concordance_is_in_the_report(tiny_workflow, tmp_path):
    report = tmp_path / "report.zip"
    run_snakemake(tiny_workflow, "--report", str(report))

    archive = zipfile.ZipFile(report)
    html = archive.read(next(n for n in archive.namelist() if n.endswith("report.html"))).decode()
    category = re.search(r'"Concordance": \{"Other": \[([^\]]*)\]', html)
    assert category, "no Concordance category in the report"
    for name in ("pairs.csv", "correlations.csv", "relations.csv", "concordance.png"):
        assert f'"results/concordance/{name}"' in category.group(1), name
        assert any(n.endswith(f"/{name}") for n in archive.namelist()), (
            name
        )  # the file itself travels along
