"""Training: standard, Madry PGD and TRADES adversarial training, with two independent seeds.

``init_seed`` draws the weights; ``data_seed`` draws the batch order, the
augmentation and the attacks' random starts. Same seeds, same model (bit for
bit on CPU); different seeds, different models. A run saves its state after
every epoch next to its output and continues from there when restarted; the
checkpoint itself appears only when training has finished; the ``evaluate`` stage measures it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import pgd_attack, trades_attack
from .checkpoint import save_checkpoint
from .data import PlantedPatch, Split, iterate_batches, load_split
from .device import resolve_device
from .errors import InputError
from .io import atomic_path
from .models import seeded_model
from .progress import progress

log = logging.getLogger(__name__)

ADVERSARIES = ("none", "madry", "trades")
OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainRecipe:
    """Everything that defines how a model is trained (seeds excepted)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    epochs: int = 10
    batch_size: int = 64
    schedule: str | list[int] = (
        "thirds"  # "thirds": lr /10 at 1/3 and 2/3 of the steps; "constant"; or epoch milestones
    )
    augment: bool = False
    adversary: str = "none"
    epsilon: float | None = None  # None: the data set's default budget
    step_size: float | None = None  # None: epsilon / 4
    attack_steps: int = 10
    random_start: bool = True
    trades_beta: float = 6.0
    attack_ratio: float = 1.0
    planted_patch: dict[str, Any] | None = None
    train_limit: int | None = None  # use only the first N training images (tests, quick runs)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.adversary not in ADVERSARIES:
            raise InputError(f"adversary must be one of {ADVERSARIES}, not {self.adversary!r}")
        if not 0.0 <= self.attack_ratio <= 1.0:
            raise InputError(f"attack_ratio must be in [0, 1], not {self.attack_ratio}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError("epochs and batch_size must be >= 1 and lr > 0")
        if self.train_limit is not None and (
            isinstance(self.train_limit, bool)
            or not isinstance(self.train_limit, int)
            or self.train_limit < 1
        ):
            raise InputError(
                f"train_limit must be a whole number of images >= 1 (or null: all), not "
                f"{self.train_limit!r}"
            )
        if isinstance(self.schedule, str) and self.schedule not in ("thirds", "constant"):
            raise InputError(
                f"schedule must be 'thirds', 'constant' or a list of epochs, not {self.schedule!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainRecipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"unknown training setting(s) {unknown}; valid settings: {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def attack_budget(self, default_epsilon: float) -> tuple[float, float]:
        eps = default_epsilon if self.epsilon is None else self.epsilon
        return eps, (eps / 4 if self.step_size is None else self.step_size)


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)


def make_optimizer(params, settings) -> torch.optim.Optimizer:
    """SGD or Adam from ``settings`` (a TrainRecipe or StitchOptions): optimizer, lr, momentum,
    weight_decay, and nesterov where the settings have it."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=getattr(settings, "nesterov", False),
            weight_decay=settings.weight_decay,
        )
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def make_scheduler(optimizer, schedule: str | Sequence[int], epochs: int, steps_per_epoch: int):
    """Per-step schedule, so that 1/3 and 2/3 mean the same thing for 2 epochs as for 300."""
    total = epochs * steps_per_epoch
    if schedule == "constant":
        milestones: list[int] = []
    elif schedule == "thirds":
        milestones = [math.ceil(total / 3), math.ceil(2 * total / 3)]
    else:
        milestones = [int(e) * steps_per_epoch for e in schedule]
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.1 ** sum(step >= m for m in milestones)
    )


# A training objective: (logits, labels) -> the batch's loss (cross-entropy unless a caller, such
# as gradient-ascent unlearning, gives another).
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def training_loss(
    model: nn.Module,
    x,
    y,
    recipe: TrainRecipe,
    epsilon: float,
    step_size: float,
    generator,
    criterion: Criterion = F.cross_entropy,
):
    """The loss of one batch under the recipe's adversary, with ``attack_ratio`` of the batch
    attacked."""
    n_adv = int(len(x) * recipe.attack_ratio) if recipe.adversary != "none" else 0
    if n_adv == 0:
        logits = model(x)
        return criterion(logits, y), logits
    chosen = torch.randperm(len(x), generator=generator)[:n_adv].to(x.device)
    if recipe.adversary == "madry":
        x = x.clone()
        x[chosen] = pgd_attack(
            model,
            x[chosen],
            y[chosen],
            epsilon=epsilon,
            step_size=step_size,
            steps=recipe.attack_steps,
            random_start=recipe.random_start,
            generator=generator,
        )
        logits = model(x)
        return criterion(logits, y), logits
    # TRADES: clean cross-entropy plus beta * KL between clean and adversarial predictions
    # (summed, / batch).
    x_adv = trades_attack(
        model,
        x[chosen],
        epsilon=epsilon,
        step_size=step_size,
        steps=recipe.attack_steps,
        generator=generator,
    )
    logits = model(x)
    kl = F.kl_div(
        F.log_softmax(model(x_adv), dim=1), F.softmax(logits[chosen], dim=1), reduction="sum"
    )
    return criterion(logits, y) + recipe.trades_beta * kl / len(x), logits


def fit(
    model: nn.Module,
    train: Split,
    recipe: TrainRecipe,
    *,
    data_seed: int,
    device: torch.device | str = "auto",
    resume_path: str | Path | None = None,
    parameters: Sequence[nn.Parameter] | None = None,
    desc: str = "train",
    criterion: Criterion = F.cross_entropy,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train ``model`` in place on ``train`` (labels may be class indices or probability rows).

    ``resume_path``: where the per-epoch state lives; an existing state for the same
    recipe and seed is resumed, anything else is ignored and overwritten.
    ``criterion``: the loss of a batch's logits and labels (default cross-entropy).
    ``on_epoch(epoch, model)``: called before the first epoch (epoch 0) and after each epoch
    (1, 2, ...), e.g. to measure snapshots; it must leave the weights as they are.
    """
    device = resolve_device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(data_seed)
    params = (
        list(parameters)
        if parameters is not None
        else [p for p in model.parameters() if p.requires_grad]
    )
    optimizer = make_optimizer(params, recipe)
    n = len(train)
    steps_per_epoch = n // recipe.batch_size if n >= recipe.batch_size else 1
    scheduler = make_scheduler(optimizer, recipe.schedule, recipe.epochs, steps_per_epoch)
    epsilon, step_size = recipe.attack_budget(train.info.default_epsilon)
    history = History()
    start_epoch = 0
    key = f"{recipe.fingerprint()}-{data_seed}"
    if resume_path is not None and Path(resume_path).exists():
        state = _load_resume(resume_path)
        if state is not None and state["key"] == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            history.epochs = json.loads(state["history"])
            start_epoch = int(state["epoch"])
            log.info(
                "resuming %s from epoch %d of %d (%s)",
                desc,
                start_epoch,
                recipe.epochs,
                resume_path,
            )
        else:
            log.info("ignoring resume state %s: it belongs to other settings", resume_path)

    if on_epoch is not None and start_epoch == 0:
        on_epoch(0, model)
    bar = progress(
        range(start_epoch, recipe.epochs),
        desc=desc,
        initial=start_epoch,
        total=recipe.epochs,
        unit="epoch",
    )
    for epoch in bar:
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        batches = iterate_batches(
            train,
            recipe.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=n >= recipe.batch_size,
            augment=recipe.augment,
            device=device,
        )
        for x, y in batches:
            loss, logits = training_loss(
                model, x, y, recipe, epsilon, step_size, generator, criterion
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(x)
            hard = y if y.ndim == 1 else y.argmax(1)
            correct += (logits.argmax(1) == hard).sum().item()
            seen += len(x)
        record = {"epoch": epoch + 1, "loss": total_loss / seen, "train_accuracy": correct / seen}
        history.epochs.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['train_accuracy']:.3f}")
        log.info(
            "%s epoch %d/%d loss %.4f train accuracy %.4f",
            desc,
            epoch + 1,
            recipe.epochs,
            record["loss"],
            record["train_accuracy"],
        )
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
        if resume_path is not None and epoch + 1 < recipe.epochs:
            _save_resume(
                resume_path, model, optimizer, scheduler, generator, history, epoch + 1, key
            )
    if resume_path is not None and Path(resume_path).exists():
        Path(resume_path).unlink()
    model.eval()
    return history


def _save_resume(path, model, optimizer, scheduler, generator, history, epoch, key) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "history": json.dumps(history.epochs),
        "epoch": epoch,
        "key": key,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_resume(path) -> dict | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: start again rather than fail
        log.warning("cannot read resume state %s (%s); training from scratch", path, err)
        return None


def load_training_split(prepared: str | Path, recipe: TrainRecipe) -> Split:
    """The training split as the recipe sees it: optionally truncated, optionally with a planted
    patch."""
    return with_planted_patch(load_split(prepared, "train", limit=recipe.train_limit), recipe)


def with_planted_patch(train: Split, recipe: TrainRecipe) -> Split:
    """``train`` with the recipe's planted patch (if any) stamped on its chosen images."""
    if not recipe.planted_patch:
        return train
    patched, _ = PlantedPatch.from_config(recipe.planted_patch).plant(train)
    return patched


def train_checkpoint(
    output: str | Path,
    *,
    prepared: str | Path,
    recipe: dict[str, Any] | TrainRecipe,
    **settings: Any,
) -> Path:
    """Train one zoo model from scratch on a prepared data set and write its checkpoint.

    ``settings``: arch, algorithm, init_seed, data_seed, and optionally device, extra_meta
    (see :func:`train_on_splits`). The ``evaluate`` rule measures the model afterwards.
    """
    recipe = recipe if isinstance(recipe, TrainRecipe) else TrainRecipe.from_dict(recipe)
    return train_on_splits(output, load_training_split(prepared, recipe), recipe=recipe, **settings)


def train_on_splits(
    output: str | Path,
    train: Split,
    *,
    arch: str,
    algorithm: str,
    recipe: TrainRecipe,
    init_seed: int,
    data_seed: int,
    device: str = "auto",
    extra_meta: dict[str, Any] | None = None,
    task_name: str | None = None,
) -> Path:
    """Train ``arch`` from its seeded initialisation on ``train`` and write the checkpoint.
    ``task_name`` (default: the data set) starts the model's name."""
    name = f"{task_name or train.info.name}/{arch}/{algorithm}/i{init_seed}-d{data_seed}"
    output = Path(output)
    model = seeded_model(arch, train.info, init_seed)
    history = fit(
        model,
        train,
        recipe,
        data_seed=data_seed,
        device=device,
        resume_path=output.with_name(output.name + ".resume.pt"),
        desc=name,
    )
    meta = {
        "name": name,
        "arch": arch,
        "dataset": train.info.name,
        "num_classes": train.info.num_classes,
        "algorithm": algorithm,
        "recipe": recipe.to_dict(),
        "init_seed": init_seed,
        "data_seed": data_seed,
        "epochs": recipe.epochs,
        "history": history.epochs,
        **(extra_meta or {}),
    }
    return save_checkpoint(output, model, meta)
