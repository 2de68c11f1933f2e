"""`snakemake --report` on the tiny workflow, rendered in headless Chromium."""

import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, run_snakemake
from report_browser import check_report, chromium

pytestmark = [pytest.mark.workflow, pytest.mark.browser]

# Every figure and table the report must carry, by path pattern under results/.
REQUIRED = [
    r"^results/zoo\.csv$",
    r"^results/plots/zoo\.png$",
    r"^results/distances/zest\.png$",
    r"^results/distances/gradfield\.png$",
    r"^results/relatedness/zest\.csv$",
    r"^results/relatedness/zest\.png$",
    r"^results/relatedness/gradfield\.png$",
    r"^results/similarity/summary\.csv$",
    r"^results/similarity/[^/]+__[^/]+\.png$",
    r"^results/stitching/summary\.csv$",
    r"^results/stitching/plots/relative_accuracy\.png$",
    r"^results/stitching/plots/cka_vs_accuracy\.png$",
    r"^results/stitching/plots/robust_accuracy\.png$",
    r"^results/modeldiff/.+/summary\.png$",
    r"^results/unlearning/trajectory\.csv$",
    r"^results/unlearning/trajectory\.png$",
]


@pytest.fixture(scope="module")
def report(tiny_workflow) -> Path:
    # Outside results/, so that the SLURM test's comparison of results/ trees stays exact.
    run_snakemake(tiny_workflow, "--report", "report.html")
    return tiny_workflow / "report.html"


@pytest.fixture(scope="module")
def browser():
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "browser" / "ensure_chromium.sh")],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or chromium() is None:
        pytest.skip(f"headless Chromium is not available: {proc.stderr.strip() or 'not on PATH'}")
    return chromium()


def test_report_is_self_contained(report):
    html = report.read_text()
    assert report.stat().st_size > 100_000
    assert not re.search(r'src="(?:https?:)?//', html), (
        "the report must not load anything from the network"
    )


def test_every_figure_loads_in_chromium(report, browser):
    outcome = check_report(report)
    results = outcome["results"]
    assert "modelkin compared the models" in outcome["rendered_text"]
    for pattern in REQUIRED:
        assert any(re.search(pattern, path) for path in results), (
            f"no report item matches {pattern}"
        )
    broken = {path: entry for path, entry in results.items() if not entry["ok"]}
    assert not broken, f"report items that do not load: {broken}"
    images = [p for p, e in results.items() if e["mime"].startswith("image/")]
    assert images and all(results[p]["width"] > 100 for p in images)
