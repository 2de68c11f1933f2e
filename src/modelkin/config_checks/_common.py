"""Checks shared by the others: the catalog, paths, device, algorithms."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelkinError

# ---------------------------------------------------------------------------------------------


def _catalog(config: dict[str, Any]):
    from ..catalog import ModelCatalog

    return ModelCatalog(config)


def _catalog_error(config: dict[str, Any]) -> str | None:
    try:
        _catalog(config)
    except ModelkinError as err:
        return str(err)
    return None


def _paths(config: dict[str, Any]) -> Iterable[str]:
    for key in ("results", "data_root"):
        path = Path(str(config.get(key, "")))
        if path.exists() and not path.is_dir():
            yield f"{key}: {path} is a file, not a directory; set {key} to a directory"


def _datasets(config: dict[str, Any]) -> Iterable[str]:
    """The config's own data sets (``datasets:``): a built-in name, a missing path, files that
    cannot be prepared as configured (one line each, naming the entry)."""
    from ..data_sources import config_dataset_problems

    yield from config_dataset_problems(config)


def cuda_visible() -> tuple[bool, str]:
    """Whether this machine shows a CUDA GPU, without importing torch; and why not."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return False, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        return True, ""
    if Path("/dev/kfd").exists():  # ROCm builds of torch answer to "cuda" too
        return True, ""
    return False, "this machine has no NVIDIA driver (/proc/driver/nvidia/version, nvidia-smi)"


def _device(config: dict[str, Any]) -> Iterable[str]:
    if config.get("device") == "cuda":
        ok, why = cuda_visible()
        if not ok:
            yield f"device: cuda, but {why}; set device: auto (CUDA when there is one) or cpu"


def _algorithms(config: dict[str, Any]) -> Iterable[str]:
    from ..datasets import DATASETS
    from ..models.registry import ARCHITECTURES

    defined = list((config.get("training") or {}).get("algorithms") or {})
    zoo = config.get("zoo") or {}
    for i, algorithm in enumerate(zoo.get("algorithms") or []):
        if algorithm not in defined:
            yield (
                f"zoo.algorithms[{i}]: {algorithm!r} is not defined in training.algorithms "
                f"(defined: {', '.join(defined)}); define it there or remove it"
            )
    tasks = list((config.get("stitching") or {}).get("tasks") or {})
    for i, override in enumerate((config.get("training") or {}).get("overrides") or []):
        for key, known in (
            ("algorithm", defined),
            ("arch", list(ARCHITECTURES)),
            ("dataset", [*DATASETS, *tasks]),
        ):
            if key in override and override[key] not in known:
                yield (
                    f"training.overrides[{i}].{key}: {override[key]!r} matches no model "
                    f"(known: {', '.join(known)}); the override would change nothing"
                )
    modeldiff = config.get("modeldiff") or {}
    if modeldiff.get("arch") is not None and modeldiff["arch"] not in ARCHITECTURES:
        yield (
            f"modeldiff.arch: {modeldiff['arch']!r} is not an architecture "
            f"(allowed: {', '.join(ARCHITECTURES)})"
        )
    lds = (modeldiff.get("lds") or {}).get("algorithm")
    roles = [modeldiff.get("algorithm_a"), modeldiff.get("algorithm_b")]
    if lds is not None and lds not in roles:
        yield (
            f"modeldiff.lds.algorithm: {lds!r} is neither algorithm_a nor algorithm_b "
            f"({', '.join(map(str, roles))})"
        )
    gradfield = config.get("gradfield") or {}
    if (
        "gradfield" in _signature_methods(config)
        and not gradfield.get("selection_models")
        and gradfield.get("selection_algorithm", "standard") not in (zoo.get("algorithms") or [])
    ):
        yield (
            f"gradfield.selection_algorithm: {gradfield.get('selection_algorithm', 'standard')!r} "
            f"is not in zoo.algorithms ({', '.join(zoo.get('algorithms') or [])}); its models "
            "select ModelGiF's reference points: name a zoo algorithm or list "
            "gradfield.selection_models"
        )


def _signature_methods(config: dict[str, Any]) -> list[str]:
    """The signature methods some stage of this configuration computes."""
    from ..signatures.registry import METHODS

    used = set((config.get("distances") or {}).get("methods") or [])
    used |= {m for m in METHODS if (config.get(m) or {}).get("build_for_zoo")}
    concordance = config.get("concordance") or {}
    used |= {m for m in (concordance.get("methods") or []) if m in METHODS}
    return [m for m in METHODS if m in used]
