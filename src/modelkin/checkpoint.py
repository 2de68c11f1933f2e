"""One checkpoint format for every model: a safetensors file whose header carries JSON metadata.

The metadata (architecture, data set, algorithm, recipe, seeds, epochs, accuracy,
robust accuracy, parent, code version) is enough to rebuild the model; the
loader checks that the weights match it. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .io import atomic_path, file_sha256

METADATA_KEY = "modelkin"
REQUIRED_KEYS = ("arch", "dataset", "num_classes")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match its metadata."""


@dataclass
class Checkpoint:
    model: nn.Module
    meta: dict[str, Any]
    path: Path | None = None
    sha256: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.path.stem if self.path else "model")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights and metadata atomically; ``meta`` must name arch, dataset and num_classes."""
    from safetensors.torch import save_file

    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    meta = {
        **meta,
        "modelkin_version": __version__,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint ({err}). A plain PyTorch state dict can be "
            "imported with `modelkin import-checkpoint FILE --arch ARCH --dataset DATASET -o OUT.safetensors`."
        ) from err
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{path} has no modelkin metadata; import it with "
            "`modelkin import-checkpoint FILE --arch ARCH --dataset DATASET -o OUT.safetensors`"
        )
    return json.loads(header[METADATA_KEY])


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the model from the metadata and load its weights (eval mode)."""
    from safetensors.torch import load_file

    from .models import build_model

    path = Path(path)
    meta = read_metadata(path)
    model = build_model(meta["arch"], meta["dataset"], meta["num_classes"])
    state = load_file(str(path))
    _load_state_strict(
        model, state, f"{path} (metadata: arch={meta['arch']}, dataset={meta['dataset']})"
    )
    model.to(device).eval()
    return Checkpoint(model, meta, path, file_sha256(path))


def _load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            details.append(
                f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})"
            )
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
            )
        raise CheckpointError(
            f"weights in {what} do not match the architecture: {'; '.join(details)}"
        )
    model.load_state_dict(state, strict=True)


def import_state_dict(
    path: str | Path,
    arch: str,
    dataset: str,
    num_classes: int | None = None,
    meta: dict[str, Any] | None = None,
) -> Checkpoint:
    """Load a user's torchvision-style state dict (``.pt``/``.pth`` read with weights_only=True, or safetensors)."""
    from .data import get_dataset_info
    from .models import build_model

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"{path} cannot be read with torch.load(weights_only=True) ({err}); save a plain state dict "
                "(torch.save(model.state_dict(), path)) — modelkin never unpickles arbitrary objects"
            ) from err
    for key in ("state_dict", "model_state_dict", "model", "net"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    info = get_dataset_info(dataset)
    model = build_model(arch, info, num_classes)
    _load_state_strict(model, state, f"{path} (as arch={arch}, dataset={dataset})")
    model.eval()
    meta = {
        "arch": arch,
        "dataset": dataset,
        "num_classes": num_classes or info.num_classes,
        "algorithm": "imported",
        "source": str(path),
        **(meta or {}),
    }
    return Checkpoint(model, meta, path, file_sha256(path))
