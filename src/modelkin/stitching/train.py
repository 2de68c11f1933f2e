"""Training the stitching layer: the loop, the cached front, regularisers, adversarial examples.

Only T trains. The loss is a task loss at the stitched network's logits (hard
labels or a donor's soft targets), plus ``l1 * mean|W|`` and
``cka_reg * linearCKA(model 2's genuine activation, T's output)``; with an
adversary, a fraction of every batch is replaced by adversarial examples
crafted against the whole stitched network (Madry PGD), or TRADES' KL term is
added. When the front is fixed (eval-mode donors, no augmentation, no
adversary), model 1's activations, the soft targets and model 2's genuine
activations are computed once per run and cached on the device; each step then
runs only T and model 2's end.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd_attack, trades_attack
from ..data import Split, augment_batch, iterate_batches
from ..datasets import check_augmentation
from ..errors import InputError
from ..progress import progress
from ..train import make_optimizer, make_scheduler
from .losses import linear_cka_torch, target_loss
from .model import StitchedModel, layer_activation
from .options import StitchOptions

log = logging.getLogger(__name__)

# cached front activations beyond this are recomputed every step instead
CACHE_BUDGET_BYTES = 2 << 30


@dataclass
class FixedInputs:
    """Per-image tensors of the training split that do not change during training (on the
    device)."""

    front: torch.Tensor
    logits1: torch.Tensor | None = None
    logits2: torch.Tensor | None = None
    genuine: torch.Tensor | None = None


@dataclass
class TrainingLog:
    epochs: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    cached_front: bool = False
    steps: int = 0


def _teacher_outputs(
    teacher1: nn.Module, teacher2: nn.Module, x: torch.Tensor, options: StitchOptions
):
    """Soft targets: the donors' logits on the clean images, without gradient (None when not
    needed)."""
    need1, need2 = options.needs_targets
    with torch.no_grad():
        logits1 = teacher1(x) if need1 else None
        logits2 = teacher2(x) if need2 else None
    return logits1, logits2


def _genuine(teacher2: nn.Module, layer2: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer_activation(teacher2, layer2, x)


def cache_size_bytes(stitched: StitchedModel, n: int, options: StitchOptions) -> int:
    g = stitched.stitch.geometry
    per_image = math.prod(g.in_shape)
    need1, need2 = options.needs_targets
    classes = getattr(stitched.model2, "num_classes", 0)
    per_image += classes * (int(need1) + int(need2))
    if options.cka_reg > 0:
        per_image += math.prod(g.out_shape)
    return 4 * n * per_image


def should_cache(
    stitched: StitchedModel, n: int, options: StitchOptions, device: torch.device
) -> bool:
    if options.cache_front is False or not options.front_is_fixed:
        if options.cache_front is True and not options.front_is_fixed:
            raise InputError(
                "cache_front=true needs a fixed front: eval-mode donors (train_bn false), no "
                "augmentation and no adversary"
            )
        return False
    if options.cache_front is True:
        return True
    size = cache_size_bytes(stitched, n, options)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return size <= 0.4 * free
    return size <= CACHE_BUDGET_BYTES


def precompute_fixed_inputs(
    stitched: StitchedModel,
    teacher1: nn.Module,
    teacher2: nn.Module,
    train: Split,
    options: StitchOptions,
    device: torch.device,
    batch_size: int = 256,
) -> FixedInputs:
    """Model 1's L1 activations (and soft targets, model 2's genuine activations) of every training
    image."""
    was_training = stitched.training
    stitched.eval()
    parts: dict[str, list[torch.Tensor]] = {
        "front": [],
        "logits1": [],
        "logits2": [],
        "genuine": [],
    }
    try:
        with torch.no_grad():
            for x, _ in iterate_batches(train, batch_size, device=device):
                parts["front"].append(stitched.front(x))
                logits1, logits2 = _teacher_outputs(teacher1, teacher2, x, options)
                if logits1 is not None:
                    parts["logits1"].append(logits1)
                if logits2 is not None:
                    parts["logits2"].append(logits2)
                if options.cka_reg > 0:
                    parts["genuine"].append(_genuine(teacher2, stitched.layer2, x))
    finally:
        stitched.train(was_training)
    cat = {k: torch.cat(v) if v else None for k, v in parts.items()}
    front = cat["front"]
    if front is None:
        raise InputError("the training split is empty: there is nothing to train T on")
    return FixedInputs(front, cat["logits1"], cat["logits2"], cat["genuine"])


def stitch_step_loss(
    stitched: StitchedModel,
    options: StitchOptions,
    *,
    y: torch.Tensor,
    x: torch.Tensor | None = None,
    front: torch.Tensor | None = None,
    logits1: torch.Tensor | None = None,
    logits2: torch.Tensor | None = None,
    genuine: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Loss of one batch from the front activation (cached) or from the images; returns (loss,
    parts, logits)."""
    if front is None:
        if x is None:
            raise InputError("a stitching step needs the images (x) or their front activation")
        front = stitched.front(x)
    t = stitched.stitch(front)
    logits = stitched.end(t, x)
    task = target_loss(
        logits,
        y,
        options.target_type,
        logits1=logits1,
        logits2=logits2,
        temperature=options.temperature,
    )
    loss = task
    parts = {"task_loss": task.item()}
    if options.l1 > 0:
        l1 = options.l1 * stitched.stitch.weight.abs().mean()
        loss = loss + l1
        parts["l1"] = l1.item()
    if options.cka_reg > 0:
        if genuine is None:
            raise InputError("the CKA regulariser needs model 2's genuine activation")
        cka = linear_cka_torch(genuine, t)
        loss = loss + options.cka_reg * cka
        parts["cka"] = cka.item()
    return loss, parts, logits


