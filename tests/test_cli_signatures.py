"""modelkin probe / signature / distance / compare on tiny checkpoints, and their Python forms."""

from __future__ import annotations

import json

import pytest

from modelkin.cli import main
from modelkin.distances import ReferenceDistance, compare_checkpoints, signature_distances
from modelkin.io import write_json
from modelkin.signatures import read_probe, read_signature
from modelkin.train import train_checkpoint

ZEST_SMALL = ["--set", "n_images=4", "--set", "n_samples=40"]
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 1, "batch_size": 32, "train_limit": 200}
SETTING = "digits:mlp/standard~mlp/standard"


@pytest.fixture(scope="module")
def models(digits_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    paths = []
    for seed in (0, 1):
        path = root / f"mlp{seed}.safetensors"
        train_checkpoint(
            path,
            prepared=digits_file,
            arch="mlp",
            algorithm="standard",
            recipe=RECIPE,
            init_seed=seed,
            data_seed=seed,
        )
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def zest_files(models, digits_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-zest")
    probe = root / "probe.h5"
    assert (
        main(
            ["probe", "--method", "zest", "--data", str(digits_file), "-o", str(probe), *ZEST_SMALL]
        )
        == 0
    )
    signatures = []
    for i, model in enumerate(models):
        out = root / f"sig{i}.h5"
        assert (
            main(
                [
                    "signature",
                    str(model),
                    "--method",
                    "zest",
                    "--probe",
                    str(probe),
                    "-o",
                    str(out),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        signatures.append(out)
    return probe, signatures


def reference_file(path, mean=0.5, probe_sha256=None):
    refs = {
        m: ReferenceDistance(m, SETTING, mean, 0.1, 6, 5).to_dict()
        for m in ("cos", "l1", "l2", "linf")
    }
    write_json(
        path,
        {
            "kind": "modelkin-reference-distances",
            "method": "zest",
            "threshold": 1.0,
            "probe_sha256": {"digits": probe_sha256} if probe_sha256 else {},
            "references": {SETTING: refs},
        },
    )
    return path


def test_probe_and_signature_commands(zest_files):
    probe, signatures = zest_files
    stored = read_probe(probe)
    assert (
        stored.kind == "zest"
        and stored.params["n_images"] == 4
        and stored.params["n_samples"] == 40
    )
    sig = read_signature(signatures[0])
    assert sig.method == "zest" and sig.data.shape[1] == 10 and sig.probe_sha256 == stored.sha256


def test_distance_prints_every_metric_by_default(zest_files, capsys):
    _, (a, b) = zest_files
    assert main(["distance", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    for metric in ("cos", "l1", "l2", "linf"):
        assert f"  {metric} " in out
    assert main(["distance", str(a), str(b), "--metric", "cos", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["distances"]) == ["cos"]
    assert payload["distances"]["cos"] == pytest.approx(signature_distances(a, b)["cos"])
    assert payload["distances"]["cos"] > 0


def test_distance_normalises_against_a_reference(zest_files, tmp_path, capsys):
    _, (a, b) = zest_files
    reference = reference_file(tmp_path / "ref.json", mean=1e6)
    assert main(["distance", str(a), str(b), "--reference", str(reference), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["setting"] == SETTING
    assert payload["normalised"]["cos"]["verdict"] == "related"
    assert payload["normalised"]["cos"]["normalised"] == pytest.approx(
        payload["distances"]["cos"] / 1e6
    )


def test_distance_refuses_signatures_from_different_probes(
    zest_files, models, digits_file, tmp_path, capsys
):
    _, (a, _) = zest_files
    other_probe = tmp_path / "other.h5"
    main(
        [
            "probe",
            "--method",
            "zest",
            "--data",
            str(digits_file),
            "-o",
            str(other_probe),
            "--set",
            "n_images=3",
            "--set",
            "n_samples=40",
        ]
    )
    other = tmp_path / "other_sig.h5"
    main(
        [
            "signature",
            str(models[1]),
            "--method",
            "zest",
            "--probe",
            str(other_probe),
            "-o",
            str(other),
            "--device",
            "cpu",
        ]
    )
    capsys.readouterr()
    assert main(["distance", str(a), str(other)]) == 1
    assert "different probes" in capsys.readouterr().err


def test_gradfield_signature_with_an_automatic_probe(models, digits_file, tmp_path, capsys):
    out = [tmp_path / f"g{i}.h5" for i in range(2)]
    for model, path in zip(models, out, strict=True):
        assert (
            main(
                [
                    "signature",
                    str(model),
                    "--method",
                    "gradfield",
                    "--probe",
                    "auto",
                    "--data",
                    str(digits_file),
                    "-o",
                    str(path),
                    "--set",
                    "n_steps=6",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    sig = read_signature(out[0])
    assert sig.data.shape == (128, 6, 32 * 32)
    assert main(["distance", str(out[0]), str(out[1])]) == 0
    text = capsys.readouterr().out
    assert "cos_max_step" in text and "zscore" in text
    assert (
        main(
            [
                "signature",
                str(models[0]),
                "--method",
                "gradfield",
                "--probe",
                "auto",
                "-o",
                str(out[0]),
            ]
        )
        == 1
    )
    assert "--probe auto needs --data" in capsys.readouterr().err


def test_compare_same_and_different_models(models, digits_file, tmp_path, capsys):
    assert (
        main(
            [
                "compare",
                str(models[0]),
                str(models[0]),
                "--method",
                "zest",
                "--data",
                str(digits_file),
                *ZEST_SMALL,
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    same = json.loads(capsys.readouterr().out)
    assert same["distances"]["cos"] == pytest.approx(0.0, abs=1e-6) and same["verdict"] is None
    reference = reference_file(tmp_path / "ref.json", mean=0.05)
    assert (
        main(
            [
                "compare",
                str(models[0]),
                str(models[1]),
                "--data",
                str(digits_file),
                *ZEST_SMALL,
                "--reference",
                str(reference),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"against the reference of setting {SETTING}" in text and "verdict (cos):" in text


def test_compare_refuses_a_reference_made_on_another_probe(models, digits_file, tmp_path, capsys):
    reference = reference_file(tmp_path / "ref.json", probe_sha256="0" * 64)
    assert (
        main(
            [
                "compare",
                str(models[0]),
                str(models[1]),
                "--data",
                str(digits_file),
                *ZEST_SMALL,
                "--reference",
                str(reference),
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    assert "different probe" in capsys.readouterr().err


def test_compare_checkpoints_python_api_with_a_csv_reference(
    models, digits_file, zest_files, tmp_path
):
    import pandas as pd

    probe, _ = zest_files
    rows = [
        {
            "model_a": f"m{i}",
            "model_b": f"n{i}",
            "setting": SETTING,
            "reference_pair": True,
            "cos": value,
            "l1": 1.0,
            "l2": 1.0,
            "linf": 1.0,
        }
        for i, value in enumerate([0.4, 0.5, 0.6, 0.5, 0.5])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "zest.csv", index=False)
    comparison = compare_checkpoints(
        models[0],
        models[1],
        method="zest",
        probe=probe,
        reference=tmp_path / "zest.csv",
        device="cpu",
        workdir=tmp_path / "work",
    )
    cos = comparison.normalised["cos"]
    assert cos.reference_mean == pytest.approx(0.5) and cos.reference_n == 5
    assert cos.normalised == pytest.approx(comparison.distances["cos"] / 0.5)
    assert comparison.verdict == ("related" if cos.normalised < 1 else "unrelated")
    assert (tmp_path / "work" / "zest_a.h5").exists()
    with pytest.raises(ValueError, match="no reference for setting"):
        compare_checkpoints(
            models[0],
            models[1],
            method="zest",
            probe=probe,
            reference=tmp_path / "zest.csv",
            setting="digits:lenet/standard~lenet/standard",
            device="cpu",
        )
