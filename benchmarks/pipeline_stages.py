"""Wall time of the whole pipeline and of each stage, and the CPU time that is not the jobs' own.

    # run config.yaml from scratch in a temp dir
    python benchmarks/pipeline_stages.py
    python benchmarks/pipeline_stages.py --config tests/config/tiny.yaml --cores 2
    # only summarise an existing run's logs (with the run's CPU seconds from /usr/bin/time)
    python benchmarks/pipeline_stages.py --results results [--cpu-seconds 1450]

Every job logs "rule NAME" when it starts and "done in W s (cpu C s, start-up cpu S s)" when it
ends (modelkin.workflow.snakemake_job): its wall time, its own CPU time and the CPU time its
process spent before the job began (Python, Snakemake's script preamble, imports). This script
sums those per rule. The per-rule wall sum is job time (jobs may overlap on several cores); the
pipeline's CPU time (user + sys of snakemake and every job, as /usr/bin/time reports it, or
measured here when the script runs the pipeline) minus the jobs' own CPU and start-up CPU is
Snakemake's own work (parsing, scheduling, bookkeeping) and the jobs' exits.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(r"done in ([0-9.]+) s(?: \(cpu ([0-9.]+) s, start-up cpu ([0-9.]+) s\))?")


def stage_times(results: Path) -> dict[str, list[tuple[float, float | None, float | None]]]:
    """Per rule, each job's (wall s, cpu s, start-up cpu s); the CPU figures are None in logs
    written before they were recorded."""
    times: dict[str, list[tuple[float, float | None, float | None]]] = defaultdict(list)
    for log in (results / "logs").rglob("*.log"):
        text = log.read_text(errors="replace")
        rule = re.search(r"rule (\w+), threads", text)
        done = DONE.findall(text)
        if rule and done:
            wall, cpu, startup = done[-1]
            times[rule.group(1)].append(
                (float(wall), float(cpu) if cpu else None, float(startup) if startup else None)
            )
    return times


def _sum(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _fmt(value: float | None, width: int = 9) -> str:
    return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"


def print_table(times, wall: float | None, cpu_seconds: float | None = None) -> None:
    total = sum(w for jobs in times.values() for w, _, _ in jobs)
    print(
        f"{'rule':<28} {'jobs':>5} {'wall s':>9} {'mean s':>8} {'share':>7} {'cpu s':>9} "
        f"{'start-up cpu s':>15}"
    )
    for rule, jobs in sorted(times.items(), key=lambda kv: -sum(j[0] for j in kv[1])):
        walls = [j[0] for j in jobs]
        print(
            f"{rule:<28} {len(jobs):>5} {sum(walls):>9.1f} {sum(walls) / len(jobs):>8.2f} "
            f"{sum(walls) / total:>7.1%} {_fmt(_sum(j[1] for j in jobs))} "
            f"{_fmt(_sum(j[2] for j in jobs), 15)}"
        )
    jobs = [j for v in times.values() for j in v]
    job_cpu, startup = _sum(j[1] for j in jobs), _sum(j[2] for j in jobs)
    print(
        f"{'all jobs':<28} {len(jobs):>5} {total:>9.1f} {'':>8} {'':>7} {_fmt(job_cpu)} "
        f"{_fmt(startup, 15)}"
    )
    if wall is not None:
        print(f"pipeline wall time: {wall:.1f} s ({wall / 60:.1f} min)")
    if cpu_seconds is not None:
        print(
            f"pipeline CPU time {cpu_seconds:.1f} s = {cpu_seconds / total:.2f} x the summed job "
            "time"
        )
        if job_cpu is not None and startup is not None:
            rest = cpu_seconds - job_cpu - startup
            print(
                f"  the jobs' own CPU {job_cpu:.1f} s ({job_cpu / cpu_seconds:.0%}); their "
                f"start-ups {startup:.1f} s ({startup / cpu_seconds:.0%}, "
                f"{startup / len(jobs):.2f} s per job); Snakemake and job exits {rest:.1f} s "
                f"({rest / cpu_seconds:.0%}); CPU / jobs' own CPU {cpu_seconds / job_cpu:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--results", help="summarise this existing results directory instead of running"
    )
    parser.add_argument(
        "--cpu-seconds",
        type=float,
        help="with --results: the run's CPU time (user + sys from /usr/bin/time) for the ratios",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = parser.parse_args()
    if args.results:
        print_table(stage_times(Path(args.results)), None, args.cpu_seconds)
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
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); logs under {workdir}")
    print(f"config {args.config}, {args.cores} cores, working directory {workdir}")
    print_table(stage_times(workdir / "results"), wall, children.ru_utime + children.ru_stime)
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
