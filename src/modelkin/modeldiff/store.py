"""The directions file: the HDF5 file of one ModelDiff comparison, written and read back.

One group per kind (``A_minus_B``, ``B_minus_A``) holds ``directions`` [component × train],
``projections`` [target × component], ``explained_variance_A``/``_B`` and
``residual_variance_ratio`` [component]; the root holds ``train_labels`` and ``target_labels``.
Attributes name the algorithms, the score files, and the training data each algorithm's scores
describe (``data_A``, ``data_B``: prepared file, training limit, planted patch, targets). The
layout follows :mod:`modelkin.attribution.store`. No torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..attribution.store import AttributionFileError, StoredArrays, read_arrays, write_arrays
from ..errors import MissingFileError
from .directions import KINDS, DistinguishingDirections, ModelDiffError
from .plan import KIND_SLUGS

DIRECTIONS_KIND = "modelkin-modeldiff"
AXES = {
    "directions": ("component", "train"),
    "projections": ("target", "component"),
    "explained_variance_A": ("component",),
    "explained_variance_B": ("component",),
    "residual_variance_ratio": ("component",),
}


def read_stage_file(path: str | Path, kind: str) -> StoredArrays:
    """An attribution or ModelDiff file of ``kind``; a clear error if it is missing or another
    kind of file."""
    how = f"make it with `snakemake --cores 2 {path}`"
    if not Path(path).exists():
        raise MissingFileError(f"{path} does not exist; {how}")
    try:
        return read_arrays(path, kind, how)
    except AttributionFileError as err:
        raise ModelDiffError(str(err)) from err


def write_comparison(
    output: str | Path,
    results: Mapping[str, DistinguishingDirections],
    *,
    train_labels: np.ndarray,
    target_labels: np.ndarray,
    attrs: Mapping[str, Any],
    num_components: int,
    normalize_rows: bool,
) -> Path:
    """Write both kinds' results (directions and projections as float32) with ``attrs``
    (``algorithm_A``/``_B``, ``scores_A``/``_B``, ``data_A``/``_B``)."""
    groups = {
        KIND_SLUGS[kind]: {
            "directions": r.directions.astype(np.float32),
            "projections": r.projections.astype(np.float32),
            "explained_variance_A": r.explained_variance["A"],
            "explained_variance_B": r.explained_variance["B"],
            "residual_variance_ratio": r.residual_variance_ratio,
        }
        for kind, r in results.items()
    }
    axes = {f"{group}/{name}": names for group in groups for name, names in AXES.items()}
    return write_arrays(
        output,
        {"train_labels": train_labels, "target_labels": target_labels},
        kind=DIRECTIONS_KIND,
        method="modeldiff",
        params={
            "num_components": num_components,
            "normalize_rows": normalize_rows,
            "orientation": "positive third moment",
        },
        axes={"train_labels": ("train",), "target_labels": ("target",), **axes},
        attrs={**attrs, "groups": {KIND_SLUGS[k]: k for k in KINDS}},
        groups=groups,
    )


@dataclass
class StoredComparison:
    """A directions file read back: both kinds' results and what the scores were computed on."""

    results: dict[str, DistinguishingDirections]
    train_labels: np.ndarray
    target_labels: np.ndarray
    attrs: dict[str, Any]

    @property
    def names(self) -> dict[str, str]:
        """{"A": algorithm A's name, "B": algorithm B's}."""
        return {"A": self.attrs["algorithm_A"], "B": self.attrs["algorithm_B"]}

    @property
    def data(self) -> dict[str, dict[str, Any]]:
        """The training data each algorithm's scores describe (prepared file, limit, patch, ...)."""
        return {"A": self.attrs["data_A"], "B": self.attrs["data_B"]}


def read_comparison(path: str | Path) -> StoredComparison:
    """The directions file :func:`write_comparison` wrote."""
    stored = read_stage_file(path, DIRECTIONS_KIND)
    names = {"A": stored.attrs["algorithm_A"], "B": stored.attrs["algorithm_B"]}
    results = {}
    for kind, group in KIND_SLUGS.items():
        results[kind] = DistinguishingDirections(
            kind=kind,
            directions=stored[f"{group}/directions"],
            projections=stored[f"{group}/projections"],
            explained_variance={
                "A": stored[f"{group}/explained_variance_A"],
                "B": stored[f"{group}/explained_variance_B"],
            },
            residual_variance_ratio=stored[f"{group}/residual_variance_ratio"],
            normalize_rows=bool(stored.params["normalize_rows"]),
            names=names,
        )
    return StoredComparison(results, stored["train_labels"], stored["target_labels"], stored.attrs)
