"""The ModelDiff stage's steps on files: what the workflow scripts (and the acceptance test) call.

- :func:`compare_score_files`: two TRAK score files -> the directions file (HDF5, one group per
  kind, :mod:`.store`) and a CSV of explained variances; :func:`read_comparison` reads it back;
- :func:`surface_directions`: each direction's top and bottom training and test examples (CSV)
  and image grids;
- :func:`counterfactual_files`: the counterfactual for every checkpoint of A and B (CSV);
- :func:`summarise_files`, :func:`format_summary`: the stage's summary (JSON, readable lines);
- :func:`plot_summary`: the summary figure.

Importing this module loads no torch: reading results, summarising and plotting stay light. The
steps that load images or models import the modules that need torch when they run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attribution.store import SCORES_KIND
from ..io import atomic_path, read_json, write_json
from .directions import (
    KINDS,
    DistinguishingDirections,
    ModelDiffError,
    precision_at_k,
    residual_pca,
)
from .plots import direction_picks, save_direction_grid, save_summary_plot
from .store import StoredComparison, read_comparison, read_stage_file, write_comparison

# What both score files must agree on: ModelDiff compares algorithms on the same examples.
SAME_EXAMPLES = (
    "n_train",
    "n_targets",
    "targets",
    "target_patch",
    "train_limit",
    "prepared_sha256",
)
__all__ = [
    "StoredComparison",
    "compare_score_files",
    "counterfactual_files",
    "format_summary",
    "planted_indices",
    "plot_summary",
    "read_comparison",
    "summarise_files",
    "surface_directions",
]


def _direction_rows(results: Mapping[str, DistinguishingDirections]) -> list[dict[str, Any]]:
    """One row per direction: its label, explained variances and residual variance ratio."""
    rows = []
    for result in results.values():
        for row in result.summary():
            rows.append({"kind": row.pop("kind"), "label": result.label, **row})
    return rows


def compare_score_files(
    output: str | Path,
    output_csv: str | Path,
    *,
    scores_a: str | Path,
    scores_b: str | Path,
    num_components: int = 3,
    normalize_rows: bool = True,
) -> dict[str, DistinguishingDirections]:
    """A-minus-B and B-minus-A from two TRAK score files; HDF5 (one group each) and a CSV of
    explained variances."""
    stored = {
        role: read_stage_file(path, SCORES_KIND)
        for role, path in (("A", scores_a), ("B", scores_b))
    }
    for key in SAME_EXAMPLES:
        va, vb = stored["A"].attrs["data"].get(key), stored["B"].attrs["data"].get(key)
        if va != vb:
            raise ModelDiffError(
                f"the two score files attribute different examples ({key}: {va!r} in {scores_a} "
                f"vs {vb!r} in {scores_b}); ModelDiff compares algorithms on the same training "
                "and test examples"
            )
    if not np.array_equal(stored["A"]["train_labels"], stored["B"]["train_labels"]):
        raise ModelDiffError(
            f"{scores_a} and {scores_b} list different training labels; they cover different "
            "examples"
        )
    names = {role: str(s.attrs.get("algorithm") or role) for role, s in stored.items()}
    # TRAK scores are [n_train x n_targets]; ModelDiff works on their transpose, one row per test
    # example.
    matrices = {role: s["scores"].T for role, s in stored.items()}
    results = {
        kind: residual_pca(
            matrices["A"],
            matrices["B"],
            num_components,
            kind=kind,
            normalize_rows=normalize_rows,
            names=names,
        )
        for kind in KINDS
    }
    write_comparison(
        output,
        results,
        train_labels=stored["A"]["train_labels"],
        target_labels=stored["A"]["target_labels"],
        attrs={
            "algorithm_A": names["A"],
            "algorithm_B": names["B"],
            "scores_A": str(scores_a),
            "scores_B": str(scores_b),
            "data_A": stored["A"].attrs["data"],
            "data_B": stored["B"].attrs["data"],
            "checkpoints_A": _checkpoint_names(stored["A"].attrs),
            "checkpoints_B": _checkpoint_names(stored["B"].attrs),
        },
        num_components=num_components,
        normalize_rows=normalize_rows,
    )
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(_direction_rows(results)).to_csv(tmp, index=False)
    return results


def _checkpoint_names(attrs: Mapping[str, Any]) -> list[str]:
    """The model ids (or paths) of the checkpoints a score file ensembles."""
    models = attrs.get("models") or []
    paths = attrs.get("checkpoints") or []
    return [str((m or {}).get("name") or p) for m, p in zip(models, paths, strict=False)]


def _training_split(data: Mapping[str, Any], *, with_patch: bool):
    """The training images an algorithm's scores describe (``data``: a directions file's
    ``data_A``/``data_B``), with or without its planted patch."""
    from ..train import TrainRecipe, load_training_split  # torch

    recipe = {
        "train_limit": data.get("train_limit"),
        "planted_patch": data.get("planted_patch") if with_patch else None,
    }
    return load_training_split(data["prepared"], TrainRecipe.from_dict(recipe))


def planted_indices(data: Mapping[str, Any]) -> np.ndarray | None:
    """Training indices that carry an algorithm's planted patch (None when it plants none)."""
    from ..data import PlantedPatch  # torch

    patch = data.get("planted_patch")
    if not patch:
        return None
    train = _training_split(data, with_patch=False)
    return PlantedPatch.from_config(patch).chosen_indices(train.y).numpy()


