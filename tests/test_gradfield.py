"""ModelGiF gradient fields: captum agreement, completeness, the cumulative structure, the distance,
and reference-point selection with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modelkin.checkpoint import load_checkpoint, save_checkpoint
from modelkin.data import load_split
from modelkin.io import file_sha256
from modelkin.models import seeded_model
from modelkin.signatures import (
    Computed,
    SignatureError,
    get_method,
    read_probe,
    read_signature,
    write_signature,
)
from modelkin.signatures.compute import signature_file
from modelkin.signatures.gradfield.distance import field_cos, per_point_field_distance
from modelkin.signatures.gradfield.extract import GradientField, gauss_legendre
from modelkin.signatures.gradfield.probe import (
    gradfield_candidates_file,
    load_gradfield_probe,
    make_gradfield_probe,
)
from modelkin.signatures.gradfield.select import select_reference_points

AXES = get_method("gradfield").axes

DIGITS_MEAN = 0.3053


@pytest.fixture(scope="module")
def digits(digits_file):
    return load_split(digits_file, "train", limit=200)


@pytest.fixture(scope="module")
def lenet():
    return seeded_model("lenet", "digits", 0).eval()


def smooth_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 64), nn.Tanh(), nn.Linear(64, 10)).eval()


def test_gauss_legendre_path():
    alphas, weights = gauss_legendre(50)
    assert np.all(np.diff(alphas) > 0)
    assert alphas[0] == pytest.approx(5.67e-4, rel=1e-2) and alphas[-1] == pytest.approx(
        0.99943, abs=1e-5
    )
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    # Exact for polynomials up to degree 99 on [0, 1].
    assert (weights * alphas**40).sum() == pytest.approx(1 / 41, rel=1e-12)


def test_last_step_equals_captum_integrated_gradients(digits, lenet):
    from captum.attr import IntegratedGradients

    x = digits.x[:6]
    targets = lenet(x).argmax(1)
    field = GradientField(50, "zero", chunk_size=120, device="cpu").signature(lenet, x, targets)
    assert field.shape == (6, 50, 32 * 32) and field.dtype == np.float32
    baseline = torch.full_like(x, DIGITS_MEAN)
    captum = IntegratedGradients(lenet).attribute(
        x, baselines=baseline, target=targets, n_steps=50, method="gausslegendre"
    )
    np.testing.assert_allclose(field[:, -1], captum.reshape(6, -1).numpy(), atol=1e-4, rtol=1e-4)
    assert np.abs(field[:, -1]).max() > 1e-3


def test_pixel_space_equals_normalised_space(digits, lenet):
    """IG in [0, 1] pixels from the mean colour == IG of the
    normalised network from 0 (the reference's view)."""
    from captum.attr import IntegratedGradients

    x = digits.x[6:10]
    targets = torch.tensor([0, 3, 5, 9])
    field = GradientField(50, "zero", device="cpu").signature(lenet, x, targets)
    normalised = (x - lenet.input_mean) / lenet.input_std
    captum = IntegratedGradients(lenet.body).attribute(
        normalised,
        baselines=torch.zeros_like(normalised),
        target=targets,
        n_steps=50,
        method="gausslegendre",
    )
    np.testing.assert_allclose(field[:, -1], captum.reshape(4, -1).numpy(), atol=1e-4, rtol=1e-4)


def test_completeness_on_a_smooth_model(digits):
    model = smooth_net()
    x = digits.x[:8]
    baseline = torch.full((1,), DIGITS_MEAN)
    targets = torch.arange(8) % 10
    field = GradientField(50, baseline, device="cpu").signature(model, x, targets)
    with torch.no_grad():
        gap = (
            (model(x) - model(torch.full_like(x, DIGITS_MEAN)))
            .gather(1, targets[:, None])
            .squeeze(1)
            .numpy()
        )
    assert np.abs(gap).min() > 1e-3
    np.testing.assert_allclose(field[:, -1].sum(axis=1), gap, rtol=1e-4, atol=1e-5)


def test_each_step_adds_the_weighted_gradient_at_its_path_point(digits, lenet):
    x = digits.x[10:13]
    targets = torch.tensor([1, 4, 7])
    alphas, weights = gauss_legendre(50)
    field = GradientField(50, "zero", device="cpu").signature(lenet, x, targets)
    increments = np.diff(field, axis=1, prepend=0.0)
    for point in range(3):
        for step in (0, 17, 49):
            on_path = (
                (DIGITS_MEAN + alphas[step] * (x[point] - DIGITS_MEAN))
                .unsqueeze(0)
                .requires_grad_(True)
            )
            (grad,) = torch.autograd.grad(lenet(on_path)[0, targets[point]], on_path)
            expected = weights[step] * grad[0] * (x[point] - DIGITS_MEAN)
            np.testing.assert_allclose(
                increments[point, step], expected.reshape(-1).numpy(), atol=1e-6, rtol=1e-4
            )


def test_chunk_size_and_baseline_forms_do_not_change_the_field(digits, lenet):
    x = digits.x[:5]
    targets = torch.tensor([2, 2, 0, 1, 9])
    reference = GradientField(20, "zero", chunk_size=1, device="cpu").signature(lenet, x, targets)
    for chunk, baseline in [
        (57, "zero"),
        (10_000, "zero"),
        (64, torch.tensor([DIGITS_MEAN])),
        (64, torch.full((1, 32, 32), DIGITS_MEAN)),
    ]:
        other = GradientField(20, baseline, chunk_size=chunk, device="cpu").signature(
            lenet, x, targets
        )
        np.testing.assert_allclose(other, reference, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="baseline='zero' needs a modelkin model"):
        GradientField(5, "zero", device="cpu").signature(smooth_net(), x, targets)


def test_field_cosine_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 3, 10)).astype(np.float32)
    assert field_cos(a, a) == pytest.approx(0, abs=1e-7)
    assert field_cos(a, 3 * a) == pytest.approx(0, abs=1e-7)
    assert field_cos(a, -a) == pytest.approx(2, abs=1e-7)
    first_half, second_half = a.copy(), a.copy()
    first_half[..., 5:] = 0
    second_half[..., :5] = 0
    assert field_cos(first_half, second_half) == pytest.approx(1, abs=1e-7)
    assert field_cos(np.zeros_like(a), a) == pytest.approx(1)

    b = rng.standard_normal((4, 3, 10)).astype(np.float32)
    independent = 1 - torch.nn.functional.cosine_similarity(
        torch.from_numpy(a), torch.from_numpy(b), dim=2
    )
    np.testing.assert_allclose(
        per_point_field_distance(a, b, chunk_points=3), independent.mean(1).numpy(), atol=1e-6
    )
    assert field_cos(a, b) == pytest.approx(independent.mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        field_cos(a, b[:3])


def test_probe_first_points_optionally_of_some_classes(digits, tmp_path):
    probe = make_gradfield_probe(digits, n_points=12, classes=[3, 7])
    eligible = np.flatnonzero(np.isin(digits.y.numpy(), [3, 7]))
    np.testing.assert_array_equal(probe.indices, eligible[:12])
    assert set(probe.labels) <= {3, 7}
    np.testing.assert_array_equal(probe.points, digits.x[eligible[:12]].numpy())
    np.testing.assert_allclose(probe.baseline, [DIGITS_MEAN])
    with pytest.raises(ValueError, match="images of classes \\[3\\]"):
        make_gradfield_probe(digits, n_points=1000, classes=[3])


def test_signature_file_with_either_target(tmp_path, digits_file, lenet):
    probe_path = gradfield_candidates_file(
        digits_file, tmp_path / "cand.h5", split="train", n_points=6
    )
    meta = {
        "name": "digits/lenet/standard/i0-d0",
        "arch": "lenet",
        "dataset": "digits",
        "num_classes": 10,
    }
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", lenet, meta)
    probe = load_gradfield_probe(probe_path)
    for target, expected_targets in [
        ("argmax", lenet(torch.from_numpy(probe.points)).argmax(1)),
        ("label", probe.labels),
    ]:
        out = signature_file(
            "gradfield",
            checkpoint,
            probe_path,
            tmp_path / f"{target}.h5",
            target=target,
            n_steps=10,
            device="cpu",
            chunk_size=25,
        )
        sig = read_signature(out)
        assert sig.method == "gradfield" and sig.axes == AXES and sig.data.shape == (6, 10, 1024)
        assert sig.params["target"] == target and sig.params["n_steps"] == 10
        np.testing.assert_array_equal(sig.extras["targets"], np.asarray(expected_targets))
        direct = GradientField(10, torch.from_numpy(probe.baseline), device="cpu").signature(
            lenet, torch.from_numpy(probe.points), torch.as_tensor(expected_targets)
        )
        np.testing.assert_allclose(sig.data, direct, atol=1e-6)
        assert sig.extras["logit_gap"].shape == (6,)
    with pytest.raises(ValueError, match="target must be one of argmax, label"):
        signature_file("gradfield", checkpoint, probe_path, tmp_path / "x.h5", target="loss")


# ---------------------------------------------------------------------------------------------
# Reference-point selection


def rotated(a: np.ndarray, degrees: float, rng) -> np.ndarray:
    """Vectors at exactly ``degrees`` from each vector of ``a`` (last axis), with a random norm."""
    unit = a / np.linalg.norm(a, axis=-1, keepdims=True)
    other = rng.standard_normal(a.shape)
    other -= (other * unit).sum(-1, keepdims=True) * unit
    other /= np.linalg.norm(other, axis=-1, keepdims=True)
    angle = np.deg2rad(degrees)
    return (np.cos(angle) * unit + np.sin(angle) * other) * rng.uniform(
        0.5, 2.0, a.shape[:-1] + (1,)
    )


@pytest.fixture(scope="module")
def selection_case(tmp_path_factory, digits_file):
    """Three models agree everywhere except that model B turns away from
    A (= C) on candidates 7, 2 and 5 by 180, 90 and 60 degrees: their
    mean pairwise distances are 4/3, 2/3 and 1/3, all others 0."""
    root = tmp_path_factory.mktemp("selection")
    candidates = gradfield_candidates_file(
        digits_file, root / "candidates.h5", split="train", n_points=10
    )
    rng = np.random.default_rng(0)
    field_a = rng.standard_normal((10, 4, 6))
    field_b = field_a.copy()
    for point, degrees in [(7, 180), (2, 90), (5, 60)]:
        field_b[point] = rotated(field_a[point], degrees, rng)
    paths = []
    for name, field in [("a", field_a), ("b", field_b), ("c", field_a * 2.0)]:
        meta = {
            "name": f"digits/mlp/standard/{name}",
            "arch": "mlp",
            "dataset": "digits",
            "num_classes": 10,
        }
        seed = {"a": 0, "b": 1, "c": 2}[name]
        checkpoint = save_checkpoint(
            root / f"{name}.safetensors", seeded_model("mlp", "digits", seed), meta
        )
        paths.append(
            write_signature(
                root / f"{name}.h5",
                Computed(field.astype(np.float32), {"n_steps": 4}),
                method=get_method("gradfield"),
                checkpoint=load_checkpoint(checkpoint),
                probe=read_probe(candidates),
            )
        )
    return root, candidates, paths


def test_selection_keeps_the_highest_ranked_candidates(selection_case):
    root, candidates, paths = selection_case
    output = select_reference_points(candidates, paths, 3, root / "selected.h5")
    selected = load_gradfield_probe(output)
    full = load_gradfield_probe(candidates)
    np.testing.assert_array_equal(selected.indices, full.indices[[7, 2, 5]])
    np.testing.assert_array_equal(selected.points, full.points[[7, 2, 5]])
    np.testing.assert_array_equal(selected.labels, full.labels[[7, 2, 5]])
    np.testing.assert_allclose(selected.selection_score, [4 / 3, 2 / 3, 1 / 3], atol=1e-6)
    info = selected.params["selection"]
    assert info["k"] == 3 and info["n_candidates"] == 10
    assert info["candidate_probe_sha256"] == file_sha256(candidates)
    assert info["models"] == [
        "digits/mlp/standard/a",
        "digits/mlp/standard/b",
        "digits/mlp/standard/c",
    ]
    assert selected.params["n_points"] == 3

    prefix = load_gradfield_probe(select_reference_points(candidates, paths, 2, root / "two.h5"))
    np.testing.assert_array_equal(prefix.indices, selected.indices[:2])


def test_selection_refuses_bad_inputs(selection_case, digits_file):
    root, candidates, paths = selection_case
    with pytest.raises(ValueError, match="at least two independent models"):
        select_reference_points(candidates, paths[:1], 2, root / "x.h5")
    with pytest.raises(ValueError, match="k must be between 1 and the 10 candidates"):
        select_reference_points(candidates, paths, 11, root / "x.h5")
    with pytest.raises(ValueError, match="same checkpoint twice"):
        select_reference_points(candidates, [paths[0], paths[0]], 2, root / "x.h5")
    other = gradfield_candidates_file(digits_file, root / "other.h5", split="train", n_points=11)
    with pytest.raises(SignatureError, match="not on the candidate probe"):
        select_reference_points(other, paths, 2, root / "x.h5")
    assert not (root / "x.h5").exists()
