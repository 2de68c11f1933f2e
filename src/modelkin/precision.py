"""The arithmetic precision of the network passes of signature extraction and TRAK featurisation.

- ``fp32``: float32 throughout (on CUDA also without TF32 in matrix products and convolutions,
  which PyTorch otherwise allows in cuDNN convolutions by default).
- ``bf16``: the model's forward (and backward) pass under ``torch.autocast`` with bfloat16:
  matrix products and convolutions in bfloat16 with float32 accumulation, on CPUs with AVX-512
  bf16 or AMX units and on GPUs; everything after the network (least squares, cumulative sums,
  kernels, distances) stays in float32/float64.
- ``tf32``: float32 tensors with TF32 matrix units (CUDA only, Ampere and newer).

A signature or feature file records the precision it was made with: signatures of different
precisions are not compared (``SignatureMismatch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "tf32")
DEFAULT_PRECISION = "fp32"


class PrecisionError(InputError):
    """A precision that is unknown or that the device cannot run."""


def check_precision(precision: str, device: torch.device | str | None = None) -> str:
    """``precision`` if it is known and runs on ``device`` (a torch device or its type)."""
    if precision not in PRECISIONS:
        raise PrecisionError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    kind = getattr(device, "type", device)
    if precision == "tf32" and kind is not None and not str(kind).startswith("cuda"):
        raise PrecisionError(
            "precision tf32 needs a CUDA device (TF32 is a GPU matrix-unit format); on a CPU use "
            "fp32, or bf16 on CPUs with AVX-512 bf16 / AMX units"
        )
    return precision


@contextmanager
def compute_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed network passes at ``precision`` on ``device`` (see the module docstring).

    The process-wide TF32 switches are restored on exit.
    """
    import torch

    check_precision(precision, device)
    if device.type != "cuda":
        if precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bf16":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
