"""The unlearning stage's probes: the first training images of every class (``unlearning.probe:
all``) or of the forgotten class (``forget_class``), in data set order.

ModelGiF verifies unlearning on the first training images of the forgotten class with the true
label as the target; the Zest probe is made the same way (its first ``n_images`` images). Each
probe takes the method's configured size, or every image there is when the class has fewer
(recorded in the probe's parameters). No ModelGiF selection: it would choose the points by the
very models the stage compares with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plan import CLASS_PROBES, UnlearningError

log = logging.getLogger(__name__)


def unlearning_probe_file(
    prepared: str | Path,
    output: str | Path,
    *,
    method: str,
    classes: Sequence[int] | None,
    split: str,
    **settings: Any,
) -> Path:
    """Write ``method``'s probe of the first images of ``classes`` (None: of every class) in
    ``split`` (data set order) to ``output``; ``settings``: the rest of the probe settings (Zest's,
    or ModelGiF's ``n_points``)."""
    from ..data import load_split

    if method not in CLASS_PROBES:
        raise UnlearningError(
            f"probes of one class exist for {', '.join(CLASS_PROBES)}, not {method}"
        )
    data = load_split(prepared, split)
    labels = data.y.numpy()
    chosen = np.arange(len(labels)) if classes is None else np.flatnonzero(np.isin(labels, classes))
    if len(chosen) == 0:
        raise UnlearningError(
            f"the {split} split of {data.info.name} has no images of classes {list(classes or [])}"
        )
    source = {"split": split, "classes": None if classes is None else [int(c) for c in classes]}
    if method == "zest":
        from ..signatures.zest.extract import make_zest_probe, save_zest_probe

        wanted = int(settings.pop("n_images"))
        n = _capped(wanted, len(chosen), "zest n_images", classes)
        probe = make_zest_probe(
            data.subset(chosen[:n]),
            n_images=n,
            **settings,
            source={
                **source,
                "selection": "first_n" if classes is None else "first_n_of_classes",
                "indices": chosen[:n].tolist(),
            },
        )
        return save_zest_probe(probe, output)
    from ..signatures.gradfield.probe import make_gradfield_probe, save_gradfield_probe

    n = _capped(int(settings.pop("n_points")), len(chosen), "gradfield reference_points", classes)
    if settings:
        raise UnlearningError(f"unknown gradfield probe settings {sorted(settings)}")
    gradfield = make_gradfield_probe(data, n_points=n, classes=classes, source=source)
    return save_gradfield_probe(gradfield, output)


def _capped(wanted: int, available: int, what: str, classes: Sequence[int] | None) -> int:
    if wanted > available:
        log.info(
            "%s is %d but there are %d images (classes %s): the probe takes all of them",
            what,
            wanted,
            available,
            "all" if classes is None else list(classes),
        )
    return min(wanted, available)
