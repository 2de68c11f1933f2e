"""The counterfactual: apply the transformation a direction suggests; compare the algorithms.

When a distinguishing direction points at a feature (say, a patch planted on one class's training
images), drawing that feature on test images of other classes should raise the probability of its
class for the algorithm that relies on it, and not for the other.
:func:`counterfactual_probabilities` measures this per checkpoint; :func:`summarise_counterfactual`
averages over each algorithm's checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data import PlantedPatch
from ..device import resolve_device
from .directions import ModelDiffError


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
            "no counterfactual transformation: neither algorithm plants a patch; set "
            "modeldiff.counterfactual.patch to {target_class, size, color, position}"
        )
    return PlantedPatch.from_config(chosen)


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
