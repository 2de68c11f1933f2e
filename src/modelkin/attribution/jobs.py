"""TRAK on files: one features file per checkpoint (resumable, one Snakemake job each), one
scores file per ensemble."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..data import PlantedPatch, Split, load_split
from ..errors import InputError
from ..io import file_sha256
from ..train import TrainRecipe, load_training_split
from .settings import AttributionError, TrakSettings
from .store import (
    FEATURES_KIND,
    SCORES_KIND,
    StoredArrays,
    read_arrays,
    read_attributes,
    streamed_arrays,
)
from .trak import CheckpointFeatures

log = logging.getLogger(__name__)

TRAIN_DATA_CHOICES = ("as_trained", "clean")


def attribution_training_split(
    prepared: str | Path, recipe: dict[str, Any], train_data: str = "as_trained"
) -> Split:
    """The training examples scores are attributed to.

    ``as_trained``: exactly what the recipe trained on (its ``train_limit``, and its planted
    patch on the chosen images); ``clean``: the same images without the planted patch.
    """
    if train_data not in TRAIN_DATA_CHOICES:
        raise InputError(f"train_data must be one of {TRAIN_DATA_CHOICES}, not {train_data!r}")
    train_recipe = TrainRecipe.from_dict(recipe)
    if train_data == "clean":
        train_recipe = TrainRecipe.from_dict({**train_recipe.to_dict(), "planted_patch": None})
    return load_training_split(prepared, train_recipe)


def target_split(
    prepared: str | Path,
    split: str = "test",
    limit: int | None = None,
    patch: dict[str, Any] | None = None,
) -> Split:
    """The examples whose predictions are attributed: the first ``limit`` of ``split``,
    optionally with ``patch`` planted on its fraction of the patch's class (chosen as on the
    training split, by the patch's seed)."""
    targets = load_split(prepared, split, limit=limit)
    if patch:
        targets, _ = PlantedPatch.from_config(patch).plant(targets)
    return targets


def featurize_checkpoint_file(
    output: str | Path,
    *,
    checkpoint: str | Path,
    prepared: str | Path,
    settings: dict[str, Any] | TrakSettings,
    checkpoint_index: int,
    train_data: str = "as_trained",
    targets: str = "test",
    n_targets: int | None = None,
    target_patch: dict[str, Any] | None = None,
    device: str = "auto",
    memory_budget_mb: float | None = None,
    external: bool = False,
) -> Path:
    """Featurise one checkpoint on its training data and the targets; write an HDF5 features
    file, block by block within ``memory_budget_mb`` (default: the configuration's).

    ``external``: a user's own checkpoint (the ``models`` section), trained on ``prepared``'s
    whole train split unless it records a modelkin training recipe (imported with ``source:
    checkpoint``), whose training data (train_limit, planted patch) it then is."""
    from ..config import memory_budget_bytes
    from ..device import resolve_device
    from .streaming import featurize_to_file

    settings = settings if isinstance(settings, TrakSettings) else TrakSettings.from_dict(settings)
    ckpt = load_checkpoint(checkpoint, device="cpu")
    recipe = ckpt.meta.get("recipe", {} if external else None)
    if recipe is None:
        raise AttributionError(
            f"{checkpoint} records no training recipe, so its training data is unknown; TRAK "
            "needs checkpoints trained by modelkin (the `train` rule); for your own checkpoints, "
            "trained on a data set's whole train split, name them in modeldiff.models_a and "
            "models_b (docs/modeldiff.md)"
        )
    train = attribution_training_split(prepared, recipe, train_data)
    test = target_split(prepared, targets, n_targets, target_patch)
    data = {
        "prepared": str(prepared),
        "prepared_sha256": file_sha256(prepared),
        "train_data": train_data,
        "train_limit": recipe.get("train_limit"),
        "planted_patch": recipe.get("planted_patch"),
        "patch_in_features": bool(recipe.get("planted_patch")) and train_data == "as_trained",
        "n_train": len(train),
        "targets": targets,
        "n_targets": len(test),
        "n_targets_limit": n_targets,
        "target_patch": target_patch or None,
    }
    with streamed_arrays(
        output,
        kind=FEATURES_KIND,
        method="trak",
        params=settings.feature_params(),
        axes={
            "train_features": ("train", "projection"),
            "out_to_loss": ("train",),
            "target_grads": ("target", "projection"),
            "train_labels": ("train",),
            "target_labels": ("target",),
        },
    ) as writer:
        out_to_loss, info = featurize_to_file(
            writer,
            ckpt.model,
            train,
            test,
            settings,
            checkpoint_index=checkpoint_index,
            device=resolve_device(device),
            memory_bytes=memory_budget_bytes(memory_budget_mb),
            desc=f"TRAK {ckpt.name}",
        )
        writer.write("out_to_loss", out_to_loss)
        writer.write("train_labels", train.y.numpy())
        writer.write("target_labels", test.y.numpy())
        writer.attrs.update(
            {
                "checkpoint": str(checkpoint),
                "checkpoint_sha256": ckpt.sha256,
                "model": {
                    k: ckpt.meta.get(k)
                    for k in ("name", "arch", "dataset", "algorithm", "init_seed", "data_seed")
                },
                "data": data,
                "info": info,
            }
        )
    log.info("%s: TRAK features %s (%s)", ckpt.name, output, info)
    return Path(output)


