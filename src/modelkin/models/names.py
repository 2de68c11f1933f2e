"""Every architecture's named layers, without torch: what the configuration check compares layer
names against before any job runs.

The names come from ``layer_names.json`` beside this module, generated once from the real models
(``python -m modelkin.models.names``, which needs torch); ``tests/test_config_checks.py`` builds
every architecture for every data set shape and checks the table still matches. An architecture's
names can depend on the input shape (VGG pools fewer times on 28x28 images), so the table holds
one entry per group of shapes with the same names.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

TABLE_RESOURCE = "layer_names.json"


def shape_key(shape: tuple[int, ...]) -> str:
    """``(1, 32, 32)`` -> ``"1x32x32"``."""
    return "x".join(str(int(s)) for s in shape)


@cache
def _table() -> dict[str, list[dict[str, Any]]]:
    return json.loads(resources.files(__package__).joinpath(TABLE_RESOURCE).read_text())


def _entry(arch: str, dataset: str) -> dict[str, Any] | None:
    from ..datasets import DATASETS

    info = DATASETS.get(dataset)
    if info is None:
        return None
    key = shape_key(info.shape)
    for entry in _table().get(arch, []):
        if key in entry["shapes"]:
            return entry
    return None


def known_layers(arch: str, dataset: str) -> list[str] | None:
    """The named layers of ``arch`` built for ``dataset``, in execution order (None: unknown)."""
    entry = _entry(arch, dataset)
    return None if entry is None else list(entry["layers"])


def known_cut_points(arch: str, dataset: str) -> list[str] | None:
    """The cut points of ``arch`` on ``dataset`` (layers through which all later ones depend on
    the input)."""
    entry = _entry(arch, dataset)
    return None if entry is None else list(entry["cut_points"])


def build_table() -> dict[str, list[dict[str, Any]]]:
    """The table from the real models (imports torch): each architecture on each data set shape."""
    from ..datasets import DATASETS
    from . import build_model
    from .layers import is_cut_point, layer_names
    from .registry import ARCHITECTURES

    datasets_by_shape: dict[str, str] = {}
    for name, info in DATASETS.items():
        datasets_by_shape.setdefault(shape_key(info.shape), name)
    table: dict[str, list[dict[str, Any]]] = {}
    for arch in ARCHITECTURES:
        entries: list[dict[str, Any]] = []
        for key, dataset in sorted(datasets_by_shape.items()):
            model = build_model(arch, dataset)
            names = layer_names(model)
            cuts = [n for n in names if is_cut_point(model, n)]
            for entry in entries:
                if entry["layers"] == names and entry["cut_points"] == cuts:
                    entry["shapes"].append(key)
                    break
            else:
                entries.append({"shapes": [key], "layers": names, "cut_points": cuts})
        table[arch] = entries
    return table


def main() -> None:  # pragma: no cover - run by hand after changing an architecture
    from pathlib import Path

    path = Path(__file__).with_name(TABLE_RESOURCE)
    path.write_text(json.dumps(build_table(), indent=1, sort_keys=True) + "\n")
    print(path)


if __name__ == "__main__":  # pragma: no cover
    main()
