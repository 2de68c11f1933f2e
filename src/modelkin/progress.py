"""Progress bars for long stages: on a terminal they
redraw; in a Snakemake log they print sparse lines."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None, **kwargs
) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        file=sys.stderr,
        dynamic_ncols=interactive,
        mininterval=0.2 if interactive else 5.0,
        leave=True,
        **kwargs,
    )
