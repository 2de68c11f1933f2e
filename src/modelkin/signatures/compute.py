"""Computing a signature, the same way for every method: the checks live here, not in the methods.

:func:`compute_signature` takes a loaded model and probe; :func:`signature_file` is the file
edge (what the ``signature`` rule and ``modelkin signature`` call): it loads and hashes the
checkpoint and the probe once each, computes, and writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .registry import get_method
from .store import (
    Probe,
    SignatureError,
    SignatureOut,
    read_probe,
    streamed_signature,
    write_signature,
)

if TYPE_CHECKING:
    import torch

    from ..checkpoint import Checkpoint
    from .base import Computed, SignatureMethod

log = logging.getLogger(__name__)


def check_model_fits_probe(model: torch.nn.Module, probe: Probe, what: str) -> None:
    """The model takes inputs of the probe's shape (a clear error before any work otherwise)."""
    # an external model resizes its data set's images (data_shape) to its own in_shape
    expected = getattr(model, "data_shape", None) or getattr(model, "in_shape", None)
    if expected is not None and probe.input_shape and tuple(expected) != probe.input_shape:
        raise SignatureError(
            f"{what} takes inputs of shape {tuple(expected)} but the probe {probe.path} holds "
            f"{probe.input_shape} images; use the probe made from the model's own data set"
        )


def check_finite_outputs(
    model: torch.nn.Module, inputs: np.ndarray, device: torch.device, what: str
) -> None:
    """Every logit of the model on the probe's inputs is finite (a NaN or inf output, e.g. from a
    broken bias, would make any signature meaningless)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(inputs), 512):
                batch = torch.as_tensor(inputs[start : start + 512], device=device)
                logits = model(batch)
                bad = ~torch.isfinite(logits)
                if bad.any():
                    row, column = (int(i) for i in torch.nonzero(bad)[0])
                    raise SignatureError(
                        f"{what} gives non-finite outputs on the probe ({int(bad.sum())} values, "
                        f"e.g. class {column} of input {start + row}); check the checkpoint's "
                        "weights (a NaN or inf parameter)"
                    )
    finally:
        model.train(was_training)


def check_finite_parameters(model: torch.nn.Module, what: str) -> None:
    """Every parameter is finite (for methods that read weights, not outputs)."""
    import torch

    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise SignatureError(
                f"{what} has non-finite values in its parameter {name}; check the checkpoint"
            )


def compute_signature(
    method: str | SignatureMethod,
    model: torch.nn.Module,
    probe: Probe | None,
    *,
    device: str | torch.device = "auto",
    chunk_size: int | None = None,
    what: str = "the model",
    out: SignatureOut | None = None,
    **settings: Any,
) -> Computed:
    """``method``'s signature of ``model`` on ``probe``, after the checks every method shares.

    ``out``: for a method that ``streams_to_disk``, the file the signature is written into while
    it is computed (:func:`~modelkin.signatures.store.streamed_signature`).
    """
    from ..device import resolve_device

    method = get_method(method) if isinstance(method, str) else method
    if method.probe_kind is None:
        probe = None
    elif probe is None or probe.kind != method.probe_kind:
        found = "no probe" if probe is None else f"{probe.path}, a {probe.kind} probe"
        raise SignatureError(f"{method.name} needs a {method.probe_kind} probe, got {found}")
    torch_device = resolve_device(device)
    model.to(torch_device)
    if probe is not None:
        check_model_fits_probe(model, probe, what)
        inputs = method.probe_inputs(probe)
        if inputs is not None:
            check_finite_outputs(model, inputs, torch_device, what)
    else:
        check_finite_parameters(model, what)
    if out is not None:
        if not method.streams_to_disk:
            raise SignatureError(f"the {method.name} method does not stream its signature")
        settings["out"] = out
    computed = method.compute(model, probe, device=torch_device, chunk_size=chunk_size, **settings)
    for name, array in {"signature": computed.data, **computed.extras}.items():
        bad, lowest, highest = _scan(array)
        if bad:
            raise SignatureError(
                f"the {method.name} {name} of {what} holds {bad} "
                "non-finite values; check the checkpoint's weights"
            )
        if name == "signature" and lowest == highest and _size(array) > 1:
            # Every distance to it would be meaningless (cos of a zero vector reads as 1).
            raise SignatureError(
                f"the {method.name} signature of {what} is constant (every value {lowest:g}): "
                "its outputs do not depend on its input on this probe (e.g. an untrained "
                "classifier head initialised to zero); check the checkpoint's weights"
            )
    return computed


def _size(array: Any) -> int:
    return int(np.prod(getattr(array, "shape", np.shape(array))))


def _scan(array: Any, rows: int = 16) -> tuple[int, float, float]:
    """(non-finite entries, lowest and highest finite value) of a float array, read ``rows`` rows
    at a time from an array on disk; (0, nan, nan) for other arrays."""
    if isinstance(array, np.ndarray) or not hasattr(array, "shape") or len(array.shape) == 0:
        blocks: Any = [np.asarray(array)]
    elif np.dtype(array.dtype).kind != "f":
        return 0, float("nan"), float("nan")
    else:
        blocks = (np.asarray(array[i : i + rows]) for i in range(0, array.shape[0], rows))
    bad, lowest, highest = 0, float("inf"), float("-inf")
    for block in blocks:
        if block.dtype.kind != "f":
            return 0, float("nan"), float("nan")
        finite = np.isfinite(block)
        bad += int((~finite).sum())
        if finite.any():
            lowest = min(lowest, float(block[finite].min()))
            highest = max(highest, float(block[finite].max()))
    return bad, lowest, highest


def signature_file(
    method: str,
    checkpoint: str | Path | Checkpoint,
    probe: str | Path | Probe | None,
    output: str | Path,
    *,
    device: str = "auto",
    chunk_size: int | None = None,
    name: str | None = None,
    **settings: Any,
) -> Path:
    """Compute the ``method`` signature of a checkpoint on a probe file and write it to ``output``.

    ``name`` is the model's id (recorded in the signature's lineage; default: the checkpoint's).
    """
    from ..checkpoint import Checkpoint, load_checkpoint
    from ..device import resolve_device

    entry = get_method(method)
    torch_device = resolve_device(device)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if entry.probe_kind is None or probe is None:
        stored = None
    else:
        stored = probe if isinstance(probe, Probe) else read_probe(probe, kind=entry.probe_kind)
    options: dict[str, Any] = {
        "device": torch_device,
        "chunk_size": chunk_size,
        "what": str(ckpt.path or ckpt.name),
    }
    if entry.streams_to_disk:
        with streamed_signature(output) as out:
            computed = compute_signature(entry, ckpt.model, stored, out=out, **options, **settings)
            out.finish(computed, method=entry, checkpoint=ckpt, probe=stored, name=name)
            shape = tuple(computed.data.shape)
    else:
        computed = compute_signature(entry, ckpt.model, stored, **options, **settings)
        write_signature(output, computed, method=entry, checkpoint=ckpt, probe=stored, name=name)
        shape = tuple(computed.data.shape)
    log.info("%s signature of %s: shape %s", entry.name, name or ckpt.name, shape)
    return Path(output)
