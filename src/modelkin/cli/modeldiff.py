"""ModelDiff command: ``modelkin modeldiff --config FILE`` runs the workflow's ``modeldiff``
target (docs/modeldiff.md)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ..config import load_config
from ..errors import MissingFileError
from ..io import read_json
from ..modeldiff.plan import ModelDiffPlan


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "modeldiff",
        help="compare two training algorithms with ModelDiff and TRAK (runs the workflow's "
        "modeldiff target)",
        description="Runs `snakemake modeldiff` with the given config in --directory: trains the "
        "checkpoints of modeldiff.algorithm_a and algorithm_b that are missing (or imports your "
        "own, modeldiff.models_a and models_b), computes TRAK features and scores, the "
        "distinguishing directions, the counterfactual and the LDS (not for your own "
        "checkpoints: it retrains), and "
        "prints the summary. Everything already built is reused; an interrupted run continues "
        "where it stopped.",
    )
    p.add_argument("--config", required=True, help="workflow configuration (e.g. config.yaml)")
    p.add_argument(
        "--directory",
        default=".",
        help="working directory; results go to its `results` setting (default .)",
    )
    p.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="cores for snakemake (default: all)"
    )
    p.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    p.add_argument(
        "--snakemake-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="further snakemake arguments (last)",
    )
    p.set_defaults(handler=_modeldiff)


def snakefile() -> Path:
    """The checkout's Snakefile (the workflow ships with the repository, not the wheel)."""
    path = Path(__file__).resolve().parents[3] / "Snakefile"
    if not path.exists():
        raise MissingFileError(
            f"the workflow's Snakefile is not at {path}; `modelkin modeldiff` runs from a source "
            "checkout (pip install -e .). Without one, use the Python API: "
            "modelkin.modeldiff.ModelDiff"
        )
    return path


def _modeldiff(args: argparse.Namespace) -> int:
    # pandas and scikit-learn would add seconds to every `modelkin` command; load them here.
    from ..modeldiff.stages import format_summary

    config_path = Path(args.config).resolve()
    config = load_config(config_path)
    directory = Path(args.directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    executable = Path(sys.executable).with_name("snakemake")
    command = [
        str(executable) if executable.exists() else "snakemake",
        "-s",
        str(snakefile()),
        "--directory",
        str(directory),
        "--configfile",
        str(config_path),
        "--cores",
        str(args.cores),
        *(["--dry-run"] if args.dry_run else []),
        *args.snakemake_args,
        "modeldiff",
    ]
    print("$ " + " ".join(command), flush=True)
    status = subprocess.run(command).returncode
    if status != 0:
        print(
            f"modelkin modeldiff: snakemake failed (exit {status}); the job logs are under "
            f"{directory / config['results'] / 'logs'}",
            file=sys.stderr,
        )
        return status
    if args.dry_run:
        return 0
    # A relative results directory is relative to --directory (an absolute one stays as it is).
    summary = directory / ModelDiffPlan.from_config(config).directory / "summary.json"
    print(format_summary(read_json(summary)))
    print(f"outputs: {summary.parent}")
    return 0
