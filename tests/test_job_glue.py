"""modelkin.workflow.snakemake_job: what a job changes in its process, and gives back."""

from __future__ import annotations

import os
from types import SimpleNamespace

from modelkin.workflow import THREAD_VARIABLES, snakemake_job


def test_a_job_sets_its_thread_count_and_gives_the_environment_back(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    job = SimpleNamespace(log=[str(tmp_path / "job.log")], threads=1, rule="x", config={})
    with snakemake_job(job):
        assert all(os.environ[v] == "1" for v in THREAD_VARIABLES)
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ
    assert "rule x, threads 1" in (tmp_path / "job.log").read_text()


def test_local_runs_drop_the_job_rate_limit_and_cluster_runs_keep_it(tmp_path):
    import subprocess
    import sys

    from modelkin.workflow import drop_local_job_rate_limit

    limiter = object()
    cluster = SimpleNamespace(local_exec=False, scheduler=SimpleNamespace(job_rate_limiter=limiter))
    assert not drop_local_job_rate_limit(cluster) and cluster.scheduler.job_rate_limiter is limiter
    # the Snakemake this project installs still has the attribute the hook clears (a version
    # without it would make the hook a silent no-op: this fails instead)
    (tmp_path / "Snakefile").write_text(
        "from modelkin.workflow import drop_local_job_rate_limit\n"
        "onstart:\n"
        "    print('dropped', drop_local_job_rate_limit(workflow),"
        " workflow.scheduler.job_rate_limiter)\n"
        "rule all:\n    output: 'done'\n    shell: 'touch {output}'\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "all"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "dropped True None" in run.stdout + run.stderr
    assert (tmp_path / "done").exists()
