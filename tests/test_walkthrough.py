"""The README's "Compare your own models" walk-through, run line by line as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def walkthrough_commands() -> list[str]:
    """The shell lines of the README block after the ``<!-- walk-through -->`` marker (the venv's
    ``source`` line is what this test's environment already is)."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- walk-through -->\n```bash\n(.*?)```", text, flags=re.S)
    assert match, "README.md lost its walk-through block"
    lines = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("source ")]


def test_the_readme_walkthrough_runs_as_written_and_answers_the_question(tmp_path):
    # The README's lines run from the repository root; here from a copy of what they read.
    for name in ("Snakefile", "workflow", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    commands = walkthrough_commands()
    assert [shlex.split(c)[0] for c in commands] == ["modelkin", "python", "snakemake"]
    for command in commands:
        proc = subprocess.run(
            shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        assert proc.returncode == 0, f"{command}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    results = tmp_path / "your-models" / "results"
    assert not (results / "models" / "digits_rgb").exists()  # no zoo model was trained
    table = pd.read_csv(results / "questions" / "derivation" / "resnet18.csv")
    assert (results / "questions" / "derivation" / "resnet18.png").stat().st_size > 0
    headline = table[table["headline"]].set_index(["method", "suspect"])["verdict"]
    for method in ("zest", "gradfield"):
        assert headline[(method, "external/finetuned")] == "related"
        assert headline[(method, "external/independent")] == "unrelated"
    assert set(table["reference_models"]) == {5}
    # the error rate measured on the user's own references: each is judged once held out, and
    # at alpha 0.01 at most one of the five is called related (the models, and so the count,
    # vary with the thread count that trained them: 0 of 5 with 2 threads, 1 of 5 with 1)
    assert (table["held_out_judged"] == 5).all()
    assert (table.loc[table["headline"], "held_out_false_positives"] <= 1).all()
