"""One function per derivation kind (named by :attr:`DerivationKind.builder`): the student to train.

Each builder takes a :class:`Job` (the parent, the resolved settings, the training split, the
student's seeds) and returns a :class:`Student`: the model to train, the split to train it on,
which parameters train, and what to record. :func:`modelkin.derive.run.derive_model` does the
rest (training, evaluation, metadata) the same way for every kind.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split, load_split, relabel_classes, without_class
from ..datasets import get_dataset_info
from ..evaluate import predict
from ..models import normalisation_of, seeded_model
from ..train import Criterion
from .kinds import DerivationError


@dataclass
class Job:
    """What every builder gets."""

    parent: nn.Module  # on the device, eval mode
    parent_meta: dict[str, Any]
    settings: dict[str, Any]
    train: Split  # the training split of the data set the student works on
    prepared: Path  # that data set's prepared file
    init_seed: int
    data_seed: int
    device: torch.device

    @property
    def arch(self) -> str:
        return self.settings.get("arch") or self.parent_meta["arch"]

    @property
    def num_classes(self) -> int:
        return int(self.parent_meta["num_classes"])


@dataclass
class Student:
    """What a builder returns; ``finish`` runs after training and returns more metadata."""

    model: nn.Module
    train: Split
    num_classes: int
    parameters: list[nn.Parameter] | None = None  # None: every parameter trains
    trains: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[nn.Module], dict[str, Any]] | None = None
    criterion: Criterion | None = None  # None: cross-entropy


def finetune(job: Job) -> Student:
    return Student(copy.deepcopy(job.parent), job.train, job.num_classes)


def prune(job: Job) -> Student:
    model = copy.deepcopy(job.parent)
    targets = global_magnitude_prune(model, job.settings["sparsity"])

    def finish(trained: nn.Module) -> dict[str, Any]:
        make_pruning_permanent(targets)
        return {"sparsity": weight_sparsity(trained)}

    return Student(
        model, job.train, job.num_classes, trains=bool(job.settings["finetune"]), finish=finish
    )


def unlearn_relabel(job: Job) -> Student:
    forget = check_class(job.settings["forget_class"], job.num_classes)
    train = relabel_class_at_random(job.train, forget, job.num_classes, job.data_seed)
    return Student(copy.deepcopy(job.parent), train, job.num_classes)


def unlearn_ascent(job: Job) -> Student:
    """Gradient ascent on the forgotten class's training images: their cross-entropy is
    maximised, each image's only until it reaches ln(C) (the loss of a uniform guess; beyond it
    the image is forgotten and the unbounded loss would only blow the logits up). With ``retain``
    (the default) the other classes' images train as usual in the same batches ("NegGrad+");
    without, the ascent alone runs away with the rest of the model once the class is forgotten
    (docs/model-distance.md, "Unlearning verification")."""
    forget = check_class(job.settings["forget_class"], job.num_classes)
    train = job.train
    if not job.settings["retain"]:
        train = train.subset(torch.nonzero(train.y == forget).flatten())
    if len(train) == 0 or not bool((train.y == forget).any()):
        raise DerivationError(
            f"the training split has no images of forget_class {forget} to ascend on"
        )
    criterion = ascent_criterion(forget, math.log(job.num_classes))
    extra = {"ascent": {"retain": bool(job.settings["retain"]), "bound": math.log(job.num_classes)}}
    return Student(
        copy.deepcopy(job.parent), train, job.num_classes, criterion=criterion, extra=extra
    )


def ascent_criterion(forget_class: int, bound: float) -> Criterion:
    """Cross-entropy on the retained classes' images, minus cross-entropy capped at ``bound`` on
    the forgotten class's (mean over the batch): descending it ascends the forgotten class's loss
    up to the cap."""

    def criterion(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(logits, y, reduction="none")
        forgotten = y == forget_class
        return torch.where(forgotten, -losses.clamp(max=bound), losses).mean()

    return criterion


def retrain_without_class(job: Job) -> Student:
    """A fresh model with the parent's input normalisation (its training pipeline), trained
    without the class."""
    forget = check_class(job.settings["forget_class"], job.num_classes)
    train = without_class(job.train, forget)
    model = seeded_model(
        job.arch,
        train.info,
        job.init_seed,
        num_classes=job.num_classes,
        normalisation=normalisation_of(job.parent),
    )
    return Student(model, train, job.num_classes)


def extract(job: Job) -> Student:
    """Extraction (``extract_labels``, ``extract_probs``):
    a fresh student on the parent's answers."""
    settings = job.settings
    queries = load_split(job.prepared, "test") if settings["queries"] == "test" else job.train
    probabilities = settings["kind"] == "extract_probs"
    inputs = mixup_queries(queries.x, int(settings["mixup_queries"]), job.data_seed)
    labels = predict(
        job.parent,
        inputs,
        device=job.device,
        probabilities=probabilities,
        temperature=float(settings.get("temperature", 1.0)),
    )
    train = Split(inputs, labels, queries.info)
    model = seeded_model(job.arch, train.info, job.init_seed, num_classes=job.num_classes)
    extra: dict[str, Any] = {
        "queries": {
            "split": settings["queries"],
            "n": len(train),
            "mixup_copies": int(settings["mixup_queries"]),
        }
    }
    if not probabilities:
        agreement = (labels[: len(queries)] == queries.y).float().mean()
        extra["query_label_agreement"] = float(agreement)
    return Student(model, train, job.num_classes, extra=extra)


