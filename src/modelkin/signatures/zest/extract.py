"""Zest (Jia et al., ICLR 2022): a model's signature
is the set of linear LIME surrogates of its logits.

For each of N reference images (the first N training images, in data set order)
the image is cut into F_i superpixels by quickshift; S binary masks Z_i (S, F_i)
switch superpixels on or off (row 0 all on); a switched-off superpixel shows the
data set's mean colour (0 in the model's normalised input space). The model's raw
logits Y_i (S, C) on the perturbed images are regressed on Z_i by ordinary least
squares without intercept or weights: W_i = pinv(Z_iᵀZ_i) Z_iᵀ Y_i. The signature
is concat_i W_i, shape (ΣF_i, C).

The probe (images, superpixels, masks) is computed once per input space and
shared by every model. The extractor builds perturbed images on the device in
chunks (never N*S images in memory) and solves all N least-squares problems in
one batched float64 solve, padding every Z_i to F_max columns of zeros.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data import Split, load_split, split_size
from ...device import resolve_device
from ...errors import InputError
from ...precision import DEFAULT_PRECISION, check_precision, compute_precision
from ...progress import progress
from ..base import auto_chunk
from ..store import Probe, SignatureError, read_probe, write_probe

log = logging.getLogger(__name__)

PROBE_KIND = "zest"
# Perturbed images per forward pass when chunk_size is None (measured: LeNet on 2 CPU cores runs
# 30k images/s in batches of 256-512 but 13k/s in batches of 8192; GPUs want large batches).
AUTO_CHUNK_SIZE = {"cuda": 8192, "cpu": 256}


@dataclass
class ZestProbe:
    """Reference images with their superpixels and perturbation masks.

    images:       (N, C, H, W) float32 in [0, 1]
    segments:     (N, H, W) int32, superpixel labels 0..F_i-1 of image i
    num_segments: (N,) int32, F_i
    masks:        (N, S, F_max) bool; row 0 all ones (up to F_i); columns >= F_i are False
    params:       how it was made (data set, split, quickshift settings, seed, hide colour)
    labels:       (N,) int64 class of each image (None in probes made before labels were kept);
                  a comparison of models with different class sets uses the shared classes' rows
    """

    images: np.ndarray
    segments: np.ndarray
    num_segments: np.ndarray
    masks: np.ndarray
    params: dict[str, Any]
    labels: np.ndarray | None = None

    @property
    def hide_color(self) -> np.ndarray:
        """The colour a switched-off superpixel takes, per channel (the data set's mean colour)."""
        return np.asarray(self.params["hide_color"], dtype=np.float32)

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.masks.shape[1])

    @property
    def total_segments(self) -> int:
        return int(self.num_segments.sum())

    @classmethod
    def from_stored(cls, stored: Probe) -> ZestProbe:
        """The Zest probe in a probe file read by :func:`~modelkin.signatures.store.read_probe`."""
        a = stored.arrays
        missing = [k for k in ("images", "segments", "num_segments", "masks") if k not in a]
        if missing:
            raise SignatureError(
                f"Zest probe {stored.path} lacks {missing}; delete it and build it again"
            )
        probe = cls(
            a["images"],
            a["segments"],
            a["num_segments"],
            a["masks"].astype(bool),
            stored.params,
            a.get("labels"),
        )
        return probe.validate(str(stored.path))

    def validate(self, where: str = "probe") -> ZestProbe:
        n, c, h, w = self.images.shape
        problems = []
        if self.segments.shape != (n, h, w):
            problems.append(f"segments shape {self.segments.shape} != {(n, h, w)}")
        if self.num_segments.shape != (n,):
            problems.append(f"num_segments shape {self.num_segments.shape} != {(n,)}")
        if self.masks.ndim != 3 or self.masks.shape[0] != n:
            problems.append(f"masks shape {self.masks.shape} is not (N={n}, S, F_max)")
        if self.hide_color.shape not in ((c,), (1,)):
            problems.append(f"hide_color {self.hide_color.tolist()} does not have {c} channels")
        if not problems:
            f_max = self.masks.shape[2]
            if (
                self.segments.min() < 0
                or (self.segments.reshape(n, -1).max(1) + 1 != self.num_segments).any()
            ):
                problems.append("segment labels are not 0..F_i-1 for every image")
            if self.num_segments.max() > f_max:
                problems.append(
                    f"an image has {self.num_segments.max()} "
                    f"superpixels but masks have {f_max} columns"
                )
            padded = np.arange(f_max)[None, None, :] >= self.num_segments[:, None, None]
            if (self.masks & padded).any():
                problems.append("masks switch on padded (non-existent) superpixels")
        if problems:
            raise InputError(f"invalid Zest {where}: " + "; ".join(problems))
        return self