def surface_directions(
    comparison: str | Path,
    output_csv: str | Path,
    grids: Mapping[tuple[str, int], str | Path],
    *,
    n_examples: int = 16,
) -> list[dict[str, Any]]:
    """For each direction: its top and bottom training examples (weights) and test examples
    (projections).

    Writes one CSV of indices and one PNG image grid per (kind, component) in ``grids``. Training
    images are shown as the direction's first algorithm trained on them (with its planted patch,
    if any).
    """
    from ..attribution.jobs import target_split  # torch

    stored = read_comparison(comparison)
    existing = {(k, c) for k, r in stored.results.items() for c in range(r.num_components)}
    missing = sorted(set(grids) - existing)
    if missing:
        raise ModelDiffError(f"image grids requested for directions that do not exist: {missing}")
    data = stored.data
    planted = {role: planted_indices(d) for role, d in data.items()}
    test = target_split(
        data["A"]["prepared"],
        data["A"]["targets"],
        data["A"]["n_targets"],
        data["A"].get("target_patch"),
    )
    train_images = {role: _training_split(d, with_patch=True) for role, d in data.items()}
    rows = []
    for kind, result in stored.results.items():
        train = train_images[result.first]
        for c in range(result.num_components):
            picks = direction_picks(result, c, n_examples)
            for role, (indices, values) in picks.items():
                is_train = role.startswith("train")
                labels = (train.y if is_train else test.y).numpy()
                for rank, index in enumerate(indices):
                    row = {
                        "kind": kind,
                        "component": c,
                        "role": role,
                        "rank": rank,
                        "index": int(index),
                        "label": int(labels[index]),
                        "value": float(values[index]),
                    }
                    if is_train:
                        for owner, chosen in planted.items():
                            if chosen is not None:
                                row[f"planted_in_{result.names[owner]}"] = bool(
                                    np.isin(index, chosen)
                                )
                    rows.append(row)
            if (kind, c) in grids:
                save_direction_grid(grids[(kind, c)], result, c, picks, train, test)
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return rows


