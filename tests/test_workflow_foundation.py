"""The foundation stages through Snakemake: prepare -> train -> evaluate -> zoo table."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import REPO, TINY_CONFIG, make_workdir, run_snakemake

pytestmark = pytest.mark.workflow


def dry_run_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """Rule -> number of jobs Snakemake would run now."""
    out = run_snakemake(workdir, "-n", "--cores", "2", *targets).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def test_zoo_table_lists_every_model(tiny_workflow):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    zoo = pd.read_csv(tiny_workflow / "results" / "zoo.csv")
    base = zoo[~zoo["model"].str.startswith("derived/")]
    expected = (
        len(config["zoo"]["architectures"])
        * len(config["zoo"]["algorithms"])
        * len(config["zoo"]["seeds"])
    )
    assert len(base) == expected
    assert set(base["algorithm"]) == set(config["zoo"]["algorithms"])
    assert base["accuracy"].between(0, 1).all() and base["robust_accuracy"].between(0, 1).all()
    for model in base["model"]:
        assert (tiny_workflow / "results" / "models" / f"{model}.safetensors").exists()
        assert (tiny_workflow / "results" / "eval" / f"{model}.json").exists()
        log = (tiny_workflow / "results" / "logs" / "train" / f"{model}.log").read_text()
        assert "epoch 2/2" in log


def test_rerun_does_nothing(tiny_workflow):
    assert dry_run_jobs(tiny_workflow) == {}


def test_changing_one_models_settings_reruns_only_that_model(tiny_workflow, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_workflow, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["training"]["overrides"] = [
        {"algorithm": "standard", "init_seed": 1, "set": {"epochs": 3}}
    ]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(workdir, "results/zoo.csv")
    assert jobs == {"train": 1, "evaluate": 1, "zoo_table": 1}
    out = run_snakemake(workdir, "-n", "--cores", "2", "results/zoo.csv").stdout
    assert "results/models/digits/lenet/standard/i1-d1.safetensors" in out
    assert "i0-d0.safetensors" not in out.split("rule train")[1].split("rule")[0]


# Files that a summary reads, and the rule that makes each: deleting one makes Snakemake plan it
# again (it would not, were it only an input of a finished job).
TRACKED = {
    "signature": "signatures/zest/derived/digits/finetune/digits/lenet/standard/i0-d0/s0.h5",
    "stitch": "stitching/runs/robust/"
    "digits.lenet.standard.i0-d0~digits.lenet.madry.i1-d1/relu3.json",
    "similarity": "similarity/digits.lenet.standard.i0-d0__digits.lenet.standard.i1-d1.csv",
    "concordance_pairs": "concordance/jobs/0",
    "evaluate": "eval/digits/lenet/standard/i0-d0.json",
}


@pytest.mark.parametrize("rule", TRACKED)
def test_deleting_what_a_summary_reads_rebuilds_it(tiny_workflow, tmp_path, rule):
    path = tiny_workflow / "results" / TRACKED[rule]
    aside = tmp_path / "aside"
    path.rename(aside)
    try:
        jobs = dry_run_jobs(tiny_workflow)
    finally:
        aside.rename(path)
    assert jobs.get(rule) == 1, jobs
    assert "train" not in jobs


def test_evaluation_settings_do_not_invalidate_training(tiny_workflow, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["evaluation"]["steps"] += 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(tiny_workflow, "--configfile", str(changed))
    assert set(jobs) == {"evaluate", "zoo_table", "zoo_plot", "all"}, jobs


def test_a_configfile_replaces_config_yaml(tmp_path):
    """`--configfile tiny.yaml` runs that file alone: no model of config.yaml's zoo (MLPs) is
    planned, and keys the file omits take the schema's defaults, not config.yaml's values."""
    workdir = make_workdir(tmp_path / "default", REPO / "config.yaml")
    out = run_snakemake(workdir, "-n", "--configfile", str(TINY_CONFIG)).stdout
    assert "digits/lenet/standard/i0-d0.safetensors" in out
    assert "digits/mlp/" not in out and "/trades/" not in out


def test_invalid_config_stops_before_any_job(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["zoo"]["architectures"] = ["lenet", "alexnet"]
    workdir = tmp_path / "bad"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "alexnet" in proc.stderr + proc.stdout
    assert not (workdir / "results").exists()


def test_lint_and_format_are_clean(tmp_path):
    workdir = make_workdir(tmp_path / "lint")
    lint = run_snakemake(workdir, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    fmt = subprocess.run(
        [snakefmt, "--check", "Snakefile", "workflow/"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


PYTHON_PATHS = ["src", "tests", "benchmarks", "workflow/scripts", "examples"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "format", "--check", *PYTHON_PATHS],
        ["ruff", "check", *PYTHON_PATHS],
        ["mypy"],  # its files and settings are in pyproject.toml
    ],
    ids=["ruff-format", "ruff-check", "mypy"],
)
def test_python_is_formatted_linted_and_typed(command):
    """The Python half of `make lint`, with the tools of this environment (the dev extra)."""
    tool = str(Path(sys.executable).with_name(command[0]))
    proc = subprocess.run([tool, *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_slurm_profile_passes_snakemakes_checks(tmp_path):
    workdir = make_workdir(tmp_path / "profile")
    proc = run_snakemake(workdir, "-n", "--profile", str(REPO / "profiles" / "slurm"), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