def read_features(path: str | Path) -> tuple[CheckpointFeatures, StoredArrays]:
    stored = read_arrays(path, FEATURES_KIND, f"make it with `snakemake --cores 2 {path}`")
    features = CheckpointFeatures(
        torch.from_numpy(stored["train_features"]),
        torch.from_numpy(stored["out_to_loss"]),
        torch.from_numpy(stored["target_grads"]),
        stored.attrs.get("info", {}),
    )
    return features, stored


def score_feature_files(
    output: str | Path,
    feature_files: Sequence[str | Path],
    *,
    algorithm: str | None = None,
    out_to_loss: bool = True,
    memory_budget_mb: float | None = None,
) -> Path:
    """Ensemble the checkpoints' features into TRAK scores [n_train × n_targets] (HDF5), block by
    block within ``memory_budget_mb`` (default: the configuration's).

    ``out_to_loss``: weight each training example's row by its mean 1 − p_y (traker's Q), or
    not. The file also holds that mean (``out_to_loss``, [n_train]) either way, so the other
    weighting can be recovered.
    """
    from ..config import memory_budget_bytes
    from .streaming import scores_to_file

    if not feature_files:
        raise AttributionError(
            "no feature files given; list at least one checkpoint's TRAK features"
        )
    hint = "make it with `snakemake --cores 2 {}`"
    headers = [read_attributes(p, FEATURES_KIND, hint.format(p)) for p in feature_files]
    labels = [_labels(p) for p in feature_files]
    reference, reference_path = headers[0], feature_files[0]
    others = zip(headers[1:], feature_files[1:], labels[1:], strict=True)
    for attrs, path, (train_labels, _) in others:
        for key in ("params", "data"):
            if attrs[key] != reference[key]:
                raise AttributionError(
                    f"{path} and {reference_path} differ in {key} ({attrs[key]} vs "
                    f"{reference[key]}); featurise every checkpoint of an ensemble with "
                    "the same settings and data"
                )
        if not np.array_equal(train_labels, labels[0][0]):
            raise AttributionError(
                f"{path} and {reference_path} were featurised on different training examples"
            )
    indices = [attrs["info"].get("checkpoint_index") for attrs in headers]
    if len(set(indices)) != len(indices):
        log.warning(
            "checkpoints share projection matrices (checkpoint indices %s); their errors are "
            "correlated",
            indices,
        )
    with streamed_arrays(
        output,
        kind=SCORES_KIND,
        method="trak",
        params={**reference["params"], "out_to_loss": bool(out_to_loss)},
        axes={
            "scores": ("train", "target"),
            "out_to_loss": ("train",),
            "train_labels": ("train",),
            "target_labels": ("target",),
        },
    ) as writer:
        mean_q = scores_to_file(
            writer,
            feature_files,
            out_to_loss=out_to_loss,
            memory_bytes=memory_budget_bytes(memory_budget_mb),
        )
        writer.write("out_to_loss", mean_q)
        writer.write("train_labels", labels[0][0])
        writer.write("target_labels", labels[0][1])
        writer.attrs.update(
            {
                "algorithm": algorithm or reference["model"].get("algorithm"),
                "data": reference["data"],
                "checkpoints": [attrs["checkpoint"] for attrs in headers],
                "checkpoint_sha256s": [attrs["checkpoint_sha256"] for attrs in headers],
                "models": [attrs["model"] for attrs in headers],
                "features": [str(path) for path in feature_files],
            }
        )
    return Path(output)


def _labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as handle:
        return handle["train_labels"][()], handle["target_labels"][()]


def read_scores(path: str | Path) -> StoredArrays:
    """TRAK scores written by :func:`score_feature_files`: ``scores`` [n_train × n_targets] and
    provenance."""
    return read_arrays(path, SCORES_KIND, f"make it with `snakemake --cores 2 {path}`")
