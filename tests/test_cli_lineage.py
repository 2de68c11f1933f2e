"""modelkin lineage on a folder of tiny checkpoints: families and trees from calibrated verdicts
against the distance stage's references (zest and weights), and its errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from modelkin.cli import main
from modelkin.distances.reference import InsufficientReferenceWarning
from modelkin.train import train_checkpoint

ZEST_SMALL = ["--set", "n_images=4", "--set", "n_samples=40"]
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 1, "batch_size": 32, "train_limit": 200}
CALIBRATION = {"min_families": 4, "min_partners": 2}


def _train(path, digits_file, seed):
    train_checkpoint(path, prepared=digits_file, arch="mlp", algorithm="standard", recipe=RECIPE,
                     init_seed=seed, data_seed=seed,
                     extra_meta={"name": f"digits/mlp/standard/i{seed}-d{seed}"})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def references(digits_file, tmp_path_factory):
    """The distance stage's zest and weights references of six independent MLPs (seeds 0-5),
    and a weights reference that asks for more families than it has (insufficient)."""
    from modelkin.distances.tables import distance_stage

    root = tmp_path_factory.mktemp("lineage-reference")
    probe = root / "zest_probe.h5"
    assert main(["probe", "--method", "zest", "--data", str(digits_file), "-o", str(probe),
                 *ZEST_SMALL]) == 0  # fmt: skip
    ids, zest, weights = [], [], []
    for seed in range(6):
        model = _train(root / f"ref{seed}.safetensors", digits_file, seed)
        ids.append(f"digits/mlp/standard/i{seed}-d{seed}")
        for method, probe_arg, out in (("zest", str(probe), zest), ("weights", "none", weights)):
            sig = root / f"{method}{seed}.h5"
            assert main(["signature", str(model), "--method", method, "--probe", probe_arg,
                         "-o", str(sig), "--device", "cpu"]) == 0  # fmt: skip
            out.append(sig)
    made = {}
    for method, signatures in (("zest", zest), ("weights", weights)):
        made[method] = root / f"{method}_reference.json"
        distance_stage(method, ids, signatures, root / f"{method}.csv", made[method],
                       calibration=CALIBRATION)  # fmt: skip
    made["insufficient"] = root / "insufficient" / "weights_reference.json"
    with pytest.warns(InsufficientReferenceWarning):
        distance_stage("weights", ids, weights, root / "insufficient" / "weights.csv",
                       made["insufficient"],
                       calibration={**CALIBRATION, "min_families": 7})  # fmt: skip
    return made


@pytest.fixture(scope="module")
def folder(digits_file, tmp_path_factory):
    """A user's folder: three new independent MLPs (seeds 6-8) and a fine-tuned copy of the
    first."""
    from modelkin.derive.run import derive_checkpoint

    root = tmp_path_factory.mktemp("lineage-folder")
    models = [_train(root / f"mlp{s}.safetensors", digits_file, s) for s in (6, 7, 8)]
    copy = root / "copy.safetensors"
    derive_checkpoint(copy, parent=models[0], prepared=digits_file, device="cpu",
                      settings={"kind": "finetune", "lr_factor": 0.01, "recipe": {"epochs": 1}},
                      model_id="derived/digits/finetune/digits/mlp/standard/i6-d6/s0",
                      parent_id="digits/mlp/standard/i6-d6")  # fmt: skip
    return [*models, copy]


def _run(capsys, *args):
    code = main(["lineage", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lineage_finds_the_copy_and_keeps_independent_models_apart(
    folder, references, tmp_path, capsys
):
    refs = ["--reference", references["zest"], "--reference", references["weights"]]
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, *folder, *refs, "--device", "cpu", "--json", "-o", out_dir)
    assert code == 0, err
    payload = json.loads(out)
    family = {row["model"]: row["family"] for row in payload["families"]}
    assert family["copy.safetensors"] == family["mlp6.safetensors"]
    others = {family[m] for m in ("mlp6.safetensors", "mlp7.safetensors", "mlp8.safetensors")}
    assert len(others) == 3  # the independent models are apart
    assert len(payload["edges"]) == 1
    edge = payload["edges"][0]
    assert {edge["model_a"], edge["model_b"]} == {"copy.safetensors", "mlp6.safetensors"}
    assert edge["in_tree"] and edge["p_value"] < 0.0001 and edge["n_methods"] == 2
    assert set(payload["references"]) == {"zest", "weights"} and payload["alpha"] == 0.0001
    # the copy records its parent, so the run is scored against that lineage
    scores = {(r["scope"], r["metric"]): r["value"] for r in payload["scores"]}
    assert scores[("all", "ari")] == pytest.approx(1.0)
    assert scores[("all", "false_edges")] == 0
    # -o: the two tables and the figure, nothing else
    assert sorted(p.name for p in out_dir.iterdir()) == ["edges.csv", "families.csv", "trees.png"]
    edges = pd.read_csv(out_dir / "edges.csv")
    assert len(edges) == 1 and "zest_p_value" in edges and "weights_normalised" in edges
    families = pd.read_csv(out_dir / "families.csv")
    assert families.set_index("model").loc["copy.safetensors", "true_parent"] == "mlp6.safetensors"


def test_lineage_prints_families_and_tree_edges(folder, references, capsys):
    code, out, err = _run(capsys, *folder, "--reference", references["zest"], "--device", "cpu")
    assert code == 0, err
    assert "families:" in out and "(2 models): copy.safetensors, mlp6.safetensors" in out
    assert "mlp7.safetensors: no relatives" in out
    assert "tree edges:" in out and ("->" in out or " -- " in out)
    assert "against the lineage the checkpoints record:" in out


def test_lineage_without_recorded_parents_has_no_scores(folder, references, capsys):
    code, out, err = _run(capsys, *folder[1:3], "--reference", references["weights"], "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert "scores" not in payload and payload["edges"] == []
    assert "true_family" not in payload["families"][0]


def test_lineage_errors(folder, references, tmp_path, capsys):
    out_dir = tmp_path / "out"
    ref = ["--reference", references["weights"], "-o", out_dir]

    code, _, err = _run(capsys, folder[0], *ref)
    assert code == 1 and "at least 2 checkpoints, got 1" in err.strip().splitlines()[-1]

    junk = tmp_path / "notes.safetensors"
    junk.write_text("not a checkpoint")
    code, _, err = _run(capsys, folder[0], junk, *ref)
    assert code == 1 and "is not a readable safetensors checkpoint" in err

    not_ref = tmp_path / "zest_reference.json"
    not_ref.write_text(json.dumps({"method": "zest"}))
    code, _, err = _run(capsys, *folder[:2], "--reference", not_ref, "-o", out_dir)
    assert code == 1 and "is not a modelkin reference file" in err

    document = json.loads(references["weights"].read_text())
    document["references"] = {
        k.replace("digits:", "mnist:"): v for k, v in document["references"].items()
    }
    other = tmp_path / "mnist" / "weights_reference.json"
    other.parent.mkdir()
    other.write_text(json.dumps(document))
    code, _, err = _run(capsys, *folder[:2], "--reference", references["zest"],
                        "--reference", other, "-o", out_dir)  # fmt: skip
    assert code == 1 and "the references are of different data sets" in err

    code, _, err = _run(capsys, *folder[:2], "--reference", other, "-o", out_dir)
    assert code == 1 and "hold no settings of digits" in err

    insufficient = ["--reference", references["insufficient"], "-o", out_dir]
    code, _, err = _run(capsys, *folder, *insufficient)
    assert code == 1 and "--allow-insufficient-reference" in err
    assert not out_dir.exists()  # nothing written by a refused run

    code, _, err = _run(capsys, *folder, *insufficient, "--allow-insufficient-reference")
    assert code == 1 and "no pair of the checkpoints could be judged" in err
    assert not out_dir.exists()
