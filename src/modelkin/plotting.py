"""Figures for the report: a headless pyplot and atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: cluster nodes and CI have no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, output: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``output`` (whole or not at all) and free it."""
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return Path(output)
