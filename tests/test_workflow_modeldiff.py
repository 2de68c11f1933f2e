"""The ModelDiff stage of the tiny workflow: files, provenance, consistency between steps,
reruns, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import REPO, TINY_CONFIG, run_snakemake

COMPARISON = "results/modeldiff/digits/lenet/md_clean-vs-md_patch"


def tiny_config() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def dry_run_jobs(workdir, *targets) -> dict[str, int]:
    out = run_snakemake(workdir, *targets, "-n", "--cores", "1", "--quiet", "rules").stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_every_output_exists(tiny_workflow):
    config = tiny_config()["modeldiff"]
    comparison = tiny_workflow / COMPARISON
    for name in (
        "summary.json",
        "summary.png",
        "directions.h5",
        "directions.csv",
        "surfaced.csv",
        "counterfactual.csv",
    ):
        assert (comparison / name).stat().st_size > 0, name
    for kind in ("A_minus_B", "B_minus_A"):
        for c in range(config["components"]):
            assert (comparison / "grids" / f"{kind}_{c}.png").stat().st_size > 0
    summary_log = (tiny_workflow / "results/logs/modeldiff/digits-lenet-summary.log").read_text()
    assert (
        "ModelDiff md_clean (A) vs md_patch (B)" in summary_log and "LDS of md_clean" in summary_log
    )


def test_features_and_scores_carry_provenance_and_agree(tiny_workflow):
    from modelkin.attribution import ensemble_scores
    from modelkin.attribution.jobs import read_features, read_scores
    from modelkin.io import file_sha256

    root = tiny_workflow / "results"
    features = []
    for seed in (0, 1):
        f, stored = read_features(root / f"modeldiff/trak/digits/lenet/md_patch/i{seed}-d{seed}.h5")
        checkpoint = root / f"models/digits/lenet/md_patch/i{seed}-d{seed}.safetensors"
        assert stored.attrs["checkpoint_sha256"] == file_sha256(checkpoint)
        assert stored.attrs["method"] == "trak" and stored.attrs["modelkin_version"]
        assert stored.params["proj_dim"] == 128 and stored.attrs["info"]["checkpoint_index"] == seed
        assert stored.attrs["axes"]["train_features"] == ["train", "projection"]
        assert stored.attrs["data"]["planted_patch"]["target_class"] == 3
        assert f.train_features.shape == (400, 128) and f.target_grads.shape == (100, 128)
        features.append(f)
        assert (
            "out_to_loss" not in stored.params
        )  # applied when scoring: features serve either weighting
    scores = read_scores(root / "modeldiff/scores/digits/lenet/md_patch.h5")
    assert scores["scores"].shape == (400, 100) and scores["out_to_loss"].shape == (400,)
    assert len(scores.attrs["checkpoint_sha256s"]) == 2 and scores.attrs["algorithm"] == "md_patch"
    assert scores.params["out_to_loss"] is False  # the schema's default for ModelDiff
    np.testing.assert_allclose(
        scores["scores"], ensemble_scores(features, out_to_loss=False).numpy(), rtol=1e-5, atol=1e-9
    )
    np.testing.assert_allclose(
        scores["scores"] * scores["out_to_loss"][:, None],
        ensemble_scores(features).numpy(),
        rtol=1e-5,
        atol=1e-9,
    )


def test_directions_are_what_the_library_computes_from_the_scores(tiny_workflow):
    from modelkin.attribution.jobs import read_scores
    from modelkin.modeldiff.directions import residual_pca
    from modelkin.modeldiff.stages import read_comparison

    root = tiny_workflow / "results"
    stored = read_comparison(tiny_workflow / COMPARISON / "directions.h5")
    a = read_scores(root / "modeldiff/scores/digits/lenet/md_clean.h5")["scores"].T
    b = read_scores(root / "modeldiff/scores/digits/lenet/md_patch.h5")["scores"].T
    for kind, result in stored.results.items():
        expected = residual_pca(a, b, 2, kind=kind)
        np.testing.assert_allclose(result.directions, expected.directions, atol=1e-5)
        np.testing.assert_allclose(
            result.explained_variance["A"], expected.explained_variance["A"], rtol=1e-5
        )
        np.testing.assert_allclose(
            result.explained_variance["B"], expected.explained_variance["B"], rtol=1e-5
        )
    table = pd.read_csv(tiny_workflow / COMPARISON / "directions.csv")
    assert set(table["label"]) == {"md_clean minus md_patch", "md_patch minus md_clean"}


def test_surfaced_examples_and_counterfactual_tables(tiny_workflow):
    surfaced = pd.read_csv(tiny_workflow / COMPARISON / "surfaced.csv")
    assert (
        len(surfaced) == 2 * 2 * 4 * 6
    )  # kinds x components x (train/test, top/bottom) x n_examples
    train = surfaced[surfaced["role"].str.startswith("train")]
    assert (
        train["index"].between(0, 399).all()
        and train["planted_in_md_patch"].isin([True, False]).all()
    )
    top = surfaced[(surfaced["role"] == "train_top") & (surfaced["rank"] == 0)]
    assert (top["value"] > 0).all()

    rows = pd.read_csv(tiny_workflow / COMPARISON / "counterfactual.csv")
    assert sorted(rows["algorithm"]) == ["md_clean", "md_clean", "md_patch", "md_patch"]
    assert rows[["p_target_before", "p_target_after"]].apply(lambda c: c.between(0, 1)).all().all()
    from modelkin.data import load_split

    others = int(
        (load_split(tiny_workflow / "results/data/digits.safetensors", "test").y != 3).sum()
    )
    assert (rows["target_class"] == 3).all() and (
        rows["n_images"] == others
    ).all()  # test images of other classes
    summary = json.loads((tiny_workflow / COMPARISON / "summary.json").read_text())
    assert {r["role"] for r in summary["counterfactual"]} == {"A", "B"}
    assert summary["lds"]["num_subsets"] == 4 and np.isfinite(summary["lds"]["lds"])
    assert summary["lds"]["out_to_loss"] is False and np.isfinite(
        summary["lds"]["lds_with_out_to_loss"]
    )
    assert "precision_at_20_planted_in_md_patch" in summary["directions"][0]


def test_changing_the_pca_reruns_only_the_analysis(tiny_workflow, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_workflow, workdir, symlinks=True)
    config = tiny_config()
    config["modeldiff"]["normalize_rows"] = False
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(workdir, "modeldiff")
    assert jobs == {
        "modeldiff_directions": 1,
        "modeldiff_surface": 1,
        "modeldiff_counterfactual": 1,
        "modeldiff_summary": 1,
        "modeldiff_plot": 1,
        "modeldiff": 1,
    }
    config["modeldiff"]["normalize_rows"] = True
    config["modeldiff"]["trak"]["out_to_loss"] = (
        True  # the weighting is applied when scoring: no new features
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(workdir, "modeldiff")
    assert (
        jobs["trak_scores"] == 2
        and jobs["lds"] == 1
        and "trak_features" not in jobs
        and "lds_subset" not in jobs
    )
    config["modeldiff"]["trak"]["proj_dim"] = 96  # new features for every checkpoint, no retraining
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(workdir, "modeldiff")
    assert (
        jobs["trak_features"] == 4
        and jobs["trak_scores"] == 2
        and "train" not in jobs
        and "lds_subset" not in jobs
    )


def test_undefined_algorithm_stops_before_any_job(tmp_path):
    config = tiny_config()
    config["modeldiff"]["algorithm_b"] = "md_missing"
    workdir = tmp_path / "bad"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert (
        "md_missing" in proc.stderr + proc.stdout
        and "training.algorithms" in proc.stderr + proc.stdout
    )


def test_cli_runs_the_target_and_prints_the_summary(tiny_workflow, tmp_path):
    workdir = tmp_path / "cli"
    shutil.copytree(tiny_workflow, workdir, symlinks=True)
    command = [
        str(Path(sys.executable).with_name("modelkin")),
        "modeldiff",
        "--config",
        str(workdir / "config.yaml"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert (
        "ModelDiff md_clean (A) vs md_patch (B)" in proc.stdout
        and "counterfactual (patch) B md_patch" in proc.stdout
    )
