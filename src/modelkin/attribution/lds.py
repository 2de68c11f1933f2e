"""Linear datamodeling score (LDS; Park et al. 2023, Definition 2.3): do attribution scores predict
retraining?

Draw S random subsets of the training set, each holding a fraction ``alpha`` of it (exactly
round(alpha · n) examples). Train a model on each subset (the same recipe as the attributed models,
new seeds) and record its margin f(x) = logit_y − logsumexp_{j≠y} logit_j on every target x. The
attribution predicts that margin as the sum of the subset's scores, g(x, S) = Σ_{z ∈ S} τ(z, x). The
LDS of target x is the Spearman rank correlation between predicted and actual margins over the S
subsets; the reported LDS is its mean over targets (targets whose margins do not vary are skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import read_metadata
from ..device import resolve_device
from ..errors import InputError
from ..io import atomic_path, file_sha256, write_json
from ..models import Normalisation, checkpoint_normalisation, seeded_model
from ..train import TrainRecipe, fit
from .gradients import margins
from .jobs import attribution_training_split, read_scores, target_split
from .settings import AttributionError
from .store import read_arrays, write_arrays

log = logging.getLogger(__name__)

SUBSET_KIND = "modelkin-lds-subset"


def subset_mask(n_train: int, alpha: float, seed: int, subset_index: int) -> np.ndarray:
    """The training examples of subset ``subset_index``: exactly round(alpha · n_train) of them,
    seeded."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be in (0, 1), not {alpha}")
    size = int(round(alpha * n_train))
    if size < 1 or size >= n_train:
        raise InputError(
            f"alpha={alpha} of {n_train} training examples leaves no room for a random subset"
        )
    rng = np.random.default_rng([seed, subset_index])
    mask = np.zeros(n_train, dtype=bool)
    mask[rng.choice(n_train, size=size, replace=False)] = True
    return mask


def subset_margins(
    *,
    prepared: str | Path,
    arch: str,
    recipe: dict[str, Any],
    mask: np.ndarray,
    model_seed: int,
    targets: str = "test",
    n_targets: int | None = None,
    target_patch: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    normalisation: Normalisation | None = None,
) -> np.ndarray:
    """Train ``arch`` on the masked training examples (as the recipe sees them); its margins on the
    targets. ``normalisation``: the models' input normalisation (None: the data set's)."""
    train = attribution_training_split(prepared, recipe, "as_trained")
    if len(mask) != len(train):
        raise AttributionError(
            f"subset mask covers {len(mask)} examples but the recipe trains on {len(train)}"
        )
    subset = train.subset(np.flatnonzero(mask))
    model = seeded_model(arch, train.info, model_seed, normalisation=normalisation)
    fit(
        model,
        subset,
        TrainRecipe.from_dict(recipe),
        data_seed=model_seed,
        device=device,
        desc=f"LDS subset (seed {model_seed})",
    )
    test = target_split(prepared, targets, n_targets, target_patch)
    device = resolve_device(device)
    model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(test), 512):
            x = test.x[start : start + 512].to(device)
            y = test.y[start : start + 512].to(device)
            out.append(margins(model, x, y).cpu())
    return torch.cat(out).numpy()


def train_subset_file(
    output: str | Path,
    *,
    prepared: str | Path,
    reference_checkpoint: str | Path,
    subset_index: int,
    alpha: float = 0.5,
    seed: int = 0,
    models_per_subset: int = 1,
    seed_offset: int = 10_000,
    targets: str = "test",
    n_targets: int | None = None,
    target_patch: dict[str, Any] | None = None,
    device: str = "auto",
) -> Path:
    """One LDS subset: its mask and the margins of models trained on it with
    ``reference_checkpoint``'s recipe.

    Model seeds are ``seed_offset + subset_index * models_per_subset + r``, far from the ensemble's
    seeds.
    Several models per subset average out training noise in the margins.
    """
    meta = read_metadata(reference_checkpoint)
    if "recipe" not in meta:
        raise AttributionError(
            f"{reference_checkpoint} records no training recipe; train it with the `train` rule"
        )
    recipe = meta["recipe"]
    train = attribution_training_split(prepared, recipe, "as_trained")
    mask = subset_mask(len(train), alpha, seed, subset_index)
    runs = []
    for r in range(models_per_subset):
        model_seed = seed_offset + subset_index * models_per_subset + r
        runs.append(
            subset_margins(
                prepared=prepared,
                arch=meta["arch"],
                recipe=recipe,
                mask=mask,
                model_seed=model_seed,
                targets=targets,
                n_targets=n_targets,
                target_patch=target_patch,
                device=device,
                normalisation=checkpoint_normalisation(meta),
            )
        )
    write_arrays(
        output,
        {"mask": mask, "margins": np.mean(runs, axis=0).astype(np.float32)},
        kind=SUBSET_KIND,
        method="lds-subset",
        params={
            "alpha": alpha,
            "seed": seed,
            "subset_index": subset_index,
            "models_per_subset": models_per_subset,
            "seed_offset": seed_offset,
            "targets": targets,
            "n_targets": n_targets,
            "target_patch": target_patch or None,
        },
        axes={"mask": ("train",), "margins": ("target",)},
        attrs={
            "reference_checkpoint": str(reference_checkpoint),
            "reference_checkpoint_sha256": file_sha256(reference_checkpoint),
            "arch": meta["arch"],
            "algorithm": meta.get("algorithm"),
            "recipe": recipe,
        },
    )
    return Path(output)


