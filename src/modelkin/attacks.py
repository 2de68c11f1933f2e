"""L-inf attacks in [0, 1] pixel space: Madry PGD and the TRADES inner maximisation.

Models normalise inside, so epsilon and step size are pixel units for every data
set. The model is put in eval mode while an attack is crafted (batch-norm
statistics are not updated by adversarial search) and restored afterwards.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module):
    """Attack gradients are taken w.r.t. the input only;
    skip parameter gradients (faster, no side effects)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp_(0.0, 1.0)


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Madry et al.'s PGD on the cross-entropy loss;
    returns x_adv with |x_adv - x|_inf <= epsilon."""
    if epsilon <= 0 or steps <= 0:
        return x.detach().clone()
    x = x.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) * 2 - 1
        x_adv = _project(x + epsilon * noise, x, epsilon)
    else:
        x_adv = x.clone()
    with eval_mode(model), frozen_parameters(model):
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = _project(x_adv.detach() + step_size * grad.sign(), x, epsilon)
    return x_adv.detach()


def trades_attack(
    model: nn.Module,
    x: torch.Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TRADES inner maximisation of KL(f(x) || f(x_adv)) from x + 0.001 N(0, I)."""
    x = x.detach()
    with eval_mode(model), frozen_parameters(model):
        clean = F.softmax(model(x), dim=1)
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        x_adv = _project(x + 0.001 * noise, x, epsilon)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = _project(x_adv.detach() + step_size * grad.sign(), x, epsilon)
    return x_adv.detach()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) == y).float().mean().item()