def segment_image(
    image: np.ndarray, *, kernel_size: float, ratio: float, max_dist: float
) -> np.ndarray:
    """Quickshift superpixels of one (C, H, W) image
    in [0, 1], labels 0..F-1, as Zest computes them.

    quickshift sees the 8-bit image as float64 in [0, 255] (the reference feeds it
    that way; its Lab conversion then spreads colours enough for ~10-20 segments on
    32x32 images), with one grey channel replicated to RGB as LIME's wrapper does.
    """
    from skimage.segmentation import quickshift

    channels = image.shape[0]
    if channels not in (1, 3):
        raise InputError(f"quickshift needs grey or RGB images, got {channels} channels")
    rgb = np.round(np.asarray(image, dtype=np.float64).transpose(1, 2, 0) * 255.0)
    if channels == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    labels = quickshift(rgb, kernel_size=kernel_size, ratio=ratio, max_dist=max_dist)
    # quickshift already numbers its segments 0..F-1; relabelling keeps that guarantee explicit.
    _, consecutive = np.unique(labels, return_inverse=True)
    return consecutive.reshape(labels.shape).astype(np.int32)


def draw_masks(num_segments: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """Bernoulli(0.5) masks (N, S, F_max), row 0 all ones, from the reference's legacy RNG stream.

    Equal to ``np.random.seed(seed)`` then ``np.random.randint(0, 2, [S, F_i])`` per image in
    order, but on a private RandomState so the global numpy RNG is left alone.
    """
    rng = np.random.RandomState(seed)
    f_max = int(num_segments.max())
    masks = np.zeros((len(num_segments), n_samples, f_max), dtype=bool)
    for i, f in enumerate(num_segments):
        draw = rng.randint(0, 2, [n_samples, int(f)])
        draw[0, :] = 1
        masks[i, :, :f] = draw.astype(bool)
    return masks


def make_zest_probe(
    split: Split,
    *,
    n_images: int = 128,
    n_samples: int = 1000,
    kernel_size: float = 4,
    ratio: float = 0.2,
    max_dist: float = 200,
    seed: int = 0,
    hide_color: np.ndarray | None = None,
    source: dict[str, Any] | None = None,
) -> ZestProbe:
    """The first ``n_images`` images of ``split`` (data set order), their superpixels and masks.

    ``hide_color`` defaults to the data set's mean colour; ``source`` (e.g. the prepared
    file and split name) is recorded in the parameters.
    """
    if not 1 <= n_images <= len(split):
        raise InputError(
            f"n_images must be between 1 and the split's {len(split)} images, got {n_images}"
        )
    if n_samples < 2:
        raise InputError(
            f"n_samples must be at least 2 (row 0 is the unperturbed image), got {n_samples}"
        )
    images = split.x[:n_images].numpy().astype(np.float32)
    segments = np.stack(
        [
            segment_image(img, kernel_size=kernel_size, ratio=ratio, max_dist=max_dist)
            for img in progress(images, desc="quickshift superpixels")
        ]
    )
    num_segments = (segments.reshape(n_images, -1).max(1) + 1).astype(np.int32)
    if num_segments.max() >= n_samples:
        log.warning(
            "some images have %d superpixels but only %d samples: their least-squares "
            "fits are underdetermined (the minimum-norm solution is used)",
            num_segments.max(),
            n_samples,
        )
    masks = draw_masks(num_segments, n_samples, seed)
    if hide_color is None:
        hide_color = np.asarray(split.info.mean, dtype=np.float32)
    params = {
        "dataset": split.info.name,
        "input_shape": list(images.shape[1:]),
        "n_images": n_images,
        "n_samples": n_samples,
        "selection": "first_n",
        "segmentation": {
            "algorithm": "quickshift",
            "kernel_size": kernel_size,
            "ratio": ratio,
            "max_dist": max_dist,
        },
        "seed": seed,
        "hide_color": [float(v) for v in np.asarray(hide_color).reshape(-1)],
        **(source or {}),
    }
    log.info(
        "Zest probe: %d images, %d samples, superpixels "
        "per image min %d / median %d / max %d (total %d)",
        n_images,
        n_samples,
        num_segments.min(),
        int(np.median(num_segments)),
        num_segments.max(),
        num_segments.sum(),
    )
    labels = split.y[:n_images].numpy().astype(np.int64)
    return ZestProbe(images, segments, num_segments, masks, params, labels).validate()


def save_zest_probe(probe: ZestProbe, path: str | Path) -> Path:
    probe.validate()
    arrays = {
        "images": probe.images.astype(np.float32),
        "segments": probe.segments.astype(np.int32),
        "num_segments": probe.num_segments.astype(np.int32),
        "masks": probe.masks.astype(bool),
    }
    if probe.labels is not None:
        arrays["labels"] = probe.labels.astype(np.int64)
    return write_probe(path, arrays, kind=PROBE_KIND, params=probe.params)


def load_zest_probe(path: str | Path) -> ZestProbe:
    return ZestProbe.from_stored(read_probe(path, kind=PROBE_KIND))


def zest_probe_file(
    prepared: str | Path,
    output: str | Path,
    *,
    split: str,
    n_images: int,
    n_samples: int,
    kernel_size: float,
    ratio: float,
    max_dist: float,
    seed: int,
) -> Path:
    """Make the Zest probe of a prepared data set and save it to ``output`` (the settings of the
    ``zest`` config section; their defaults live in the schema)."""
    size = split_size(prepared, split)
    if not 1 <= n_images <= size:
        raise InputError(
            f"n_images must be between 1 and the {size:,} images of the {split} split of "
            f"{prepared}, got {n_images}"
        )
    data = load_split(prepared, split, limit=n_images)
    probe = make_zest_probe(
        data,
        n_images=n_images,
        n_samples=n_samples,
        kernel_size=kernel_size,
        ratio=ratio,
        max_dist=max_dist,
        seed=seed,
        source={"split": split},
    )
    return save_zest_probe(probe, output)


# ---------------------------------------------------------------------------------------------
# Extraction


class ZestExtractor:
    """Batched Zest signatures: perturbed images made
    on the device, one float64 solve for all images.

    ``chunk_size`` is the number of perturbed images per forward pass; peak memory is
    that many images (plus the model's activations) and the (N, S, C) logits. ``None``
    picks a size per device (:data:`AUTO_CHUNK_SIZE`): large chunks on CUDA, small ones on
    CPU, where big batches of convolutions run 2-3x slower (their activations leave the cache),
    scaled down for inputs larger than 3x32x32 (:func:`~modelkin.signatures.base.auto_chunk`).
    ``precision`` is the arithmetic of the forward passes (:mod:`modelkin.precision`); the
    logits are kept and regressed in float32/float64 whatever it is.
    """

    def __init__(
        self,
        chunk_size: int | None = None,
        device: str | torch.device = "auto",
        precision: str = DEFAULT_PRECISION,
    ):
        if chunk_size is not None and chunk_size < 1:
            raise InputError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self.device = device
        self.precision = check_precision(precision)

    def signature(self, model: torch.nn.Module, probe: ZestProbe) -> np.ndarray:
        """(ΣF_i, C) float32: the stacked surrogate weights of every reference image.

        The model is moved to the extractor's device and queried in eval mode (its
        training flag is restored afterwards).
        """
        device = resolve_device(self.device)
        model.to(device)
        was_training = model.training
        model.eval()
        try:
            logits = self.query(model, probe, device)
        finally:
            model.train(was_training)
        masks = torch.as_tensor(probe.masks, device=device)
        weights = solve_surrogates(masks, logits)
        valid = (
            torch.arange(masks.shape[2], device=device)[None, :]
            < torch.as_tensor(probe.num_segments, device=device)[:, None].long()
        )
        return weights[valid].float().cpu().numpy()

    @torch.inference_mode()
    def query(self, model: torch.nn.Module, probe: ZestProbe, device: torch.device) -> torch.Tensor:
        """Raw logits (N, S, C) float32 of the model on every perturbed image."""
        n, c, h, w = probe.images.shape
        samples = probe.n_samples
        images = torch.as_tensor(probe.images, device=device)
        segments = torch.as_tensor(probe.segments, device=device).long().reshape(n, h * w)
        masks = torch.as_tensor(probe.masks, device=device)
        hide = (
            torch.as_tensor(probe.hide_color, device=device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
        )
        total = n * samples
        chunk = self.chunk_size or auto_chunk(AUTO_CHUNK_SIZE, device.type, (c, h, w))
        logits = None
        check_precision(self.precision, device)
        for start in progress(range(0, total, chunk), desc="zest queries"):
            flat = torch.arange(start, min(start + chunk, total), device=device)
            image_index, sample_index = flat // samples, flat % samples
            # Pixel p of a perturbed image is on when its superpixel's mask entry is on.
            on = (
                masks[image_index, sample_index]
                .gather(1, segments[image_index])
                .reshape(-1, 1, h, w)
            )
            perturbed = torch.where(on, images[image_index], hide)
            with compute_precision(self.precision, device):
                out = model(perturbed)
            if logits is None:
                logits = torch.empty(total, out.shape[1], dtype=torch.float32, device=device)
            logits[start : start + len(flat)] = out.float()
        if logits is None:
            raise InputError("the Zest probe has no queries (no images or no samples)")
        return logits.reshape(n, samples, -1)


def solve_surrogates(masks: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Least squares without intercept for every image at once: (N, F_max, C) float64.

    masks (N, S, F_max) with padded columns all zero; targets (N, S, C). Each block
    equals pinv(Z_iᵀZ_i) Z_iᵀ Y_i = pinv(Z_i) Y_i, the minimum-norm solution even when
    Z_i is rank deficient; zero columns give zero rows and do not disturb the rest
    (the pseudo-inverse of a block-diagonal matrix is block-diagonal).
    """
    z = masks.to(torch.float64)
    y = targets.to(torch.float64)
    zt = z.transpose(1, 2)
    gram = zt @ z
    return torch.linalg.pinv(gram, hermitian=True) @ (zt @ y)