def transfer(job: Job) -> Student:
    classes = job.settings.get("classes")
    train = job.train
    extra: dict[str, Any] = {}
    if classes:
        train = relabel_classes(train, classes)
        num_classes = len(classes)
        extra["classes"] = [int(c) for c in classes]
    else:
        num_classes = train.info.num_classes
    model, head = transfer_model(
        job.parent, job.parent_meta, train.info.name, num_classes, job.init_seed
    )
    parameters = (
        list(model.get_submodule(head).parameters()) if job.settings["train_head_only"] else None
    )
    extra["head"] = head
    extra["source_dataset"] = job.parent_meta["dataset"]
    return Student(model, train, num_classes, parameters=parameters, extra=extra)


# ---------------------------------------------------------------------------------------------
# Data and model surgery the builders share


def check_class(cls: int, num_classes: int) -> int:
    if not 0 <= int(cls) < num_classes:
        raise DerivationError(
            f"forget_class {cls} is not a class of the parent (0..{num_classes - 1})"
        )
    return int(cls)


def relabel_class_at_random(split: Split, forget_class: int, num_classes: int, seed: int) -> Split:
    """``forget_class``'s labels replaced by a uniformly drawn other class (seeded)."""
    y = split.y.clone()
    chosen = torch.nonzero(y == int(forget_class)).flatten()
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, num_classes - 1, (len(chosen),), generator=generator)
    y[chosen] = draw + (draw >= int(forget_class)).long()  # skip the forgotten class itself
    return Split(split.x, y, split.info)


def mixup_queries(x: torch.Tensor, copies: int, seed: int) -> torch.Tensor:
    """``x`` followed by ``copies`` blends of each image with a random other one, weight ~ U(0, 1).

    An extraction attacker is not limited to natural images: blends lie between the classes,
    where a model's own decision boundaries (not the data's labels) decide the answer.
    """
    if copies <= 0:
        return x
    generator = torch.Generator().manual_seed(seed)
    blends = [x]
    for _ in range(copies):
        partner = torch.randint(0, len(x), (len(x),), generator=generator)
        weight = torch.rand(len(x), 1, 1, 1, generator=generator)
        blends.append(weight * x + (1 - weight) * x[partner])
    return torch.cat(blends)


def head_name(model: nn.Module) -> str:
    """The classification head: the last ``nn.Linear`` in module order."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise DerivationError(f"{type(model).__name__} has no nn.Linear head to replace")
    return linears[-1]


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def global_magnitude_prune(model: nn.Module, sparsity: float) -> list[tuple[nn.Module, str]]:
    """Zero the ``sparsity`` fraction of conv/linear weights with the smallest |w| over the model.

    Leaves torch's pruning re-parametrisation in place (weight = weight_orig * mask), so that a
    following fine-tune keeps the mask fixed; :func:`make_pruning_permanent` removes it.
    """
    from torch.nn.utils import prune as torch_prune

    targets = prunable_weights(model)
    torch_prune.global_unstructured(
        targets, pruning_method=torch_prune.L1Unstructured, amount=float(sparsity)
    )
    return targets


def make_pruning_permanent(targets: list[tuple[nn.Module, str]]) -> None:
    from torch.nn.utils import prune as torch_prune

    for module, name in targets:
        torch_prune.remove(module, name)


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries among all conv/linear weights."""
    zeros = total = 0
    for module, name in prunable_weights(model):
        weight = getattr(module, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total


def transfer_model(
    parent: nn.Module,
    parent_meta: dict[str, Any],
    dataset: str,
    num_classes: int,
    init_seed: int,
) -> tuple[nn.Module, str]:
    """A model of the parent's architecture for ``dataset`` with ``num_classes`` outputs: the
    parent's weights everywhere except a freshly initialised head, and the parent's input
    normalisation (its features expect the inputs it was trained on, whatever the target data
    set's statistics). Returns (model, head name)."""
    info = get_dataset_info(dataset)
    parent_info = get_dataset_info(parent_meta["dataset"])
    if info.shape != parent_info.shape:
        raise DerivationError(
            f"cannot transfer a {parent_meta['dataset']} model (inputs {parent_info.shape}) to "
            f"{dataset} (inputs {info.shape}); choose a data set with the same input shape"
        )
    model = seeded_model(
        parent_meta["arch"],
        info,
        init_seed,
        num_classes=num_classes,
        normalisation=normalisation_of(parent),
    )
    head = head_name(model)
    state = {k: v for k, v in parent.state_dict().items() if not k.startswith(head + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(head + ".") for k in missing):
        raise DerivationError(
            f"parent weights do not fit the transfer model (missing {missing}, unexpected "
            f"{unexpected})"
        )
    return model, head
