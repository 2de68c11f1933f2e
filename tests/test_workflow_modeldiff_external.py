"""ModelDiff of the user's own checkpoints (modeldiff.models_a, models_b) through Snakemake.

The test writes two sets of lenet checkpoints on digits, as a user's training code would: set A
trained plainly, saved without modelkin's training recipe (a checkpoint from elsewhere: its
training data is the whole train split); set B trained with a white patch planted on half of
class 3's training images, imported with its recorded recipe (``source: checkpoint``), which says
which images carried the patch. The workflow imports them, featurises, scores, compares, surfaces,
applies the counterfactual (the same patch, given in the config) and summarises; the LDS, which
needs retraining, is skipped with a note. Of the known answer of the ModelDiff acceptance test,
the patch raises P(class 3) for B's models, not A's. (That B-minus-A's top direction surfaces the
patched images needs 6 checkpoints per side trained for 8 epochs, too slow here; the test checks
instead that swapping the sides swaps the directions.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import run_snakemake
from modelkin.io import read_json

pytestmark = pytest.mark.workflow

PATCH = {"target_class": 3, "size": 12, "color": [1.0], "position": [0, 0]}
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 2, "batch_size": 32}
SIDES = {"A": ["clean0", "clean1"], "B": ["patched0", "patched1"]}
COMPARISON = "results/modeldiff/digits/external/models_a-vs-models_b"


def write_checkpoints(folder: Path) -> dict[str, Path]:
    """Two plain and two patch-trained lenet checkpoints on digits."""
    import torch

    from modelkin.checkpoint import load_checkpoint, save_checkpoint
    from modelkin.data import prepare_dataset
    from modelkin.train import train_checkpoint

    torch.set_num_threads(2)
    prepared = prepare_dataset("digits", folder / "digits.safetensors")
    paths = {}
    for role, names in SIDES.items():
        planted = {**PATCH, "fraction": 0.5, "seed": 0} if role == "B" else None
        for seed, name in enumerate(names):
            path = folder / f"{name}.safetensors"
            train_checkpoint(
                path,
                prepared=prepared,
                recipe={**RECIPE, "planted_patch": planted},
                arch="lenet",
                algorithm="yours",
                init_seed=seed,
                data_seed=seed,
                device="cpu",
            )
            if role == "A":  # as if trained elsewhere: no recipe recorded
                checkpoint = load_checkpoint(path)
                meta = {k: v for k, v in checkpoint.meta.items() if k != "recipe"}
                save_checkpoint(path, checkpoint.model, meta)
            paths[name] = path
    return paths


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("modeldiff-external")
    weights = write_checkpoints(root / "weights")
    config = {
        "results": "results",
        "device": "cpu",
        # only ModelDiff: no zoo, no distances, no other stage
        "zoo": {"datasets": []},
        "distances": {"methods": []},
        "lineage": {"enabled": False},
        "concordance": {"enabled": False},
        "unlearning": {"enabled": False},
        "models": {
            name: {"source": "checkpoint", "weights": str(path), "dataset": "digits"}
            for name, path in weights.items()
        },
        "modeldiff": {
            "dataset": "digits",
            "models_a": SIDES["A"],
            "models_b": [f"external/{n}" for n in SIDES["B"]],
            "trak": {"proj_dim": 128, "n_targets": 100},
            "components": 2,
            "surfacing": {"n_examples": 6},
            "counterfactual": {"patch": PATCH},
        },
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(root, "--cores", "2", "modeldiff")
    return root


def test_outputs_name_the_user_s_checkpoints(workdir):
    out = workdir / COMPARISON
    for name in ("summary.json", "summary.png", "directions.csv", "surfaced.csv"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "grids").iterdir()) == [
        "A_minus_B_0.png",
        "A_minus_B_1.png",
        "B_minus_A_0.png",
        "B_minus_A_1.png",
    ]
    for side, names in (("models_a", SIDES["A"]), ("models_b", SIDES["B"])):
        for name in names:
            assert (workdir / f"results/models/external/{name}.safetensors").exists()
            assert (workdir / f"results/modeldiff/trak-external/digits/{side}/{name}.h5").exists()
    counterfactual = pd.read_csv(out / "counterfactual.csv")
    assert sorted(counterfactual.checkpoint) == sorted(
        f"external/{n}" for names in SIDES.values() for n in names
    )
    # nothing trained for ModelDiff, no LDS
    assert not (workdir / "results/models/digits").exists()
    assert not (workdir / "results/modeldiff/lds").exists()


def test_summary_skips_the_lds_with_a_note_and_finds_the_patch(workdir):
    summary = read_json(workdir / COMPARISON / "summary.json")
    assert summary["algorithms"] == {"A": "models_a", "B": "models_b"}
    assert summary["checkpoints"] == {
        "models_a": [f"external/{n}" for n in SIDES["A"]],
        "models_b": [f"external/{n}" for n in SIDES["B"]],
    }
    assert summary["lds"] is None and "retrains" in summary["skipped"]["lds"]
    # the whole train split for A (no recipe), the same split for B (its recipe has no limit)
    assert summary["planted_images"]["models_a"] == 0
    assert summary["planted_images"]["models_b"] > 0
    # the patch-trained side's images are named in the summary (their precision is no test here:
    # that needs 6 checkpoints per side, tests/test_modeldiff_acceptance.py)
    assert all("precision_at_20_planted_in_models_b" in d for d in summary["directions"])
    # the counterfactual (the patch from the config) raises P(class 3) for B's models, not A's
    effect = {row["role"]: row["delta_p_target"] for row in summary["counterfactual"]}
    assert effect["B"] > effect["A"] + 0.05, effect


def test_swapping_the_sides_swaps_the_directions(workdir, tmp_path):
    """The workflow's score files compared the other way round: A-minus-B becomes B-minus-A."""
    import numpy as np

    from modelkin.modeldiff.stages import compare_score_files, read_comparison

    scores = workdir / "results/modeldiff/scores/digits/external"
    stored = read_comparison(workdir / COMPARISON / "directions.h5")
    assert stored.names == {"A": "models_a", "B": "models_b"}
    swapped = compare_score_files(
        tmp_path / "swapped.h5",
        tmp_path / "swapped.csv",
        scores_a=scores / "models_b.h5",
        scores_b=scores / "models_a.h5",
        num_components=2,
    )
    for kind, other in (("A-minus-B", "B-minus-A"), ("B-minus-A", "A-minus-B")):
        mine, theirs = swapped[kind], stored.results[other]
        assert mine.label == theirs.label
        for c in range(2):
            cosine = np.dot(mine.directions[c], theirs.directions[c]) / (
                np.linalg.norm(mine.directions[c]) * np.linalg.norm(theirs.directions[c])
            )
            assert abs(cosine) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(
            mine.explained_variance["A"], theirs.explained_variance["B"], rtol=1e-6
        )
