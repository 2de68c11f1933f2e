"""The counterfactual: apply the transformation a direction suggests; compare the algorithms.

When a distinguishing direction points at a feature (a patch planted on one class's training
images, brighter or blurred or tilted images of one class), applying that transformation to test
images of other classes should raise the probability of its class for the algorithm that relies on
it, and not for the other. :func:`resolve_counterfactual` turns the config's
``modeldiff.counterfactual`` section into a :class:`Counterfactual` (the transformation and the
class it should raise); :func:`counterfactual_probabilities` measures it per checkpoint;
:func:`summarise_counterfactual` averages over each algorithm's checkpoints.

Transformations (``transform``), on images in [0, 1]:

- ``patch``: the planted patch (the configured one, else B's, else A's);
- ``brightness``: every pixel plus ``brightness``, clipped to [0, 1];
- ``blur``: a Gaussian blur of standard deviation ``blur_sigma`` pixels (reflected borders);
- ``rotation``: a rotation by ``rotation_degrees`` (counter-clockwise) about the image centre,
  bilinear, zeros where the rotated image leaves the frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import PlantedPatch
from ..device import resolve_device
from .directions import ModelDiffError

TRANSFORMS = ("patch", "brightness", "blur", "rotation")


@dataclass(frozen=True)
class Counterfactual:
    """A transformation of test images and the class whose probability it should raise."""

    transform: str
    target_class: int
    apply: Callable[[torch.Tensor], torch.Tensor]
    params: dict[str, Any]

    @property
    def description(self) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.transform} ({settings})" if settings else self.transform


def counterfactual_defaults() -> dict[str, Any]:
    """The ``modeldiff.counterfactual`` section as the schema's defaults fill it."""
    from ..config import validate_config

    return dict(validate_config({})["modeldiff"]["counterfactual"])


def resolve_counterfactual(
    settings: Mapping[str, Any] | None,
    data_a: Mapping[str, Any],
    data_b: Mapping[str, Any],
) -> Counterfactual:
    """The counterfactual a ``modeldiff.counterfactual`` section asks for (keys left out take the
    schema's defaults). ``data_a``/``data_b``: the training data each algorithm's scores describe
    (a directions file's ``data_A``/``data_B`` attributes), whose planted patch is the default
    patch and the default target class."""
    given = dict(settings or {})
    unknown = sorted(set(given) - set(counterfactual_defaults()))
    if unknown:
        raise ModelDiffError(
            f"modeldiff.counterfactual has no setting(s) {unknown}; its settings: "
            f"{', '.join(counterfactual_defaults())}"
        )
    s = {**counterfactual_defaults(), **given}
    transform = s["transform"]
    if transform not in TRANSFORMS:
        raise ModelDiffError(
            f"unknown counterfactual transform {transform!r}; choose one of {', '.join(TRANSFORMS)}"
        )
    if transform == "patch":
        patch = resolve_patch(s["patch"], data_a, data_b)
        target = patch.target_class if s["target_class"] is None else int(s["target_class"])
        params = {"size": patch.size, "color": list(patch.color), "position": list(patch.position)}
        return Counterfactual("patch", target, patch.apply, params)
    target = s["target_class"]
    if target is None:
        planted = data_b.get("planted_patch") or data_a.get("planted_patch")
        if not planted:
            raise ModelDiffError(
                f"the {transform} counterfactual needs the class it should raise: set "
                "modeldiff.counterfactual.target_class (no algorithm plants a patch whose class "
                "could stand in)"
            )
        target = planted["target_class"]
    if transform == "brightness":
        amount = float(s["brightness"])
        return Counterfactual(
            "brightness", int(target), lambda x: brighten(x, amount), {"brightness": amount}
        )
    if transform == "blur":
        sigma = float(s["blur_sigma"])
        return Counterfactual("blur", int(target), lambda x: blur(x, sigma), {"blur_sigma": sigma})
    degrees = float(s["rotation_degrees"])
    return Counterfactual(
        "rotation", int(target), lambda x: rotate(x, degrees), {"rotation_degrees": degrees}
    )


def resolve_patch(
    patch: Mapping[str, Any] | None, data_a: Mapping[str, Any], data_b: Mapping[str, Any]
) -> PlantedPatch:
    """The counterfactual patch: the configured one, else algorithm B's planted patch, else A's.

    ``data_a``/``data_b``: the training data each algorithm's scores describe (a directions
    file's ``data_A``/``data_B`` attributes).
    """
    chosen = patch or data_b.get("planted_patch") or data_a.get("planted_patch")
    if not chosen:
        raise ModelDiffError(
            "no counterfactual patch: neither algorithm plants one; set "
            "modeldiff.counterfactual.patch to {target_class, size, color, position}, or choose "
            "another modeldiff.counterfactual.transform (brightness, blur, rotation) and its "
            "target_class"
        )
    return PlantedPatch.from_config(chosen)


