"""A probe of plain images: the first ``n_images`` of a split, in data set order, with labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError
from ..store import Probe, write_probe

PROBE_KIND = "images"


def images_probe_file(
    prepared: str | Path, output: str | Path, *, split: str, n_images: int
) -> Path:
    """Write the first ``n_images`` images of ``split`` of a prepared data set as a probe."""
    from ...data import load_split

    data = load_split(prepared, split)
    if not 1 <= n_images <= len(data):
        raise InputError(
            f"n_images must be between 1 and the {split} split's {len(data)} images, got {n_images}"
        )
    images = data.x[:n_images].numpy().astype(np.float32)
    params: dict[str, object] = {
        "dataset": data.info.name,
        "split": split,
        "n_images": int(n_images),
        "input_shape": list(images.shape[1:]),
        "selection": "first_n",
    }
    arrays: dict[str, np.ndarray] = {
        "images": images,
        "labels": data.y[:n_images].numpy().astype(np.int64),
    }
    return write_probe(output, arrays, kind=PROBE_KIND, params=params)


def probe_images(probe: Probe) -> np.ndarray:
    return np.asarray(probe.arrays["images"], dtype=np.float32)


def model_outputs(model, probe: Probe, device, batch_size: int = 512) -> np.ndarray:
    """The model's logits (N, C) on the probe's images, float64."""
    import torch

    images = torch.as_tensor(probe_images(probe))
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(model(images[start : start + batch_size].to(device)).double().cpu())
    return torch.cat(out).numpy()