def counterfactual_files(
    output_csv: str | Path,
    summary_csv: str | Path,
    *,
    comparison: str | Path,
    checkpoints_a: Sequence[str | Path],
    checkpoints_b: Sequence[str | Path],
    counterfactual: Mapping[str, Any] | None = None,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Apply the counterfactual transformation (``counterfactual``: the ``modeldiff.counterfactual``
    config section; keys left out take its defaults) to the test images; P(target class) before and
    after for every checkpoint of A and B (one CSV row each), and their mean per algorithm (the
    summary CSV)."""
    from ..checkpoint import load_checkpoint  # torch
    from ..data import load_split
    from .counterfactual import (
        counterfactual_defaults,
        counterfactual_probabilities,
        resolve_counterfactual,
        summarise_counterfactual,
    )

    stored = read_comparison(comparison)
    data, names = stored.data, stored.names
    settings = {**counterfactual_defaults(), **(counterfactual or {})}
    chosen = resolve_counterfactual(settings, data["A"], data["B"])
    # The whole test split: the counterfactual is cheap, and TRAK's target subset is no reason to
    # shrink it.
    test = load_split(data["A"]["prepared"], "test")
    if settings["exclude_target_class"]:
        test = test.subset(np.flatnonzero(test.y.numpy() != chosen.target_class))
    models = {}
    for role, paths in (("A", checkpoints_a), ("B", checkpoints_b)):
        loaded = [load_checkpoint(p, device="cpu") for p in paths]
        models[names[role]] = [(c.name, c.model) for c in loaded]
    rows = counterfactual_probabilities(
        models, test.x, chosen.apply, chosen.target_class, device=device
    )
    for row in rows:
        row["role"] = "A" if row["algorithm"] == names["A"] else "B"
    summary = summarise_counterfactual(rows, {names["A"]: "A", names["B"]: "B"})
    for row in (*rows, *summary):
        row["transform"] = chosen.transform
        row["transform_params"] = json.dumps(chosen.params, sort_keys=True)
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(summary_csv) as tmp:
        pd.DataFrame(summary).to_csv(tmp, index=False)
    return summary


def summarise_files(
    output_json: str | Path,
    *,
    comparison: str | Path,
    counterfactual_summary: str | Path,
    lds: str | Path | None = None,
    precision_k: int = 20,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON with what a reader wants first: precision@k of each direction against planted
    images (when an algorithm plants a patch), explained variances, the counterfactual and the
    LDS; ``skipped``: the steps the stage left out, and why (the LDS of the user's own
    checkpoints)."""
    stored = read_comparison(comparison)
    data, names = stored.data, stored.names
    planted = {role: planted_indices(d) for role, d in data.items()}
    directions = []
    for kind, result in stored.results.items():
        for c in range(result.num_components):
            entry = {
                "kind": kind,
                "label": result.label,
                "component": c,
                "explained_variance": {
                    names["A"]: float(result.explained_variance["A"][c]),
                    names["B"]: float(result.explained_variance["B"][c]),
                },
                "residual_variance_ratio": float(result.residual_variance_ratio[c]),
            }
            for role, chosen in planted.items():
                if chosen is not None:
                    direction = result.directions[c]
                    entry[f"precision_at_{precision_k}_planted_in_{names[role]}"] = {
                        "top": precision_at_k(direction, chosen, precision_k),
                        "bottom": precision_at_k(direction, chosen, precision_k, bottom=True),
                    }
            directions.append(entry)
    summary = {
        "algorithms": names,
        # the checkpoints of each side, by id (directions files written before they were recorded
        # have none)
        "checkpoints": {
            names[role]: stored.attrs.get(f"checkpoints_{role}") for role in ("A", "B")
        },
        "n_train": data["A"]["n_train"],
        "n_targets": data["A"]["n_targets"],
        "planted_images": {names[r]: (len(c) if c is not None else 0) for r, c in planted.items()},
        "directions": directions,
        "counterfactual": pd.read_csv(counterfactual_summary).to_dict(orient="records"),
        "lds": read_json(lds) if lds else None,
        "skipped": dict(skipped or {}),
    }
    write_json(output_json, summary)
    return summary


def plot_summary(
    output_png: str | Path, *, comparison: str | Path, counterfactual_csv: str | Path
) -> None:
    """The summary figure (:func:`.plots.save_summary_plot`) from the directions file and the
    counterfactual CSV."""
    stored = read_comparison(comparison)
    save_summary_plot(output_png, stored.results, stored.names, pd.read_csv(counterfactual_csv))


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a few readable lines (the workflow log and the CLI print this)."""
    names = summary["algorithms"]
    lines = [
        f"ModelDiff {names['A']} (A) vs {names['B']} (B): {summary['n_train']} training, "
        f"{summary['n_targets']} test examples"
    ]
    for entry in summary["directions"]:
        ev = entry["explained_variance"]
        text = (
            f"  {entry['kind']} ({entry['label']}) direction {entry['component']}: "
            "explained variance " + ", ".join(f"{k} {v:.3f}" for k, v in ev.items())
        )
        for key, value in entry.items():
            if key.startswith("precision_at_"):
                text += f"; {key} top {value['top']:.2f} bottom {value['bottom']:.2f}"
        lines.append(text)
    for row in summary["counterfactual"]:
        transform = row.get("transform", "patch")
        lines.append(
            f"  counterfactual ({transform}) {row['role']} {row['algorithm']}: "
            f"P(class {row['target_class']}) "
            f"{row['p_target_before']:.3f} -> {row['p_target_after']:.3f} (change "
            f"{row['delta_p_target']:+.3f} ± {row['delta_p_target_std']:.3f} over "
            f"{row['n_checkpoints']} checkpoints)"
        )
    for step, why in (summary.get("skipped") or {}).items():
        lines.append(f"  {step} skipped: {why}")
    lds = summary.get("lds")
    if lds:
        weighting = "" if lds.get("out_to_loss", True) else ", unweighted"
        lines.append(
            f"  LDS of {lds['algorithm']}'s TRAK scores: {lds['lds']:.3f} ± {lds['lds_sem']:.3f} "
            f"(s.e.m. over {lds['num_targets_used']} targets; {lds['num_subsets']} subsets, alpha "
            f"{lds['alpha']}, {lds['num_checkpoints']} checkpoints{weighting})"
        )
        if lds.get("lds_with_out_to_loss") is not None:
            lines.append(
                "  LDS of the same scores with traker's out-to-loss weighting: "
                f"{lds['lds_with_out_to_loss']:.3f}"
            )
    return "\n".join(lines)