@dataclass
class LdsResult:
    lds: float  # mean Spearman correlation over the targets with varying margins
    per_target: np.ndarray  # [n_targets], NaN where undefined
    num_subsets: int
    num_targets_used: int

    def summary(self) -> dict[str, Any]:
        valid = self.per_target[np.isfinite(self.per_target)]
        return {
            "lds": self.lds,
            "lds_std_over_targets": float(valid.std()) if len(valid) else float("nan"),
            "lds_sem": float(valid.std(ddof=1) / np.sqrt(len(valid)))
            if len(valid) > 1
            else float("nan"),
            "num_subsets": self.num_subsets,
            "num_targets": int(len(self.per_target)),
            "num_targets_used": self.num_targets_used,
        }


def linear_datamodeling_score(
    scores: np.ndarray, masks: np.ndarray, actual: np.ndarray
) -> LdsResult:
    """LDS of ``scores`` [n_train × n_targets] given subset ``masks`` [S × n_train] and margins [S ×
    n_targets]."""
    from scipy.stats import rankdata

    scores, masks, actual = (
        np.asarray(scores, np.float64),
        np.asarray(masks, bool),
        np.asarray(actual, np.float64),
    )
    if masks.ndim != 2 or actual.ndim != 2 or scores.ndim != 2:
        raise InputError(
            "scores, masks and margins must be 2-D: [n_train x n_targets], [S x n_train], [S x "
            "n_targets]"
        )
    if masks.shape[1] != scores.shape[0] or actual.shape != (masks.shape[0], scores.shape[1]):
        raise InputError(
            f"shapes do not fit: scores {scores.shape} (train x target), masks {masks.shape} "
            f"(subset x train), margins {actual.shape} (subset x target)"
        )
    if masks.shape[0] < 3:
        raise InputError(f"a rank correlation needs at least 3 subsets, got {masks.shape[0]}")
    predicted = masks.astype(np.float64) @ scores
    rank_p = rankdata(predicted, axis=0)
    rank_a = rankdata(actual, axis=0)
    rank_p -= rank_p.mean(axis=0)
    rank_a -= rank_a.mean(axis=0)
    denom = np.sqrt((rank_p**2).sum(axis=0) * (rank_a**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_target = np.where(denom > 0, (rank_p * rank_a).sum(axis=0) / denom, np.nan)
    used = int(np.isfinite(per_target).sum())
    if used == 0:
        raise InputError("no target has varying predicted and actual margins; the LDS is undefined")
    return LdsResult(float(np.nanmean(per_target)), per_target, masks.shape[0], used)


def lds_from_files(
    output_json: str | Path,
    output_csv: str | Path,
    *,
    scores_file: str | Path,
    subset_files: Sequence[str | Path],
) -> dict[str, Any]:
    """LDS of a TRAK scores file against trained subsets; a JSON summary and a per-target CSV."""
    import pandas as pd

    scores = read_scores(scores_file)
    subsets = [
        read_arrays(p, SUBSET_KIND, f"make it with `snakemake --cores 2 {p}`") for p in subset_files
    ]
    if not subsets:
        raise InputError("no LDS subsets given; configure modeldiff.lds.n_subsets >= 3")
    targets = {k: scores.attrs["data"].get(k) for k in ("targets", "target_patch")}
    for subset in subsets:
        made = {k: subset.params.get(k) for k in targets}
        if made != targets or len(subset["margins"]) != scores["scores"].shape[1]:
            raise InputError(
                f"{subset.path} holds margins on other targets ({made}, {len(subset['margins'])} "
                f"examples) than {scores_file} attributes ({targets}, "
                f"{scores['scores'].shape[1]}); rebuild the subsets"
            )
    masks = np.stack([s["mask"] for s in subsets])
    actual = np.stack([s["margins"] for s in subsets])
    result = linear_datamodeling_score(scores["scores"], masks, actual)
    # Unweighted scores times the stored mean out-to-loss are traker's weighted scores: report their
    # LDS too.
    weighted = None
    if scores.params.get("out_to_loss") is False and "out_to_loss" in scores.arrays:
        weighted = linear_datamodeling_score(
            scores["scores"] * scores["out_to_loss"][:, None], masks, actual
        ).lds
    summary = {
        **result.summary(),
        "out_to_loss": scores.params.get("out_to_loss", True),
        "lds_with_out_to_loss": weighted,
        "algorithm": scores.attrs.get("algorithm"),
        "alpha": subsets[0].params["alpha"],
        "models_per_subset": subsets[0].params["models_per_subset"],
        "num_checkpoints": len(scores.attrs.get("checkpoints", [])),
        "trak": scores.params,
        "scores_file": str(scores_file),
    }
    write_json(output_json, summary)
    table = pd.DataFrame(
        {
            "target": np.arange(len(result.per_target)),
            "label": scores["target_labels"],
            "spearman": result.per_target,
            "margin_mean": actual.mean(axis=0),
            "margin_std": actual.std(axis=0),
        }
    )
    with atomic_path(output_csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info(
        "LDS %.4f over %d targets (%d subsets)",
        result.lds,
        result.num_targets_used,
        result.num_subsets,
    )
    return summary
