"""ModelGiF probes: reference points (images in [0, 1]), their labels, and the baseline colour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InputError
from ..store import Probe, SignatureError, read_probe, write_probe

if TYPE_CHECKING:
    from ...data import Split

PROBE_KIND = "gradfield"


@dataclass
class GradfieldProbe:
    """Reference points: points (N, C, H, W) float32 in [0, 1], labels (N,), indices into their
    split, baseline (C,) pixel values (0 in normalised space), params; selected probes add
    selection_score."""

    points: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    baseline: np.ndarray
    params: dict[str, Any]
    selection_score: np.ndarray | None = None

    @classmethod
    def from_stored(cls, stored: Probe) -> GradfieldProbe:
        """The gradient-field probe in a probe file read by ``read_probe``."""
        path = stored.path
        a = stored.arrays
        missing = [k for k in ("points", "labels", "indices", "baseline") if k not in a]
        if missing:
            raise SignatureError(
                f"gradient-field probe {path} lacks {missing}; delete it and build it again"
            )
        return cls(
            a["points"],
            a["labels"],
            a["indices"],
            a["baseline"],
            stored.params,
            a.get("selection_score"),
        )


def make_gradfield_probe(
    split: Split,
    *,
    n_points: int,
    classes: Sequence[int] | None = None,
    baseline: np.ndarray | None = None,
    source: dict[str, Any] | None = None,
) -> GradfieldProbe:
    """The first ``n_points`` images of ``split`` in data
    set order, optionally only those of ``classes``.

    (Unlearning verification uses the first 500 training images of the forgotten class.)
    """
    labels = split.y.numpy()
    eligible = (
        np.arange(len(labels))
        if classes is None
        else np.flatnonzero(np.isin(labels, list(classes)))
    )
    if n_points < 1 or n_points > len(eligible):
        which = "images" if classes is None else f"images of classes {list(classes)}"
        raise InputError(
            f"n_points must be between 1 and the {len(eligible)} "
            f"{which} of the split, got {n_points}"
        )
    index = eligible[:n_points]
    if baseline is None:
        baseline = np.asarray(split.info.mean, dtype=np.float32)
    params = {
        "dataset": split.info.name,
        "input_shape": list(split.x.shape[1:]),
        "n_points": int(n_points),
        "selection": "first_n",
        "classes": None if classes is None else [int(c) for c in classes],
        "baseline": "dataset_mean_colour",
        **(source or {}),
    }
    return GradfieldProbe(
        points=split.x[index].numpy().astype(np.float32),
        labels=labels[index].astype(np.int64),
        indices=index.astype(np.int64),
        baseline=np.asarray(baseline, dtype=np.float32).reshape(-1),
        params=params,
    )


def save_gradfield_probe(probe: GradfieldProbe, path: str | Path) -> Path:
    arrays = {
        "points": probe.points,
        "labels": probe.labels,
        "indices": probe.indices,
        "baseline": probe.baseline,
    }
    if probe.selection_score is not None:
        arrays["selection_score"] = probe.selection_score
    return write_probe(path, arrays, kind=PROBE_KIND, params=probe.params)


def load_gradfield_probe(path: str | Path) -> GradfieldProbe:
    return GradfieldProbe.from_stored(read_probe(path, kind=PROBE_KIND))


def gradfield_candidates_file(
    prepared: str | Path,
    output: str | Path,
    *,
    split: str,
    n_points: int,
    classes: Sequence[int] | None = None,
) -> Path:
    """Candidate reference points of a prepared data set
    (the first ``n_points``, optionally of ``classes``)."""
    from ...data import load_split

    data = load_split(prepared, split)
    probe = make_gradfield_probe(data, n_points=n_points, classes=classes, source={"split": split})
    return save_gradfield_probe(probe, output)
