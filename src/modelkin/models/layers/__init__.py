"""Named layers of any model: list them, read their activations, replace them, split a model at
one.

A layer name is the module path (``layer3.1.conv2``, ``blocks.4.mlp``) of a
module called exactly once per forward pass, relative to the model's
``layer_root`` when it has one (a wrapper around a user's network). Layers are
found and read with forward hooks (:mod:`.discover`, :mod:`.hooks`), so every
model that runs has them: the zoo, torchvision, timm and users' own modules.

Only splitting a model into ``front`` (input -> layer) and ``end`` (layer ->
logits) uses ``torch.fx`` (:mod:`.graph`), and only for the end: a layer is a
*cut point* when everything after it depends on the input only through it.
Where fx cannot trace the model or the layer is not a cut point, the end is the
whole model run with the layer's output replaced (:func:`replaced`);
:func:`end_plan` says which and why.
"""

from .discover import (
    LayerError,
    check_layers,
    describe_names,
    input_shape,
    layer_module,
    layer_names,
    layer_root,
    module_path,
)
from .graph import EndPlan, end_plan, is_cut_point, split, traceable
from .hooks import LayerInfo, activation, capture, layer_table, replaced

__all__ = [
    "EndPlan",
    "LayerError",
    "LayerInfo",
    "activation",
    "capture",
    "check_layers",
    "describe_names",
    "end_plan",
    "input_shape",
    "is_cut_point",
    "layer_module",
    "layer_names",
    "layer_root",
    "layer_table",
    "module_path",
    "replaced",
    "split",
    "traceable",
]
