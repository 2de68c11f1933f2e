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

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd_attack, trades_attack
from ..data import Split, augment_batch
from ..datasets import check_augmentation
from ..errors import InputError
from ..progress import progress
from ..train import make_optimizer, make_scheduler
from .cache import (  # noqa: F401 - cache_size_bytes, should_cache, FixedInputs: public names
    FixedInputs,
    SpilledInputs,
    _genuine,
    _teacher_outputs,
    cache_plan,
    cache_size_bytes,
    precompute_fixed_inputs,
    should_cache,
    spill_directory,
)
from .losses import linear_cka_torch, target_loss
from .model import StitchedModel
from .options import StitchOptions

log = logging.getLogger(__name__)


@dataclass
class TrainingLog:
    epochs: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    cached_front: bool = False
    front_cache: str = "none"  # memory, disk or none (recomputed every step)
    steps: int = 0


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
    cache: bool | str | None = None,
    memory_budget_mb: float | None = None,
) -> TrainingLog:
    """Train T in place. ``teachers``: pristine donors for soft targets and genuine activations
    (default: the stitched model's own donors; pass copies when the donors train their batch
    norm). ``cache``: where the fixed front is kept (``memory``, ``disk``; True means memory,
    False none; default: :func:`~modelkin.stitching.cache.cache_plan` within
    ``memory_budget_mb``)."""
    teacher1, teacher2 = teachers or (stitched.model1, stitched.model2)
    teacher1.eval()
    teacher2.eval()
    n = len(train)
    if n == 0:
        raise InputError("the training split is empty")
    check_augmentation(train.info, options.augment, "the stitching options")
    where: str | None
    if cache is None:
        where = cache_plan(stitched, n, options, device, memory_budget_mb)
    elif isinstance(cache, bool):
        where = "memory" if cache else None
    else:
        where = cache
    if where not in ("memory", "disk", None):
        raise InputError(f"cache must be memory, disk, True, False or None, not {cache!r}")
    record = TrainingLog(cached_front=where is not None, front_cache=where or "none")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        fixed: FixedInputs | SpilledInputs | None = None
        if where is not None:
            spill = Path(stack.enter_context(spill_directory())) if where == "disk" else None
            fixed = precompute_fixed_inputs(
                stitched, teacher1, teacher2, train, options, device, spill=spill
            )
            if isinstance(fixed, SpilledInputs):
                stack.callback(fixed.close)
                log.info("%s: front cache spilled to disk (%.2f GB)", desc, fixed.nbytes / 1e9)
        _train_epochs(stitched, train, options, device, teacher1, teacher2, fixed, record, desc)
    record.seconds = time.perf_counter() - start
    log.info(
        "%s: %d steps in %.1f s (front %s)",
        desc,
        record.steps,
        record.seconds,
        {"memory": "cached", "disk": "cached on disk", "none": "recomputed"}[record.front_cache],
    )
    return record


def _train_epochs(
    stitched: StitchedModel,
    train: Split,
    options: StitchOptions,
    device: torch.device,
    teacher1: nn.Module,
    teacher2: nn.Module,
    fixed: FixedInputs | SpilledInputs | None,
    record: TrainingLog,
    desc: str,
) -> None:
    n = len(train)
    bs = options.batch_size
    drop_last = n >= bs
    steps_per_epoch = n // bs if drop_last else 1
    optimizer = make_optimizer(stitched.trainable_parameters(), options)
    scheduler = make_scheduler(optimizer, options.schedule, options.epochs, steps_per_epoch)
    generator = torch.Generator().manual_seed(options.seed)
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
                x = None if stitched.end_is_split else train.x[index].to(device)
                loss, parts, logits = stitch_step_loss(
                    stitched, options, y=y, x=x, **fixed.batch(index.to(device))
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
