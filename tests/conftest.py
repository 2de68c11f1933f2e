"""Shared fixtures. The tiny workflow runs once per test session; stage tests read its outputs.

The suite runs on two pytest-xdist workers (``-n 2`` in pyproject.toml), one module at a time
per worker, so that a module's fixtures are built once. The modules that read the tiny workflow
are one unit of work, so that one worker runs it once and no two Snakemake runs share its
directory. Units start longest first, so that the long end-to-end runs overlap from the start.
(xdist's own ``xdist_group`` marks do not group under pytest 9.2, which ignores the node ids xdist
rewrites to group them; the scheduler below groups by module name instead.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import make_workdir, run_snakemake

# Two workers share two cores, so OpenMP threads (torch's) must sleep, not spin, while they wait
# for each other: a 2-thread LeNet training loop that spins took 93 s beside another busy process
# and 4 s sleeping (1 thread: 2 s). Set before any test imports torch, and inherited by every
# Snakemake job and command a test starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY_GROUP = "tiny-workflow"
# Every module with a test that reads the tiny workflow (checked at collection).
TINY_MODULES = frozenset(
    {
        "test_report.py",
        "test_workflow_concordance.py",
        "test_workflow_distances.py",
        "test_workflow_foundation.py",
        "test_workflow_lineage.py",
        "test_workflow_modeldiff.py",
        "test_workflow_signatures.py",
        "test_workflow_similarity.py",
        "test_workflow_slurm.py",
        "test_workflow_stitching.py",
        "test_workflow_unlearning.py",
    }
)
# Modules of one long run each (several minutes on 2 cores), started right after the tiny group.
LONG_MODULES = ("test_walkthrough.py", "test_workflow_cross_dataset.py")


def unit_of_work(module: str) -> str:
    """The unit a test module's tests are scheduled in (a path or a file name)."""
    return TINY_GROUP if Path(module).name in TINY_MODULES else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unlisted = sorted(
        {
            item.path.name
            for item in items
            if "tiny_workflow" in getattr(item, "fixturenames", ())
            and item.path.name not in TINY_MODULES
        }
    )
    if unlisted:
        raise pytest.UsageError(
            f"{', '.join(unlisted)} read(s) the tiny workflow: add it to TINY_MODULES in "
            "tests/conftest.py, or two workers would both run the tiny workflow"
        )

    def start_rank(item: pytest.Item) -> int:
        name = item.path.name
        if name in TINY_MODULES:
            return 0
        return 1 + LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES) + 1

    items.sort(key=start_rank)  # stable: the order within a module is kept


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid.split("::", 1)[0])

    return ModuleUnits(config, log)


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
