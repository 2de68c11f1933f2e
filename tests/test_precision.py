"""The ``precision`` setting (issue 13) of Zest, ModelGiF and TRAK: fp32 unchanged, bf16 close,
tf32 refused on a CPU, the precision recorded and signatures of different precisions kept apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelkin.attribution import TrakSettings, featurize
from modelkin.checkpoint import save_checkpoint
from modelkin.config import validate_config
from modelkin.data import load_split
from modelkin.models import seeded_model
from modelkin.precision import PrecisionError, check_precision, compute_precision
from modelkin.signatures import SignatureMismatch, check_comparable, read_signature
from modelkin.signatures.compute import signature_file
from modelkin.signatures.gradfield.distance import field_cos
from modelkin.signatures.gradfield.extract import GradientField
from modelkin.signatures.zest.distance import zest_cos
from modelkin.signatures.zest.extract import ZestExtractor, make_zest_probe, zest_probe_file

CPU = torch.device("cpu")


def test_precision_choices_and_their_errors():
    for section in ("zest", "gradfield"):
        assert validate_config({})[section]["precision"] == "fp32"
    assert validate_config({})["modeldiff"]["trak"]["precision"] == "fp32"
    assert check_precision("bf16", CPU) == "bf16"
    with pytest.raises(PrecisionError, match="tf32 needs a CUDA device"):
        check_precision("tf32", CPU)
    with pytest.raises(PrecisionError, match="unknown precision 'fp16'"):
        check_precision("fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        TrakSettings(precision="half")
    model = torch.nn.Linear(4, 3)
    with compute_precision("bf16", CPU):
        assert model(torch.ones(2, 4)).dtype == torch.bfloat16
    assert model(torch.ones(2, 4)).dtype == torch.float32


@pytest.fixture(scope="module")
def lenet():
    return seeded_model("lenet", "digits", 0).eval()


def test_zest_bf16_is_close_to_fp32_and_fp32_is_unchanged(digits_file, lenet):
    split = load_split(digits_file, "train", limit=6)
    probe = make_zest_probe(split, n_images=6, n_samples=200, kernel_size=3)
    fp32 = ZestExtractor(device="cpu").signature(lenet, probe)
    np.testing.assert_array_equal(ZestExtractor(device="cpu", precision="fp32").signature(
        lenet, probe), fp32)  # fmt: skip
    bf16 = ZestExtractor(device="cpu", precision="bf16").signature(lenet, probe)
    assert not np.array_equal(bf16, fp32)
    assert zest_cos(fp32, bf16) < 0.02


def test_gradient_field_bf16_is_close_to_fp32(digits_file, lenet):
    points = load_split(digits_file, "train", limit=4).x
    targets = lenet(points).argmax(1)
    fp32 = GradientField(10, device="cpu").signature(lenet, points, targets)
    bf16 = GradientField(10, device="cpu", precision="bf16").signature(lenet, points, targets)
    cos = (fp32 * bf16).sum(-1) / np.linalg.norm(fp32, axis=-1) / np.linalg.norm(bf16, axis=-1)
    # bf16 keeps ~3 digits: the first steps, near the baseline, differ most; the integrated
    # gradients (the last step) and the mean distance over steps stay close
    assert cos[:, -1].min() > 0.95
    assert field_cos(fp32, bf16) < 0.1


def test_signatures_record_their_precision_and_are_not_compared_across_it(
    digits_file, lenet, tmp_path
):
    meta = {"name": "digits/lenet/standard/i0-d0", "arch": "lenet", "dataset": "digits",
            "num_classes": 10}  # fmt: skip
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", lenet, meta)
    probe = zest_probe_file(
        digits_file, tmp_path / "probe.h5", split="train", n_images=3, n_samples=50,
        kernel_size=3, ratio=0.2, max_dist=200, seed=0,
    )  # fmt: skip
    paths = {
        p: signature_file(
            "zest", checkpoint, probe, tmp_path / f"{p}.h5", device="cpu", precision=p
        )  # fmt: skip
        for p in ("fp32", "bf16")
    }
    a, b = read_signature(paths["fp32"]), read_signature(paths["bf16"])
    assert a.params["precision"] == "fp32" and b.params["precision"] == "bf16"
    with pytest.raises(SignatureMismatch, match="precision"):
        check_comparable(a, b)
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        signature_file("zest", checkpoint, probe, tmp_path / "x.h5", device="cpu", precision="tf32")


def test_trak_bf16_features_track_fp32(digits_file):
    train = load_split(digits_file, "train", limit=128)
    targets = load_split(digits_file, "test", limit=16)
    model = seeded_model("lenet", "digits", 0).eval()
    runs = {
        p: featurize(model, train, targets, TrakSettings(proj_dim=64, precision=p), device="cpu")
        for p in ("fp32", "bf16")
    }
    a, b = runs["fp32"].target_grads.numpy(), runs["bf16"].target_grads.numpy()
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.97
    assert TrakSettings(precision="bf16").feature_params()["precision"] == "bf16"


def test_trak_bf16_runs_on_batch_norm_models_and_fp32_does_not_touch_the_norms(
    digits_file, monkeypatch
):
    """Per-example gradients through BatchNorm under bf16 autocast failed inside vmap(grad)
    ("expected scalar type BFloat16 but found Float"); the norms now run in float32."""
    from modelkin.attribution import gradients

    train = load_split(digits_file, "train", limit=128)
    targets = load_split(digits_file, "test", limit=32)
    model = seeded_model("tiny10", "digits", 0).eval()
    bf16 = featurize(
        model, train, targets, TrakSettings(proj_dim=64, precision="bf16"), device="cpu"
    )
    # fp32 never enters the float32-norm mode, so its features are exactly those from before it
    monkeypatch.setattr(gradients._NormsInFloat32, "__torch_function__", None)
    fp32 = featurize(model, train, targets, TrakSettings(proj_dim=64), device="cpu")
    a, b = fp32.target_grads.numpy(), bf16.target_grads.numpy()
    assert not np.array_equal(a, b)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # measured: min 0.9988 (tiny10 and resnet20_w1, seeds 0-2, 32 targets); 0.995 leaves 4x margin
    assert cos.min() > 0.995


@pytest.mark.parametrize(
    "norm",
    [
        lambda: torch.nn.LayerNorm([4, 8, 8]),
        lambda: torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
    ],
    ids=["layer_norm", "instance_norm"],
)
def test_trak_bf16_runs_through_layer_and_instance_norm(norm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), norm(), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(256, 3),
    )  # fmt: skip
    x, y = torch.rand(24, 1, 8, 8), torch.randint(0, 3, (24,))
    runs = {
        p: featurize(model, (x, y), (x[:8], y[:8]), TrakSettings(proj_dim=16, precision=p),
                     device="cpu").target_grads.numpy()
        for p in ("fp32", "bf16")
    }  # fmt: skip
    a, b = runs["fp32"], runs["bf16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
