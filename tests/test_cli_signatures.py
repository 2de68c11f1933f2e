"""modelkin probe / signature / distance / compare on tiny checkpoints, and their Python forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelkin.cli import main
from modelkin.distances import signature_distances
from modelkin.signatures import read_probe, read_signature
from modelkin.train import train_checkpoint

ZEST_SMALL = ["--set", "n_images=4", "--set", "n_samples=40"]
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 1, "batch_size": 32, "train_limit": 200}
SETTING = "digits:mlp/standard~mlp/standard"


@pytest.fixture(scope="module")
def models(digits_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    paths = []
    for seed in range(6):
        path = root / f"mlp{seed}.safetensors"
        train_checkpoint(
            path,
            prepared=digits_file,
            arch="mlp",
            algorithm="standard",
            recipe=RECIPE,
            init_seed=seed,
            data_seed=seed,
            extra_meta={"name": f"digits/mlp/standard/i{seed}-d{seed}"},
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


@pytest.fixture(scope="module")
def reference(models, zest_files, tmp_path_factory):
    """The distance stage's reference of the six independent MLPs (zest, small probe)."""
    from modelkin.distances.tables import distance_stage

    probe, _ = zest_files
    root = tmp_path_factory.mktemp("cli-reference")
    ids, signatures = [], []
    for seed, model in enumerate(models):
        out = root / f"s{seed}.h5"
        assert main(["signature", str(model), "--method", "zest", "--probe", str(probe),
                     "-o", str(out), "--device", "cpu"]) == 0  # fmt: skip
        ids.append(f"digits/mlp/standard/i{seed}-d{seed}")
        signatures.append(out)
    calibration = {"min_families": 4, "min_partners": 2}
    distance_stage("zest", ids, signatures, root / "zest.csv", root / "zest_reference.json",
                   calibration=calibration)  # fmt: skip
    return root / "zest_reference.json"


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
    _, (a, b, *_) = zest_files
    assert main(["distance", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    for metric in ("cos", "l1", "l2", "linf"):
        assert f"  {metric} " in out
    assert main(["distance", str(a), str(b), "--metric", "cos", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["distances"]) == ["cos"]
    assert payload["distances"]["cos"] == pytest.approx(signature_distances(a, b)["cos"])
    assert payload["distances"]["cos"] > 0


def test_distance_gives_a_calibrated_verdict_against_a_reference(zest_files, reference, capsys):
    _, (a, b, *_) = zest_files
    assert main(["distance", str(a), str(b), "--reference", str(reference), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["setting"] == SETTING
    cos = payload["verdicts"]["cos"]
    assert cos["verdict"] == "unrelated" and 0.01 < cos["p_value"] <= 1  # two independent seeds
    assert cos["reference_families"] == 6 and cos["alpha"] == 0.01
    # the error rate measured on the reference: each pair of its 6 independent models judged once,
    # held out of it, like this pair
    assert payload["held_out"]["pool"] == "both" and payload["held_out"]["judged"] == 15
    assert main(["distance", str(a), str(b), "--reference", str(reference)]) == 0
    text = capsys.readouterr().out
    assert f"against the unrelated pairs of setting {SETTING}" in text and "p = " in text
    assert "error rate of this verdict, measured:" in text and "of 15 pairs" in text


def test_a_verdict_states_the_error_rate_measured_on_held_out_models():
    from modelkin.distances.calibration import Judgement
    from modelkin.distances.new_models import HeldOutCheck
    from modelkin.distances.reference import ReferenceDistance, Verdict
    from modelkin.distances.verdicts import describe_verdicts

    reference = ReferenceDistance("cos", SETTING, 0.2, 0.05, 66, 12, 5)
    judgement = Judgement(-3.0, -1.6, -4.0, 0.002, "related", 66, 12, 54.0)
    verdict = Verdict.of("cos", 0.05, reference, judgement, alpha=0.01, model="ranked")
    lines = describe_verdicts(SETTING, {"cos": verdict}, "cos", HeldOutCheck("both", 3, 250))
    assert lines[-2] == "verdict (cos): related (p = 0.002, alpha 0.01)"
    assert lines[-1].startswith("error rate of this verdict, measured: 1.2% of 250 pairs")
    unmeasured = describe_verdicts(SETTING, {"cos": verdict}, "cos", HeldOutCheck("both", 0, 0))
    assert unmeasured[-1].startswith("error rate of this verdict: not measured")


def test_distance_refuses_signatures_from_different_probes(
    zest_files, models, digits_file, tmp_path, capsys
):
    _, (a, *_) = zest_files
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
    for model, path in zip(models[:2], out, strict=True):
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


def test_compare_against_a_reference_reuses_signatures_and_finds_a_copy(
    models, reference, digits_file, tmp_path, capsys
):
    from modelkin.derive.run import derive_checkpoint

    copy = tmp_path / "copy.safetensors"
    derive_checkpoint(copy, parent=models[0], prepared=digits_file, device="cpu",
                      settings={"kind": "finetune", "lr_factor": 0.01, "recipe": {"epochs": 1}},
                      model_id="derived/digits/finetune/digits/mlp/standard/i0-d0/s0",
                      parent_id="digits/mlp/standard/i0-d0")  # fmt: skip
    args = ["compare", str(models[0]), str(copy), "--reference", str(reference), "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    # the reference's own probe by default; model 0's signature reused, the copy's computed
    assert payload["probe_sha256"] == json.loads(reference.read_text())["probe_sha256"]["digits"]
    assert len(payload["reused_signatures"]) == 1
    assert payload["verdict"] == "related" and payload["verdicts"]["cos"]["p_value"] < 0.01
    assert payload["setting"] == SETTING  # the copy counts with its parent's algorithm


def test_compare_refuses_another_probe_before_computing(
    models, reference, digits_file, tmp_path, capsys
):
    other = tmp_path / "other_probe.h5"
    main(["probe", "--method", "zest", "--data", str(digits_file), "-o", str(other),
          "--set", "n_images=3", "--set", "n_samples=40"])  # fmt: skip
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(models[0]),
                str(models[1]),
                "--probe",
                str(other),
                "--reference",
                str(reference),
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "is not the probe the reference" in err and "leave out --probe" in err
    assert not list(tmp_path.glob("*.h5.*"))


def test_weights_need_no_probe_on_the_command_line(models, tmp_path, capsys):
    """A method that reads no probe (weights): signature and compare without --probe, and the
    distances are those of the flattened parameters."""
    from safetensors.torch import load_file

    outputs = []
    for i in (0, 1):
        out = tmp_path / f"w{i}.h5"
        assert main(["signature", str(models[i]), "--method", "weights", "-o", str(out)]) == 0
        outputs.append(out)
    capsys.readouterr()
    assert main(["compare", str(models[0]), str(models[1]), "--method", "weights", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    flat = [
        np.concatenate([t.numpy().ravel() for _, t in sorted(load_file(m).items())])
        for m in models[:2]
    ]
    assert payload["distances"]["l2"] == pytest.approx(
        float(np.linalg.norm(flat[0] - flat[1])), rel=1e-5
    )
    assert main(["distance", str(outputs[0]), str(outputs[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distances"]["l2"] == pytest.approx(
        payload["distances"]["l2"], rel=1e-9
    )