# ---------------------------------------------------------------------------------------------
# Transformations of images (N, C, H, W) in [0, 1]


def brighten(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Every pixel plus ``amount`` (negative: darker), clipped to [0, 1]."""
    return (x + amount).clamp(0.0, 1.0)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of standard deviation ``sigma`` on 2 ceil(3 sigma) + 1 taps."""
    if sigma <= 0:
        raise ModelDiffError(f"blur_sigma must be positive, got {sigma}")
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur per channel, borders reflected (a constant image stays
    constant)."""
    kernel = gaussian_kernel(sigma).to(x.device, x.dtype)
    radius = len(kernel) // 2
    n, c, h, w = x.shape
    if radius >= min(h, w):
        raise ModelDiffError(
            f"blur_sigma {sigma} needs a {2 * radius + 1}-pixel kernel, too wide for {h}x{w} images"
        )
    flat = x.reshape(n * c, 1, h, w)
    flat = torch.nn.functional.pad(flat, (radius, radius, 0, 0), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kernel.reshape(1, 1, 1, -1))
    flat = torch.nn.functional.pad(flat, (0, 0, radius, radius), mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kernel.reshape(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotated counter-clockwise by ``degrees`` about the centre (bilinear, zeros outside)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # affine_grid maps output to input coordinates (x right, y down): a counter-clockwise turn
    # of the image on screen samples the input at the clockwise-rotated position.
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = torch.nn.functional.affine_grid(
        theta.expand(len(x), 2, 3), list(x.shape), align_corners=False
    )
    out = torch.nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.clamp(0.0, 1.0)


def _probabilities(
    model, images: torch.Tensor, device: torch.device, batch_size: int
) -> torch.Tensor:
    parts = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            parts.append(torch.softmax(model(batch), dim=1).cpu())
    return torch.cat(parts)


def counterfactual_probabilities(
    models: Mapping[str, Sequence[tuple[str, Any]]],
    images,
    transform: Callable,
    target_class: int,
    *,
    device: str = "auto",
    batch_size: int = 512,
) -> list[dict[str, Any]]:
    """P(target_class) before and after ``transform`` for every model, one row per model.

    ``models``: {algorithm label: [(checkpoint name, model), ...]}; ``images``: [N, C, H, W] in
    [0, 1].
    """
    target_device = resolve_device(device)
    transformed = transform(images)
    if transformed.shape != images.shape:
        raise ModelDiffError(
            f"the transformation changed the image shape {tuple(images.shape)} -> "
            f"{tuple(transformed.shape)}"
        )
    rows = []
    for algorithm, entries in models.items():
        for name, model in entries:
            model.to(target_device).eval()
            probs = {
                "before": _probabilities(model, images, target_device, batch_size),
                "after": _probabilities(model, transformed, target_device, batch_size),
            }
            n_classes = probs["before"].shape[1]
            if not 0 <= target_class < n_classes:
                raise ModelDiffError(
                    f"target class {target_class} does not exist for {name} ({n_classes} classes)"
                )
            before = probs["before"][:, target_class]
            after = probs["after"][:, target_class]
            predicted = {
                label: float((p.argmax(1) == target_class).float().mean())
                for label, p in probs.items()
            }
            rows.append(
                {
                    "algorithm": algorithm,
                    "checkpoint": name,
                    "target_class": target_class,
                    "n_images": len(images),
                    "p_target_before": float(before.mean()),
                    "p_target_after": float(after.mean()),
                    "delta_p_target": float((after - before).mean()),
                    "predicted_target_before": predicted["before"],
                    "predicted_target_after": predicted["after"],
                }
            )
    return rows


def summarise_counterfactual(
    rows: Sequence[dict[str, Any]], roles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Mean and spread over checkpoints per algorithm; ``roles`` maps algorithm name -> "A" or
    "B"."""
    out = []
    for algorithm, role in roles.items():
        mine = [r for r in rows if r["algorithm"] == algorithm]
        if not mine:
            continue
        delta = np.array([r["delta_p_target"] for r in mine])
        means = {
            key: float(np.mean([r[key] for r in mine]))
            for key in (
                "p_target_before",
                "p_target_after",
                "predicted_target_before",
                "predicted_target_after",
            )
        }
        out.append(
            {
                "role": role,
                "algorithm": algorithm,
                "n_checkpoints": len(mine),
                "target_class": mine[0]["target_class"],
                "p_target_before": means["p_target_before"],
                "p_target_after": means["p_target_after"],
                "delta_p_target": float(delta.mean()),
                "delta_p_target_std": float(delta.std(ddof=1)) if len(delta) > 1 else 0.0,
                "predicted_target_before": means["predicted_target_before"],
                "predicted_target_after": means["predicted_target_after"],
            }
        )
    return out