def train_stitcher(
    stitched: StitchedModel,
    train: Split,
    options: StitchOptions,
    *,
    device: torch.device,
    teachers: tuple[nn.Module, nn.Module] | None = None,
    desc: str = "stitch",
    cache: bool | None = None,
) -> TrainingLog:
    """Train T in place. ``teachers``: pristine donors for soft targets and genuine activations
    (default: the stitched model's own donors; pass copies when the donors train their batch
    norm)."""
    teacher1, teacher2 = teachers or (stitched.model1, stitched.model2)
    teacher1.eval()
    teacher2.eval()
    n = len(train)
    if n == 0:
        raise InputError("the training split is empty")
    check_augmentation(train.info, options.augment, "the stitching options")
    bs = options.batch_size
    drop_last = n >= bs
    steps_per_epoch = n // bs if drop_last else 1
    optimizer = make_optimizer(stitched.trainable_parameters(), options)
    scheduler = make_scheduler(optimizer, options.schedule, options.epochs, steps_per_epoch)
    generator = torch.Generator().manual_seed(options.seed)
    use_cache = should_cache(stitched, n, options, device) if cache is None else cache
    record = TrainingLog(cached_front=use_cache)
    start = time.perf_counter()
    fixed = (
        precompute_fixed_inputs(stitched, teacher1, teacher2, train, options, device)
        if use_cache
        else None
    )
    labels = train.y.to(device)
    epsilon, step_size = options.attack_budget(train.info.default_epsilon)
    bar = progress(range(options.epochs), desc=desc, total=options.epochs, unit="epoch")
    for epoch in bar:
        epoch_start = time.perf_counter()
        stitched.train()
        order = torch.randperm(n, generator=generator)
        stop = n - n % bs if drop_last else n
        sums: dict[str, float] = {}
        correct = seen = 0
        for begin in range(0, stop, bs):
            index = order[begin : begin + bs]
            y = labels[index.to(device)]
            if fixed is not None:
                dev_index = index.to(device)
                x = None if stitched.end_is_split else train.x[index].to(device)
                loss, parts, logits = stitch_step_loss(
                    stitched,
                    options,
                    y=y,
                    x=x,
                    front=fixed.front[dev_index],
                    logits1=None if fixed.logits1 is None else fixed.logits1[dev_index],
                    logits2=None if fixed.logits2 is None else fixed.logits2[dev_index],
                    genuine=None if fixed.genuine is None else fixed.genuine[dev_index],
                )
            else:
                x = train.x[index]
                if options.augment:
                    x = augment_batch(x, train.info.augmentation, generator)
                x = x.to(device)
                loss, parts, logits = _uncached_loss(
                    stitched, teacher1, teacher2, x, y, options, epsilon, step_size, generator
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = loss.item()
            record.step_loss.append(value)
            parts["loss"] = value
            for key, v in parts.items():
                sums[key] = sums.get(key, 0.0) + v * len(y)
            correct += int((logits.argmax(1) == y).sum().item())
            seen += len(y)
            record.steps += 1
        summary = {
            "epoch": epoch + 1,
            **{k: v / seen for k, v in sums.items()},
            "train_accuracy": correct / seen,
        }
        summary["lr"] = optimizer.param_groups[0]["lr"]
        record.epochs.append(summary)
        record.epoch_seconds.append(time.perf_counter() - epoch_start)
        bar.set_postfix(loss=f"{summary['loss']:.4f}", acc=f"{summary['train_accuracy']:.3f}")
    stitched.eval()
    record.seconds = time.perf_counter() - start
    log.info(
        "%s: %d steps in %.1f s (front %s)",
        desc,
        record.steps,
        record.seconds,
        "cached" if use_cache else "recomputed",
    )
    return record


def _uncached_loss(
    stitched, teacher1, teacher2, x, y, options: StitchOptions, epsilon, step_size, generator
):
    logits1, logits2 = _teacher_outputs(teacher1, teacher2, x, options)
    n_adv = int(len(x) * options.attack_ratio) if options.adversary != "none" else 0
    if n_adv == 0 or options.adversary == "trades":
        inputs = x
    else:
        chosen = torch.randperm(len(x), generator=generator)[:n_adv].to(x.device)
        inputs = x.clone()
        inputs[chosen] = pgd_attack(
            stitched,
            x[chosen],
            y[chosen],
            epsilon=epsilon,
            step_size=step_size,
            steps=options.attack_steps,
            random_start=options.random_start,
            generator=generator,
        )
    genuine = _genuine(teacher2, stitched.layer2, inputs) if options.cka_reg > 0 else None
    loss, parts, logits = stitch_step_loss(
        stitched, options, y=y, x=inputs, logits1=logits1, logits2=logits2, genuine=genuine
    )
    if n_adv and options.adversary == "trades":
        # TRADES: beta * KL(f(x) || f(x_adv)) summed over the attacked examples, divided by the
        # batch size.
        chosen = torch.randperm(len(x), generator=generator)[:n_adv].to(x.device)
        x_adv = trades_attack(
            stitched,
            x[chosen],
            epsilon=epsilon,
            step_size=step_size,
            steps=options.attack_steps,
            generator=generator,
        )
        kl = F.kl_div(
            F.log_softmax(stitched(x_adv), dim=1), F.softmax(logits[chosen], dim=1), reduction="sum"
        )
        trades = options.trades_beta * kl / len(x)
        loss = loss + trades
        parts["trades_kl"] = trades.item()
    return loss, parts, logits
