"""One checkpoint format for every model: a safetensors file whose header carries JSON metadata.

The metadata (architecture, data set, input normalisation, algorithm, recipe, seeds, epochs,
parent, code version) is enough to rebuild the model; the loader checks that the weights match
it. Nothing is ever unpickled. The input normalisation is the model's own
(:mod:`modelkin.models.normalisation`): recorded from the model when it is saved, used when it is
loaded; a checkpoint written before it was recorded loads with its data set's statistics.

A network from torchvision, timm or the user's code (:mod:`modelkin.models.sources`) is saved the
same way, its ``arch`` the source string (``torchvision:resnet18``) and its metadata how to
rebuild it (``source_kwargs``, ``preprocessing``, ``data_shape``; :func:`import_external`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import InputError, MissingFileError
from .io import file_sha256, save_safetensors
from .lineage import Lineage
from .models.normalisation import METADATA_KEY as NORMALISATION_KEY
from .models.normalisation import Normalisation, checkpoint_normalisation, normalisation_of
from .models.preprocessing import Preprocessing

if TYPE_CHECKING:
    import torch
    from torch import nn

METADATA_KEY = "modelkin"
REQUIRED_KEYS = ("arch", "dataset", "num_classes")


class CheckpointError(InputError):
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
    """Write weights and metadata atomically; ``meta`` must name arch, dataset and num_classes.

    The model's input normalisation is recorded from the model itself (``normalisation``), and
    a wrapped external network records how to rebuild it (its source, keyword arguments and
    preprocessing: :meth:`~modelkin.models.external.ExternalModel.checkpoint_meta`), so the
    record always matches the weights.
    """
    checkpoint_meta = getattr(model, "checkpoint_meta", None)
    if callable(checkpoint_meta):
        meta = {**meta, **checkpoint_meta()}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InputError(f"checkpoint metadata lacks {missing}")
    meta = {
        **meta,
        "modelkin_version": __version__,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    normalisation = normalisation_of(model)
    if normalisation is not None:
        meta[NORMALISATION_KEY] = normalisation.to_meta()
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state, path, {METADATA_KEY: json.dumps(meta, sort_keys=True)})


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor
    names, shapes, ``__metadata__``), without torch.

    The format is an 8-byte little-endian header length followed by the header's JSON.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 2 <= length <= min(size - 8, 100 << 20):
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(handle.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint ({err}). A plain "
            "PyTorch state dict can be imported with `modelkin import-checkpoint "
            "FILE --arch ARCH --dataset DATASET -o OUT.safetensors`."
        ) from err
    return header


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A checkpoint's modelkin metadata (read from the
    file's header alone; torch is not imported)."""
    header = read_header(path)
    stored = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if stored is None:
        raise CheckpointError(
            f"{path} has no modelkin metadata; import it with "
            "`modelkin import-checkpoint FILE --arch ARCH --dataset DATASET -o OUT.safetensors`"
        )
    return json.loads(stored)


