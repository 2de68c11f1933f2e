"""A probe of images: the first ``n_images`` of a split in data set order, or blends of two images
of different classes (``blend``), with labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError
from ..store import Probe, write_probe

PROBE_KIND = "images"


def images_probe_file(
    prepared: str | Path,
    output: str | Path,
    *,
    split: str,
    n_images: int,
    blend: float | None = None,
    seed: int = 0,
) -> Path:
    """Write a probe of ``n_images`` images of ``split`` of a prepared data set.

    ``blend=None``: the split's first ``n_images`` images. ``blend=w`` (0 < w <= 0.5): ``n_images``
    blends ``(1 - w) x + w x'`` of two images of different classes, drawn with ``seed``. Blends lie
    between the classes, where each model's own decision boundaries and not the data decide the
    answer, so independent models disagree there far more than on natural images, and a copy does
    not (the idea of fingerprinting the classification boundary: Cao et al., IPGuard, 2021).
    """
    from ...data import load_split

    data = load_split(prepared, split)
    if not 1 <= n_images <= len(data):
        raise InputError(
            f"n_images must be between 1 and the {split} split's {len(data)} images, got {n_images}"
        )
    params: dict[str, object] = {
        "dataset": data.info.name,
        "split": split,
        "n_images": int(n_images),
    }
    y = data.y.numpy().astype(np.int64)
    arrays: dict[str, np.ndarray]
    if blend is None:
        images = data.x[:n_images].numpy().astype(np.float32)
        params["selection"] = "first_n"
        arrays = {"labels": y[:n_images]}
    else:
        if not 0.0 < blend <= 0.5:
            raise InputError(
                f"blend must be in (0, 0.5] (the weight of the second image) or null for plain "
                f"images, got {blend}"
            )
        first, second = blend_pairs(y, n_images, seed)
        x = data.x.numpy()  # only the drawn images are converted and blended
        images = ((1.0 - blend) * x[first] + blend * x[second]).astype(np.float32)
        params.update(selection="blends", blend=float(blend), seed=int(seed))
        arrays = {"labels": y[first], "second_labels": y[second]}
    params["input_shape"] = list(images.shape[1:])
    return write_probe(output, {"images": images, **arrays}, kind=PROBE_KIND, params=params)


def blend_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs (i, j) with ``labels[i] != labels[j]``, drawn uniformly."""
    if len(np.unique(labels)) < 2:
        raise InputError("a probe of blends needs images of at least two classes; set blend: null")
    rng = np.random.default_rng(seed)
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    found = 0
    while found < n_pairs:
        i = rng.integers(0, len(labels), n_pairs)
        j = rng.integers(0, len(labels), n_pairs)
        keep = labels[i] != labels[j]
        first.append(i[keep])
        second.append(j[keep])
        found += int(keep.sum())
    return np.concatenate(first)[:n_pairs], np.concatenate(second)[:n_pairs]


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
