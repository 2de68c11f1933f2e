"""Model stitching (Dr. Frankenstein), robust stitching and cross-task stitching (docs/stitching.md).

A stitched network runs model 1 up to layer L1, a trainable affine stitching
layer T, and model 2 from L2 on; both donors are frozen. How well T can be
trained (relative to model 2's accuracy), how well the least-squares map
("ps_inv") does alone, and how the stitched network fares under attack or on
another task are the measures of functional similarity.

    from modelkin.stitching import stitch_models, load_stitched
    result = stitch_models("a.safetensors", "b.safetensors", "relu2", "relu2",
                           output="run.json", data="results/data", options={"preset": "paper"})
    model = load_stitched("run.json", "after")
"""

from .init import INITS, MASKS, AffineSolution, Moments, initialise, make_mask, solve_affine
from .model import (
    StitchedModel,
    StitchError,
    StitchGeometry,
    StitchingLayer,
    build_stitched,
    check_stitchable,
    common_stitch_points,
    layer_activation,
    stitch_geometry,
)
from .results import load_result, load_stitched
from .run import stitch_models
from .tasks import TRANSFORMS, Task, parse_task, train_task_donor
from .train import (
    PRESETS,
    TARGET_TYPES,
    StitchOptions,
    linear_cka_torch,
    soft_cross_entropy,
    target_loss,
    train_stitcher,
)

__all__ = [
    "INITS",
    "MASKS",
    "PRESETS",
    "TARGET_TYPES",
    "TRANSFORMS",
    "AffineSolution",
    "Moments",
    "StitchError",
    "StitchGeometry",
    "StitchOptions",
    "StitchedModel",
    "StitchingLayer",
    "Task",
    "build_stitched",
    "check_stitchable",
    "common_stitch_points",
    "initialise",
    "layer_activation",
    "linear_cka_torch",
    "load_result",
    "load_stitched",
    "make_mask",
    "parse_task",
    "soft_cross_entropy",
    "solve_affine",
    "stitch_geometry",
    "stitch_models",
    "target_loss",
    "train_stitcher",
    "train_task_donor",
]
