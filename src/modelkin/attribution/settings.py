"""TRAK's settings (everything the scores depend on) and the error of the attribution package."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

PROJECTION_TYPES = ("rademacher", "gaussian")


class AttributionError(InputError):
    """Inputs TRAK cannot work with (inconsistent shapes, singular kernel, unusable data loader)."""


SMALL_RIDGE = 1e-3  # relative λ: a thousandth of ΦᵀΦ's mean eigenvalue


def ridge_for(num_train: int, proj_dim: int) -> float:
    """The ridge that keeps TRAK's kernel invertible for ``num_train`` examples at ``proj_dim``:
    0 (traker's default) above ``proj_dim`` examples, :data:`SMALL_RIDGE` at or below it.

    Why: ΦᵀΦ is ``proj_dim`` × ``proj_dim`` of rank at most ``num_train``, so with fewer examples
    it is singular and :func:`~modelkin.attribution.trak.kernel_inverse` refuses it (at exactly
    ``proj_dim`` it is full rank but ill-conditioned). The ridge does not change the cost, so
    benchmarks that time small sizes use it rather than shrink ``proj_dim``.
    """
    return SMALL_RIDGE if num_train <= proj_dim else 0.0


@dataclass(frozen=True)
class TrakSettings:
    """Everything that defines TRAK scores (``batch_size`` and the memory budget change speed
    only)."""

    proj_dim: int | None = 2048  # None: no projection (identity; tiny models and tests only)
    proj_type: str = "rademacher"
    seed: int = 0
    ridge: float = 0.0  # λ = ridge × mean eigenvalue of ΦᵀΦ
    rescale_inverse: bool = True  # traker's division of (ΦᵀΦ + λI)⁻¹ by its mean absolute entry
    out_to_loss: bool = (
        True  # multiply by the mean over checkpoints of 1 − p_y per training example (traker)
    )
    batch_size: int | None = None  # None: 64 on CPU, 512 on CUDA
    max_projection_mib: float = 1024.0  # projection matrix block kept in memory at once
    precision: str = "fp32"  # gradients and projection: fp32, bf16 (autocast) or tf32 (CUDA)

    def __post_init__(self) -> None:
        if self.proj_dim is not None and self.proj_dim < 1:
            raise InputError(
                f"proj_dim must be a positive integer or None (no projection), not {self.proj_dim}"
            )
        if self.proj_type not in PROJECTION_TYPES:
            raise InputError(f"proj_type must be one of {PROJECTION_TYPES}, not {self.proj_type!r}")
        if self.ridge < 0:
            raise InputError(f"ridge must be >= 0, not {self.ridge}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1 or None, not {self.batch_size}")
        if self.max_projection_mib <= 0:
            raise InputError(f"max_projection_mib must be > 0, not {self.max_projection_mib}")
        from ..precision import check_precision

        check_precision(self.precision)
        if not isinstance(self.out_to_loss, bool):
            raise InputError(f"out_to_loss must be true or false, not {self.out_to_loss!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrakSettings:
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown TRAK setting(s) {unknown}; valid settings: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_params(self) -> dict[str, Any]:
        """The settings the scores depend on (not batch size or memory budget)."""
        return {
            k: v for k, v in self.to_dict().items() if k not in ("batch_size", "max_projection_mib")
        }

    def feature_params(self) -> dict[str, Any]:
        """The settings one checkpoint's features depend on (the out-to-loss weighting is applied
        when scoring)."""
        return {k: v for k, v in self.result_params().items() if k != "out_to_loss"}
