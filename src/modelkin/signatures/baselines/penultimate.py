"""Linear CKA at the penultimate layer: the activations that feed the classification head.

Signature: the (N, D) input of the model's last ``nn.Linear`` on the probe's images (D may differ
between models). Distance ``cka``: 1 - linear CKA (Kornblith et al. 2019, biased HSIC), in [0, 1];
any two models on the same probe can be compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...measures.cka import linear_cka
from ..base import Computed, Distance, SignatureMethod
from .images import PROBE_KIND, images_probe_file, probe_images


def cka_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - linear_cka(a, b))


def head_inputs(model, images: np.ndarray, device, batch_size: int = 512) -> np.ndarray:
    """The inputs of the model's last ``nn.Linear`` (its head), flattened per image."""
    import torch
    from torch import nn

    from ...errors import InputError

    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise InputError(f"{type(model).__name__} has no nn.Linear head to read the features of")
    captured: list[torch.Tensor] = []
    handle = heads[-1].register_forward_hook(
        lambda _m, inputs, _out: captured.append(inputs[0].detach().flatten(1).double().cpu())
    )
    model.eval()
    try:
        with torch.inference_mode():
            x = torch.as_tensor(images)
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size].to(device))
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


class PenultimateCKAMethod(SignatureMethod):
    name = "penultimate_cka"
    description = "linear CKA of the activations feeding the classification head"
    needs = frozenset({"activations"})
    axes = ("image", "feature")
    class_axis = "feature"  # feature counts may differ between architectures
    probe_kind = PROBE_KIND
    probe_keys = ("split", "n_images")
    distances = (
        Distance("penultimate_cka", "cka", cka_distance, False, True, False, (0.0, 1.0),
                 "1 - linear CKA of the penultimate-layer activations on the probe."),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        defaults = self.settings_from_config(self.config_defaults(), "probe")
        return images_probe_file(prepared, output, **{**defaults, **settings})

    def compute(self, model, probe, *, device, chunk_size=None, **settings: Any) -> Computed:
        features = head_inputs(model, probe_images(probe), device, batch_size=chunk_size or 512)
        return Computed(features.astype(np.float32), {"layer": "input of the last nn.Linear"})
