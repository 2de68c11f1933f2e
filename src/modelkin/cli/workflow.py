"""Workflow commands: ``check-config`` (the workflow's configuration check, without Snakemake) and
``resume`` (finish an interrupted run: ``make resume``)."""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check-config",
        help="check a workflow configuration as Snakemake would before any job "
        "(schema, model ids, layers, sizes, references, device)",
    )
    p.add_argument("config", nargs="?", default="config.yaml", help="default: config.yaml")
    p.add_argument(
        "--no-device-check",
        action="store_true",
        help="do not require CUDA here for device: cuda (jobs run on another machine)",
    )
    p.set_defaults(handler=_check_config)

    p = subparsers.add_parser(
        "resume",
        help="finish an interrupted workflow run: unlock a stale lock, remove killed jobs' "
        "temporary files, re-run incomplete jobs (make resume)",
        description="Refuses while a Snakemake process runs in the directory. Then: `snakemake "
        "--unlock` if a lock is left, removes `.part` files whose writer has died, and runs "
        "`snakemake --cores N --rerun-incomplete`: finished outputs are kept, incomplete ones "
        "made again.",
    )
    p.add_argument("--directory", default=".", help="the run's working directory (default .)")
    p.add_argument("--configfile", help="the run's config file (default: DIRECTORY/config.yaml)")
    p.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="cores for snakemake (default: all)"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    p.add_argument(
        "--snakemake-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="further snakemake arguments (last)",
    )
    p.set_defaults(handler=_resume)


def _check_config(args: argparse.Namespace) -> int:
    from ..catalog import ModelCatalog
    from ..config import read_config_file, validate_config
    from ..config_checks import check_config

    config = validate_config(read_config_file(args.config), source=args.config)
    check_config(config, source=args.config, check_device=not args.no_device_check)
    print(f"{args.config}: valid ({len(ModelCatalog(config).all())} models planned)")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from ..recovery import resume
    from .modeldiff import snakefile

    return resume(
        args.directory,
        snakefile=snakefile(),
        configfile=args.configfile,
        cores=args.cores,
        snakemake_args=args.snakemake_args,
        dry_run=args.dry_run,
    )
