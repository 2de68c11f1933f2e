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
