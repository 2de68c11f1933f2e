"""Deriving a model: the kind's builder makes the
student, then every kind trains and records alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..device import resolve_device
from ..ids import DerivedId, parse_model_id
from ..train import TrainRecipe, fit, load_training_split
from .builders import Job
from .kinds import DerivationError, derived_dataset, get_kind, resolve_settings, student_seeds

log = logging.getLogger(__name__)


def derived_recipe(parent_meta: dict[str, Any], settings: dict[str, Any]) -> TrainRecipe:
    """The parent's recipe, then the kind's defaults, then ``lr_factor`` x the parent's lr,
    then the derivation's ``recipe``."""
    kind = get_kind(settings["kind"])
    base = dict(parent_meta.get("recipe") or {})
    recipe = {**base, **kind.recipe_defaults}
    lr_factor = settings.get("lr_factor")
    if lr_factor is not None:
        recipe["lr"] = float(base.get("lr", TrainRecipe().lr)) * float(lr_factor)
    recipe.update(settings.get("recipe") or {})
    return TrainRecipe.from_dict(recipe)


def derive_model(
    parent: Checkpoint,
    settings: dict[str, Any],
    *,
    prepared: str | Path,
    model_id: str,
    parent_id: str,
    derivation: str | None = None,
    device: str | torch.device = "auto",
    resume_path: str | Path | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Derive a model from ``parent`` (a loaded checkpoint) as ``settings`` say (see ``KINDS``).

    ``prepared`` is the prepared data set the derived model trains on (the target's, for a
    transfer to another data set). Returns the model (eval mode, on ``device``) and its
    checkpoint metadata; the ``evaluate`` rule measures it. ``on_epoch(epoch, model)`` sees the
    student before training (epoch 0) and after every epoch (:func:`modelkin.train.fit`), e.g. to
    measure each snapshot (the unlearning stage); a kind that does not train calls it once, at 0.
    """
    settings = resolve_settings(settings)
    kind = get_kind(settings["kind"])
    device = resolve_device(device)
    parent_meta = parent.meta
    init_seed, data_seed = student_seeds(model_id)
    recipe = derived_recipe(parent_meta, settings)
    dataset = derived_dataset(parent_meta["dataset"], settings)
    train = load_training_split(prepared, recipe)
    if train.info.name != dataset:
        raise DerivationError(
            f"{prepared} holds {train.info.name}, but this {kind.name} derivation trains on "
            f"{dataset}"
        )
    job = Job(
        parent.model.to(device).eval(),
        parent_meta,
        settings,
        train,
        Path(prepared),
        init_seed,
        data_seed,
        device,
    )
    student = kind.build_function()(job)
    history: list[dict[str, float]] = []
    if student.trains:
        history = fit(
            student.model,
            student.train,
            recipe,
            data_seed=data_seed,
            device=device,
            resume_path=resume_path,
            parameters=student.parameters,
            desc=model_id,
            criterion=student.criterion or F.cross_entropy,
            on_epoch=on_epoch,
        ).epochs
    elif on_epoch is not None:
        on_epoch(0, student.model)
    extra = dict(student.extra)
    if student.finish is not None:
        extra.update(student.finish(student.model))
    student.model.eval()
    parsed = parse_model_id(model_id)
    meta = {
        "name": model_id,
        "arch": job.arch,
        "dataset": dataset,
        "num_classes": student.num_classes,
        "algorithm": derivation or kind.name,
        "derivation": kind.name,
        "derivation_settings": settings,
        "parent": parent_id,
        "parent_sha256": parent.sha256,
        "root": parent_meta.get("root") or parent_meta.get("name") or parent_id,
        "root_algorithm": parent_meta.get("root_algorithm") or parent_meta.get("algorithm"),
        "recipe": recipe.to_dict(),
        "init_seed": init_seed,
        "data_seed": data_seed,
        "student_seed": parsed.seed if isinstance(parsed, DerivedId) else None,
        "epochs": recipe.epochs if student.trains else 0,
        "history": history,
        **extra,
    }
    if settings.get("forget_class") is not None:
        meta["forget_class"] = int(settings["forget_class"])
    log.info("%s: %s of %s", model_id, kind.name, parent_id)
    return student.model, meta


def derive_checkpoint(
    output: str | Path,
    *,
    parent: str | Path,
    prepared: str | Path,
    settings: dict[str, Any],
    model_id: str,
    parent_id: str,
    derivation: str | None = None,
    device: str = "auto",
) -> Path:
    """Derive a model from the checkpoint ``parent``
    and save it to ``output`` (resumable per epoch)."""
    output = Path(output)
    torch_device = resolve_device(device)
    model, meta = derive_model(
        load_checkpoint(parent, torch_device),
        settings,
        prepared=prepared,
        model_id=model_id,
        parent_id=parent_id,
        derivation=derivation,
        device=torch_device,
        resume_path=output.with_name(output.name + ".resume.pt"),
    )
    return save_checkpoint(output, model, meta)
