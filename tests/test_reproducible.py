"""Byte-reproducible artifacts: every kind of file modelkin writes, written twice from the same
inputs at the same paths (artifacts record the paths of their inputs), has the same bytes (and so
the same sha256): prepared data, checkpoints, probes, signatures, evaluation JSON, distance tables
and references, similarity tables and heatmaps, stitching results, TRAK features and scores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 1, "batch_size": 32, "train_limit": 100}


def same_bytes(a: Path, b: Path) -> None:
    assert Path(a).read_bytes() == Path(b).read_bytes(), f"{a} and {b} differ"


def run_twice(root: Path, make: Callable[[Path], None]) -> list[Path]:
    """``make(root)`` twice, in the same place: [a copy of the first run's files, root]."""
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    make(root)
    first = root.with_name(root.name + "-first")
    first.mkdir()
    for path in set(root.iterdir()) - before:
        shutil.move(str(path), first / path.name)
    make(root)
    return [first, root]


@pytest.fixture(scope="module")
def twice(tmp_path_factory, digits_file):
    """Two directories holding the same artifacts, each made from scratch in the same place."""
    from modelkin.distances import make_probe, make_signature
    from modelkin.train import train_checkpoint

    def make(root: Path) -> None:
        for seed in (0, 1):
            train_checkpoint(
                root / f"m{seed}.safetensors",
                prepared=digits_file,
                arch="mlp",
                algorithm="standard",
                recipe=RECIPE,
                init_seed=seed,
                data_seed=seed,
            )
        make_probe("zest", digits_file, root / "zest_probe.h5", n_images=2, n_samples=20)
        make_probe("gradfield", digits_file, root / "gradfield_probe.h5", n_points=3)
        for seed in (0, 1):
            make_signature(
                "zest",
                root / f"m{seed}.safetensors",
                root / "zest_probe.h5",
                root / f"zest{seed}.h5",
                device="cpu",
            )
        make_signature(
            "gradfield",
            root / "m0.safetensors",
            root / "gradfield_probe.h5",
            root / "gradfield0.h5",
            device="cpu",
            n_steps=4,
        )

    return run_twice(tmp_path_factory.mktemp("twice") / "run", make)


def test_checkpoints_probes_and_signatures(twice):
    a, b = twice
    for name in (
        "m0.safetensors",
        "m1.safetensors",
        "zest_probe.h5",
        "gradfield_probe.h5",
        "zest0.h5",
        "zest1.h5",
        "gradfield0.h5",
    ):
        same_bytes(a / name, b / name)


def test_prepared_data_and_safetensors_headers_across_processes(tmp_path):
    """The safetensors library orders header metadata differently in each process;
    modelkin.io.save_safetensors sorts it."""
    code = (
        "import sys, torch\n"
        "from modelkin.data import prepare_dataset\n"
        "from modelkin.io import save_safetensors\n"
        "prepare_dataset('digits', sys.argv[1] + '/digits.safetensors')\n"
        "save_safetensors({'w': torch.arange(6.0), 'b': torch.ones(2, dtype=torch.int64)},\n"
        "    sys.argv[1] + '/t.safetensors', {k: k * 2 for k in 'abcdefgh'})\n"
    )
    dirs = []
    for i in range(2):
        out = tmp_path / str(i)
        out.mkdir()
        subprocess.run([sys.executable, "-c", code, str(out)], check=True)
        dirs.append(out)
    for name in ("digits.safetensors", "t.safetensors"):
        same_bytes(dirs[0] / name, dirs[1] / name)
    from safetensors.torch import load_file

    assert load_file(str(dirs[0] / "t.safetensors"))["w"].tolist() == [0, 1, 2, 3, 4, 5]


def test_evaluation_tables_and_plots(twice, digits_file, tmp_path):
    from modelkin.checkpoint import load_checkpoint
    from modelkin.data import load_split
    from modelkin.distances import InsufficientReferenceWarning
    from modelkin.distances.tables import distance_stage
    from modelkin.evaluate import evaluate_model
    from modelkin.io import write_json
    from modelkin.similarity.pairs import run_similarity_pair
    from modelkin.zoo import zoo_table

    test = load_split(digits_file, "test")
    root = twice[1]

    def make(out: Path) -> None:
        evaluations = []
        for seed in (0, 1):
            metrics = evaluate_model(
                load_checkpoint(root / f"m{seed}.safetensors").model, test, steps=2, device="cpu"
            )
            evaluations.append(out / f"eval{seed}.json")
            write_json(
                evaluations[-1], {**metrics, "model": f"digits/mlp/standard/i{seed}-d{seed}"}
            )
        zoo_table(evaluations, out / "zoo.csv")
        with pytest.warns(InsufficientReferenceWarning):  # 2 families: no verdicts, by design
            distance_stage(
                "zest",
                ["digits/mlp/standard/i0-d0", "digits/mlp/standard/i1-d1"],
                [root / "zest0.h5", root / "zest1.h5"],
                out / "zest.csv",
                out / "zest_reference.json",
                on_insufficient_reference="warn",
            )
        job = {
            "model_a": "a",
            "model_b": "b",
            "layers_a": "relu",
            "layers_b": "relu",
            "measures": ["cka", "procrustes"],
            "measure_params": {},
            "images": 20,
            "split": "test",
            "conv_mode": "flatten",
            "max_spatial_samples": None,
            "seed": 0,
            "degenerate": "nan",
            "batch_size": 64,
            "device": "cpu",
        }
        run_similarity_pair(
            job,
            root / "m0.safetensors",
            root / "m1.safetensors",
            digits_file,
            out / "pair.csv",
            out / "pair.png",
        )

    a, b = run_twice(tmp_path / "tables", make)
    for name in (
        "eval0.json",
        "eval1.json",
        "zoo.csv",
        "zest.csv",
        "zest_reference.json",
        "pair.csv",
        "pair.png",
    ):
        same_bytes(a / name, b / name)


def test_stitching_results(twice, digits_file, tmp_path):
    from modelkin.stitching.run import stitch_models

    options = {
        "epochs": 1,
        "batch_size": 32,
        "train_limit": 64,
        "measure_images": 8,
        "robust_eval": False,
        "measures": ["cka"],
    }
    models = twice[1]

    def make(out: Path) -> None:
        stitch_models(
            models / "m0.safetensors",
            models / "m1.safetensors",
            "relu1",
            "relu1",
            output=out / "stitch.json",
            data=[digits_file],
            options=options,
            device="cpu",
        )

    a, b = run_twice(tmp_path / "stitching", make)
    same_bytes(a / "stitch.json", b / "stitch.json")
    same_bytes(a / "stitch.safetensors", b / "stitch.safetensors")


def test_trak_features_and_scores(twice, digits_file, tmp_path):
    from modelkin.attribution.jobs import featurize_checkpoint_file, score_feature_files

    models = twice[1]

    def make(out: Path) -> None:
        features = []
        for index, seed in enumerate((0, 1)):
            features.append(
                featurize_checkpoint_file(
                    out / f"features{seed}.h5",
                    checkpoint=models / f"m{seed}.safetensors",
                    prepared=digits_file,
                    settings={"proj_dim": 16},
                    checkpoint_index=index,
                    n_targets=6,
                    device="cpu",
                )
            )
        score_feature_files(out / "scores.h5", features, algorithm="standard")

    a, b = run_twice(tmp_path / "trak", make)
    for name in ("features0.h5", "features1.h5", "scores.h5"):
        same_bytes(a / name, b / name)
