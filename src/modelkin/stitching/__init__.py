"""Model stitching (Dr. Frankenstein), robust stitching and cross-task stitching
(docs/stitching.md).

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

from .._lazy import lazy_exports

__all__ = [
    "AffineSolution",
    "INITS",
    "MASKS",
    "Moments",
    "PRESETS",
    "StitchError",
    "StitchGeometry",
    "StitchOptions",
    "StitchedModel",
    "StitchingLayer",
    "TARGET_TYPES",
    "TRANSFORMS",
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
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "INITS": ".options",
        "MASKS": ".options",
        "PRESETS": ".options",
        "TARGET_TYPES": ".options",
        "StitchOptions": ".options",
        "AffineSolution": ".init",
        "Moments": ".init",
        "initialise": ".init",
        "make_mask": ".init",
        "solve_affine": ".init",
        "StitchedModel": ".model",
        "StitchError": ".model",
        "StitchGeometry": ".model",
        "StitchingLayer": ".model",
        "build_stitched": ".model",
        "check_stitchable": ".model",
        "common_stitch_points": ".model",
        "layer_activation": ".model",
        "stitch_geometry": ".model",
        "linear_cka_torch": ".losses",
        "soft_cross_entropy": ".losses",
        "target_loss": ".losses",
        "train_stitcher": ".train",
        "load_result": ".results",
        "load_stitched": ".results",
        "stitch_models": ".run",
        "TRANSFORMS": ".tasks",
        "Task": ".tasks",
        "parse_task": ".tasks",
        "train_task_donor": ".tasks",
    },
)
