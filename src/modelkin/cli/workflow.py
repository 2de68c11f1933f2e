"""Workflow commands: ``check-config`` (the workflow's configuration check, without Snakemake)."""

from __future__ import annotations

import argparse


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


def _check_config(args: argparse.Namespace) -> int:
    from ..catalog import ModelCatalog
    from ..config import read_config_file, validate_config
    from ..config_checks import check_config

    config = validate_config(read_config_file(args.config), source=args.config)
    check_config(config, source=args.config, check_device=not args.no_device_check)
    print(f"{args.config}: valid ({len(ModelCatalog(config).all())} models planned)")
    return 0
