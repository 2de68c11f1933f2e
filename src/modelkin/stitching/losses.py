"""The stitching layer's training losses: task losses at the logits and a differentiable linear
CKA."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .options import TARGET_TYPES


def soft_cross_entropy(
    logits: torch.Tensor, target_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """sum_c softmax(t/T)_c * -log_softmax(s/T)_c, averaged over the batch (no T^2 factor, as the
    references)."""
    target = F.softmax(target_logits / temperature, dim=1)
    return -(target * F.log_softmax(logits / temperature, dim=1)).sum(1).mean()


def _given(logits: torch.Tensor | None, name: str, target_type: str) -> torch.Tensor:
    if logits is None:
        raise InputError(f"target_type {target_type!r} needs {name}")
    return logits


def target_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    target_type: str,
    *,
    logits1: torch.Tensor | None = None,
    logits2: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The task loss at the stitched network's logits.

    hard: cross-entropy with the labels; soft_1 / soft_2: soft cross-entropy to
    model 1's / model 2's logits; soft_12: the mean of those two losses;
    soft_1_plus_2: soft cross-entropy to the mean of the two logits (the
    reference's name notwithstanding).
    """
    if target_type == "hard":
        return F.cross_entropy(logits, labels)
    if target_type == "soft_1":
        return soft_cross_entropy(logits, _given(logits1, "logits1", target_type), temperature)
    if target_type == "soft_2":
        return soft_cross_entropy(logits, _given(logits2, "logits2", target_type), temperature)
    if target_type == "soft_12":
        return 0.5 * (
            soft_cross_entropy(logits, _given(logits1, "logits1", target_type), temperature)
            + soft_cross_entropy(logits, _given(logits2, "logits2", target_type), temperature)
        )
    if target_type == "soft_1_plus_2":
        mean = 0.5 * (
            _given(logits1, "logits1", target_type) + _given(logits2, "logits2", target_type)
        )
        return soft_cross_entropy(logits, mean, temperature)
    raise InputError(f"target_type must be one of {', '.join(TARGET_TYPES)}, not {target_type!r}")


def linear_cka_torch(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Differentiable linear CKA (biased HSIC) of per-sample flattened features, in [0, 1].

    ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred X, Y,
    computed through n x n Gram matrices when features outnumber samples.
    """
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    if x.shape[1] + y.shape[1] < x.shape[0]:
        hsic = (x.T @ y).square().sum()
        norm_x, norm_y = torch.linalg.matrix_norm(x.T @ x), torch.linalg.matrix_norm(y.T @ y)
    else:
        gram_x, gram_y = x @ x.T, y @ y.T
        hsic = (gram_x * gram_y).sum()
        norm_x, norm_y = torch.linalg.matrix_norm(gram_x), torch.linalg.matrix_norm(gram_y)
    return hsic / (norm_x * norm_y).clamp_min(eps)
