"""The ``modelkin`` command line. Each topic registers its subcommands from its own module.

Heavy imports (torch) happen inside command handlers, so ``modelkin --help`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ..errors import ModelkinError

# One module per topic; each defines ``register(subparsers)``.
COMMAND_MODULES = (
    "core",
    "layers",
    "signatures",
    "lineage",
    "similarity",
    "stitching",
    "modeldiff",
    "workflow",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="modelkin",
        description="How functionally alike are these neural "
        "networks, and is one derived from another?",
    )
    parser.add_argument("--version", action="version", version=f"modelkin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except ModelkinError as err:
        if args.verbose:
            raise
        print(f"modelkin {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`modelkin info FILE | head`): end quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
