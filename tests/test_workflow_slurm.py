"""The tiny workflow's foundation through a real single-node SLURM cluster (tests/slurm/cluster.sh):
the zoo, derived models, signatures and a distance table: 30 of its 117 jobs. The executor, the
profile and the local rules are the same for every stage; all 117 through SLURM took 685 s of
CI's 1,214 s.

Skipped, with the reason in pytest's summary, when the cluster cannot be started (no root,
no apt, a daemon that will not come up). CI runs as root and brings it up.
"""

import re
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO, make_workdir, run_snakemake
from slurm_cluster import ensure_cluster, stop_cluster

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

# Train, evaluate, derive and sign on SLURM; tables and plots locally.
TARGETS = (
    "results/zoo.csv",
    "results/plots/zoo.png",
    "results/distances/zest.png",
    "results/relatedness/zest.csv",
)
# The plugin waits this long before each status poll; the default 40 s is meant for busy clusters.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "5")


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = ensure_cluster()
    if reason is not None:
        pytest.skip(f"single-node SLURM cluster cannot start here: {reason}")
    yield
    stop_cluster()


def outputs(workdir: Path) -> set[str]:
    results = workdir / "results"
    return {
        str(p.relative_to(results))
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.relative_to(results).parts and not p.name.startswith(".")
    }


def test_tiny_workflow_runs_through_slurm_like_locally(slurm_cluster, tiny_workflow, tmp_path):
    workdir = make_workdir(tmp_path / "slurm")
    profile = str(REPO / "profiles" / "slurm")
    first = run_snakemake(workdir, "--profile", profile, *FAST_POLLING, *TARGETS, timeout=2400)
    submitted = re.findall(
        r"has been submitted with SLURM jobid (\d+)", first.stdout + first.stderr
    )
    assert submitted, "no job went through SLURM:\n" + first.stderr[-3000:]
    ran_locally = set(re.findall(r"^localrule (\w+):", first.stdout + first.stderr, re.MULTILINE))
    assert {
        "zoo_table",
        "zoo_plot",
        "distance_heatmap",
        "relatedness",
    } <= ran_locally  # tables and plots do not queue
    assert "train" not in ran_locally

    made = outputs(workdir)
    assert {t.removeprefix("results/") for t in TARGETS} <= made
    assert made <= outputs(tiny_workflow)  # the same files as the local run makes
    for table in ("distances/zest.csv", "relatedness/zest.csv"):
        local_table = pd.read_csv(tiny_workflow / "results" / table)
        remote_table = pd.read_csv(workdir / "results" / table)
        assert list(local_table.columns) == list(remote_table.columns)
        assert len(local_table) == len(remote_table)
    local = pd.read_csv(tiny_workflow / "results" / "zoo.csv")
    remote = pd.read_csv(workdir / "results" / "zoo.csv")
    assert list(local["model"]) == list(remote["model"])
    assert (local["accuracy"] - remote["accuracy"]).abs().max() < 0.02

    again = run_snakemake(workdir, "--profile", profile, *FAST_POLLING, *TARGETS)
    log = again.stdout + again.stderr
    assert "Nothing to be done" in log
    assert "has been submitted with SLURM jobid" not in log
