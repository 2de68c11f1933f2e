"""Shared fixtures. The tiny workflow runs once per test session; stage tests read its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_workdir, run_snakemake


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """A working directory where the tiny config has run to completion (``snakemake --cores 2``)."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny-workflow"))
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="session")
def digits_file(tmp_path_factory) -> Path:
    """The prepared digits data set, shared by library tests."""
    from modelkin.data import prepare_dataset

    return prepare_dataset("digits", tmp_path_factory.mktemp("data") / "digits.safetensors")