def read_lineage(path: str | Path, name: str | None = None) -> Lineage:
    """The lineage record of a checkpoint (its metadata's lineage keys and the file's sha256)."""
    return Lineage.from_metadata(read_metadata(path), name=name, sha256=file_sha256(path))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the model from the metadata (with its own input normalisation) and load its
    weights (eval mode).

    An ``arch`` with a colon is a model source (``torchvision:resnet18``): the checkpoint is an
    imported network, rebuilt through :mod:`modelkin.models.sources` with its recorded keyword
    arguments and preprocessing; a plain ``arch`` is a zoo architecture, built for its data set.
    """
    from safetensors.torch import load_file

    from .models.sources import is_external

    path = Path(path)
    meta = read_metadata(path)
    model: nn.Module
    if is_external(str(meta["arch"])):
        from .models.external import build_from_meta

        model = build_from_meta(meta)
    else:
        from .models import build_model

        model = build_model(
            meta["arch"], meta["dataset"], meta["num_classes"], checkpoint_normalisation(meta)
        )
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
                f"{len(wrong)} shape mismatches (e.g. {k}: file "
                f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
            )
        raise CheckpointError(
            f"weights in {what} do not match the architecture: {'; '.join(details)}"
        )
    model.load_state_dict(state, strict=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a user's weights file, without unpickling anything.

    ``.safetensors``, or anything else read with ``torch.load(weights_only=True)`` (which refuses
    pickled objects other than tensors and plain containers). A training checkpoint's
    ``state_dict``/``model_state_dict``/``model``/``net`` entry is unwrapped, and the ``module.``
    prefix of ``nn.DataParallel`` removed.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    state: Any  # whatever the file holds, checked below
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"{path} cannot be read with torch.load(weights_only=True) "
                f"({err}); save a plain state dict (torch.save(model.state_dict(), "
                "path)) — modelkin never unpickles arbitrary objects"
            ) from err
    for key in ("state_dict", "model_state_dict", "model", "net"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def import_state_dict(
    path: str | Path,
    arch: str,
    dataset: str,
    num_classes: int | None = None,
    meta: dict[str, Any] | None = None,
    normalisation: Normalisation | None = None,
) -> Checkpoint:
    """Load a user's torchvision-style state dict (``.pt``/``.pth``
    read with weights_only=True, or safetensors) into a zoo architecture.

    ``normalisation``: what the model's own pipeline subtracted and divided its [0, 1] inputs by
    (``Normalisation.none()``: nothing; None: the data set's statistics, modelkin's default).
    For a network from torchvision, timm or the user's code see :func:`import_external`.
    """
    from .datasets import get_dataset_info
    from .models import build_model

    path = Path(path)
    state = read_state_dict(path)
    info = get_dataset_info(dataset)
    norm = normalisation or Normalisation.of_dataset(info)
    model = build_model(arch, info, num_classes, norm)
    _load_state_strict(model, state, f"{path} (as arch={arch}, dataset={dataset})")
    model.eval()
    meta = {
        "arch": arch,
        "dataset": dataset,
        "num_classes": num_classes or info.num_classes,
        "algorithm": "imported",
        "source": str(path),
        **(meta or {}),
        NORMALISATION_KEY: norm.to_meta(),
    }
    return Checkpoint(model, meta, path, file_sha256(path))


def import_external(
    source: str,
    weights_path: str | Path,
    num_classes: int,
    preprocessing: Preprocessing,
    kwargs: dict[str, Any] | None = None,
    *,
    dataset: str,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> Checkpoint:
    """A network from a model source (``torchvision:resnet18``, ``timm:resnet10t``,
    ``factory:pkg.mod:fn``) with the user's weights, as a checkpoint :func:`save_checkpoint`
    writes and every stage loads.

    The network is built untrained (no download) with ``num_classes`` outputs and ``kwargs``, and
    wrapped in :class:`~modelkin.models.external.ExternalModel` with ``preprocessing``; the
    weights (read by :func:`read_state_dict`) must match it exactly. ``dataset`` is the data set
    the model is bound to: a name modelkin knows (its image size is then the model's input size
    when ``preprocessing`` gives none, and its channels must be the preprocessing's) or the
    user's own. Nothing is written here.
    """
    from .datasets import DATASETS
    from .models.external import build_external

    path = Path(weights_path)
    state = read_state_dict(path)
    if not isinstance(dataset, str) or not dataset:
        raise InputError(f"dataset must name the data set the model is bound to, got {dataset!r}")
    try:
        json.dumps(kwargs or {})
    except (TypeError, ValueError) as err:
        raise InputError(
            f"keyword arguments for {source} must be JSON values (they are recorded in the "
            f"checkpoint), got {kwargs!r} ({err})"
        ) from None
    info = DATASETS.get(dataset)
    if info is not None and info.shape[0] != preprocessing.channels:
        raise InputError(
            f"data set {dataset!r} has {info.shape[0]}-channel images but the preprocessing "
            f"says {preprocessing.channels} channels; give --channels {info.shape[0]}"
        )
    model = build_external(
        source,
        num_classes,
        preprocessing,
        kwargs,
        image_size=info.shape[1:] if info is not None else None,
    )
    _load_state_strict(model.net, state, f"{path} (as arch={model.source})")
    model.eval()
    norm = normalisation_of(model)
    assert norm is not None  # an ExternalModel has input_mean and input_std
    meta: dict[str, Any] = {
        **model.checkpoint_meta(),
        "dataset": dataset,
        "algorithm": "imported",
        "source": str(path),
        NORMALISATION_KEY: norm.to_meta(),
    }
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != num_classes:
            raise InputError(
                f"{len(names)} class names given for a model with {num_classes} classes; give "
                "one name per class, in the order of the model's outputs"
            )
        meta["class_names"] = names
    if name is not None:
        meta["name"] = name
    return Checkpoint(model, meta, path, file_sha256(path))
