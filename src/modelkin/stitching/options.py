"""Stitching options and presets: every setting of a stitching run, validated, without torch.

The workflow plans stitching runs from these (``modelkin.stitching.plan``) when Snakemake parses
the workflow, so this module imports neither torch nor the modules that do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

INITS = ("random", "perm", "eye", "ps_inv", "ones-zeros")
MASKS = ("identity", "semi-match", "abs-semi-match", "random-permutation")
RESIZE_MODES = ("bilinear", "nearest", "area")
TARGET_TYPES = ("hard", "soft_1", "soft_2", "soft_12", "soft_1_plus_2")
ADVERSARIES = ("none", "madry", "trades")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("thirds", "constant")
VARIANTS = ("before", "after", "ps_inv")

# Named option sets. `paper`: what the Dr. Frankenstein paper's figures used (its plot scripts
# filter on soft_2 targets and ps_inv init); `cli-default`: the reference command line's defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"init": "ps_inv", "target_type": "soft_2"},
    "cli-default": {"init": "random", "target_type": "hard"},
}


@dataclass
class StitchOptions:
    """Every option of the reference tools, plus evaluation settings. Defaults: the reference
    CLI's."""

    # stitching layer
    init: str = "random"
    mask: str = "identity"
    low_rank: int | None = None
    flatten: bool = False
    resize: str = "bilinear"
    # loss
    target_type: str = "hard"
    temperature: float = 1.0
    l1: float = 0.0
    cka_reg: float = 0.0
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    epochs: int = 30
    batch_size: int = 128
    schedule: str = "thirds"
    seed: int = 0
    augment: bool = False
    train_limit: int | None = None
    # donors
    train_bn: bool = False
    # robust stitching
    adversary: str = "none"
    epsilon: float | None = None
    step_size: float | None = None
    attack_steps: int = 10
    random_start: bool = True
    trades_beta: float = 10.0
    attack_ratio: float = 1.0
    # least squares
    ps_inv: bool = True
    ps_inv_ridge: float = 1e-10
    # speed
    cache_front: bool | str = "auto"
    # evaluation
    measures: list[str] = field(default_factory=lambda: ["cka", "mse"])
    measure_images: int = 500
    robust_eval: bool | str = "auto"
    eval_epsilon: float | None = None
    eval_step_size: float | None = None
    eval_steps: int = 20
    max_robust_images: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        choices = {
            "init": INITS,
            "mask": MASKS,
            "target_type": TARGET_TYPES,
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "adversary": ADVERSARIES,
            "resize": RESIZE_MODES,
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise InputError(
                    f"stitching option {key} must be one of {', '.join(valid)}, not "
                    f"{getattr(self, key)!r}"
                )
        if self.preset is not None and self.preset not in PRESETS:
            raise InputError(
                f"unknown stitching preset {self.preset!r}; presets: {', '.join(PRESETS)}"
            )
        if self.cache_front not in (True, False, "auto"):
            raise InputError(f"cache_front must be true, false or 'auto', not {self.cache_front!r}")
        if self.robust_eval not in (True, False, "auto"):
            raise InputError(f"robust_eval must be true, false or 'auto', not {self.robust_eval!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.temperature <= 0:
            raise InputError(
                "stitching needs epochs >= 1, batch_size >= 1, lr > 0 and temperature > 0"
            )
        if not 0.0 <= self.attack_ratio <= 1.0:
            raise InputError(f"attack_ratio must be in [0, 1], not {self.attack_ratio}")
        if self.low_rank is not None and self.low_rank < 1:
            raise InputError(
                f"low_rank must be a positive rank or null (full rank), not {self.low_rank}"
            )
        if self.low_rank is not None and self.mask != "identity":
            raise InputError(
                "low_rank and a mask other than identity cannot be combined; choose one "
                "restriction of T"
            )
        self.measures = list(self.measures)

    @classmethod
    def from_dict(
        cls, values: dict[str, Any] | None = None, *, preset: str | None = None
    ) -> StitchOptions:
        """``values`` over the preset over the defaults. A ``preset`` key in ``values`` counts
        too."""
        values = dict(values or {})
        preset = values.pop("preset", None) or preset
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"unknown stitching option(s) {unknown}; valid options: "
                f"{sorted(known - {'preset'})}"
            )
        if preset is not None and preset not in PRESETS:
            raise InputError(f"unknown stitching preset {preset!r}; presets: {', '.join(PRESETS)}")
        merged = {**(PRESETS[preset] if preset else {}), **values}
        return cls(**merged, preset=preset)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def attack_budget(self, default_epsilon: float) -> tuple[float, float]:
        eps = default_epsilon if self.epsilon is None else self.epsilon
        return eps, eps / 4 if self.step_size is None else self.step_size

    @property
    def needs_targets(self) -> tuple[bool, bool]:
        """(model 1's logits, model 2's logits) are needed as soft targets."""
        t = self.target_type
        return t in ("soft_1", "soft_12", "soft_1_plus_2"), t in (
            "soft_2",
            "soft_12",
            "soft_1_plus_2",
        )

    @property
    def front_is_fixed(self) -> bool:
        """The front activation of an image is the same at every step (so it can be cached)."""
        return not self.train_bn and not self.augment and self.adversary == "none"
