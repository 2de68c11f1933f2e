"""Wall time of the whole pipeline and of each stage.

    # run config.yaml from scratch in a temp dir
    python benchmarks/pipeline_stages.py
    python benchmarks/pipeline_stages.py --config tests/config/tiny.yaml --cores 2
    # only summarise an existing run's logs
    python benchmarks/pipeline_stages.py --results results

Every job logs "rule NAME" when it starts and "done in S s" when it ends
(modelkin.workflow.snakemake_job); this script sums those per rule. The per-rule
sum is CPU-side job time (jobs may overlap on several cores); the wall time is
the whole `snakemake` run, including its own scheduling and Python start-ups.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stage_times(results: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for log in (results / "logs").rglob("*.log"):
        text = log.read_text(errors="replace")
        rule = re.search(r"rule (\w+), threads", text)
        done = re.findall(r"done in ([0-9.]+) s", text)
        if rule and done:
            times[rule.group(1)].append(float(done[-1]))
    return times


def print_table(times: dict[str, list[float]], wall: float | None) -> None:
    total = sum(sum(v) for v in times.values())
    print(f"{'rule':<28} {'jobs':>5} {'sum s':>9} {'mean s':>8} {'share':>7}")
    for rule, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"{rule:<28} {len(values):>5} {sum(values):>9.1f} "
            f"{sum(values) / len(values):>8.2f} {sum(values) / total:>7.1%}"
        )
    print(f"{'all jobs':<28} {sum(len(v) for v in times.values()):>5} {total:>9.1f}")
    if wall is not None:
        print(f"pipeline wall time: {wall:.1f} s ({wall / 60:.1f} min)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--results", help="summarise this existing results directory instead of running"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = parser.parse_args()
    if args.results:
        print_table(stage_times(Path(args.results)), None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="modelkin-bench-"))
    shutil.copy(args.config, workdir / "config.yaml")
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    proc = subprocess.run(
        [
            snakemake,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            str(args.cores),
        ]
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); logs under {workdir}")
    print(f"config {args.config}, {args.cores} cores, working directory {workdir}")
    print_table(stage_times(workdir / "results"), wall)
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
