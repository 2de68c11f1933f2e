"""Zest: batched extraction against a plain per-image
implementation, LIME's segmentation, known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from modelkin.checkpoint import save_checkpoint
from modelkin.data import load_split
from modelkin.models import build_model, seeded_model
from modelkin.signatures import read_signature
from modelkin.signatures.compute import signature_file
from modelkin.signatures.plan import default_settings
from modelkin.signatures.zest.extract import (
    ZestExtractor,
    ZestProbe,
    draw_masks,
    load_zest_probe,
    make_zest_probe,
    save_zest_probe,
    segment_image,
    zest_probe_file,
)

REPO = Path(__file__).resolve().parents[1]
SEGMENTATION = {"kernel_size": 3, "ratio": 0.2, "max_dist": 200}
DIGITS_MEAN = 0.3053


@pytest.fixture(scope="module")
def digits(digits_file):
    return load_split(digits_file, "train", limit=64)


@pytest.fixture(scope="module")
def small_probe(digits):
    return make_zest_probe(digits, n_images=4, n_samples=200, seed=0, **SEGMENTATION)


def as_rgb_255(image: np.ndarray) -> np.ndarray:
    rgb = np.round(image.transpose(1, 2, 0).astype(np.float64) * 255)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def reference_zest(model, images, *, n_samples, seed, hide, kernel_size, ratio, max_dist, batch=50):
    """Zest as the reference computes it: one image at a time, LIME's
    segmentation wrapper, the global legacy RNG, perturbed images built
    pixel by pixel in numpy, logits in batches, pinv per image."""
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    segmentation = SegmentationAlgorithm(
        "quickshift", kernel_size=kernel_size, ratio=ratio, max_dist=max_dist
    )
    np.random.seed(seed)
    weights = []
    for image in images:
        segments = segmentation(as_rgb_255(image))
        n_features = np.unique(segments).shape[0]
        z = np.random.randint(0, 2, [n_samples, n_features])
        z[0, :] = 1
        perturbed = np.repeat(image[None], n_samples, axis=0)
        for s in range(n_samples):
            for feature in np.where(z[s] == 0)[0]:
                perturbed[s][:, segments == feature] = hide
        with torch.no_grad():
            y = np.concatenate(
                [
                    model(torch.from_numpy(perturbed[i : i + batch])).double().numpy()
                    for i in range(0, n_samples, batch)
                ]
            )
        weights.append(np.linalg.pinv(z.T @ z) @ z.T @ y)
    return np.concatenate(weights).astype(np.float32)


def test_batched_zest_equals_per_image_reference(digits, small_probe):
    model = seeded_model("lenet", "digits", 0).eval()
    ours = ZestExtractor(chunk_size=300, device="cpu").signature(model, small_probe)
    ref = reference_zest(
        model, digits.x[:4].numpy(), n_samples=200, seed=0, hide=DIGITS_MEAN, **SEGMENTATION
    )
    assert ours.shape == ref.shape == (small_probe.total_segments, 10)
    scale = np.abs(ref).max()
    assert scale > 1e-3  # a real signal, not zeros on both sides
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)


def test_segmentation_equals_limes_quickshift_wrapper(digits):
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    wrapper = SegmentationAlgorithm("quickshift", **SEGMENTATION)
    grey = digits.x[:6].numpy()
    tinted = np.concatenate([grey[:2], 0.5 * grey[:2] + 0.3, 1 - grey[:2]], axis=1)  # RGB images
    for image in [*grey, *tinted]:
        ours = segment_image(image, **SEGMENTATION)
        expected = wrapper(as_rgb_255(image))
        np.testing.assert_array_equal(ours, expected)
        assert ours.dtype == np.int32 and set(np.unique(ours)) == set(range(ours.max() + 1))


def test_configured_segmentation_gives_several_superpixels_per_digit(digits):
    settings = yaml.safe_load((REPO / "config.yaml").read_text())["zest"]
    params = {k: settings[k] for k in ("kernel_size", "ratio", "max_dist")}
    counts = [segment_image(img, **params).max() + 1 for img in digits.x[:32].numpy()]
    assert 8 <= np.median(counts) <= 20 and min(counts) >= 4, counts


def test_masks_follow_the_legacy_rng_stream():
    num_segments = np.array([5, 3, 7])
    masks = draw_masks(num_segments, 50, seed=11)
    state = np.random.get_state()
    np.random.seed(11)
    for i, f in enumerate(num_segments):
        expected = np.random.randint(0, 2, [50, f])
        expected[0, :] = 1
        np.testing.assert_array_equal(masks[i, :, :f], expected.astype(bool))
        assert not masks[i, :, f:].any()  # padded columns stay off
        assert masks[i, 0, :f].all()
    np.random.set_state(state)
    draw_masks(num_segments, 50, seed=11)
    assert np.random.get_state()[1][0] == state[1][0]  # the global RNG is left alone
    assert (
        masks.shape == (3, 50, 7) and 0.4 < masks[:, 1:, :].sum() / (49 * num_segments.sum()) < 0.6
    )


def test_probe_contents_and_round_trip(tmp_path, digits, small_probe):
    assert small_probe.images.shape == (4, 1, 32, 32) and small_probe.images.dtype == np.float32
    np.testing.assert_array_equal(
        small_probe.images, digits.x[:4].numpy()
    )  # the first images, in order
    np.testing.assert_allclose(small_probe.hide_color, [DIGITS_MEAN])
    assert small_probe.masks.shape == (4, 200, small_probe.num_segments.max())
    path = save_zest_probe(small_probe, tmp_path / "probe.h5")
    loaded = load_zest_probe(path)
    for name in ("images", "segments", "num_segments", "masks"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(small_probe, name))
    assert loaded.params == small_probe.params
    assert loaded.params["segmentation"] == {"algorithm": "quickshift", **SEGMENTATION}


def test_chunk_size_does_not_change_the_signature(small_probe):
    model = seeded_model("mlp", "digits", 1)
    results = [
        ZestExtractor(chunk_size=c, device="cpu").signature(model, small_probe)
        for c in (7, 333, 100_000)
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-6, atol=1e-6)


class CentredLinear(nn.Module):
    """logits = A · (x - hide): Zest's no-intercept linear surrogate recovers it exactly."""

    def __init__(self, weight: torch.Tensor, hide: float):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.hide = hide

    def forward(self, x):
        return (x - self.hide).flatten(1) @ self.weight.T


def superpixel_weights(
    weight: np.ndarray, image: np.ndarray, segments: np.ndarray, hide: float
) -> np.ndarray:
    contribution = weight * (image.reshape(1, -1) - hide)  # (C, D)
    labels = segments.reshape(-1)
    return np.stack(
        [contribution[:, labels == j].sum(1) for j in range(labels.max() + 1)]
    )  # (F, C)


def test_linear_model_gives_its_exact_superpixel_contributions(small_probe):
    weight = torch.randn(3, 32 * 32, generator=torch.Generator().manual_seed(0))
    model = CentredLinear(weight, DIGITS_MEAN)
    ours = ZestExtractor(chunk_size=256, device="cpu").signature(model, small_probe)
    expected = np.concatenate(
        [
            superpixel_weights(weight.numpy().astype(np.float64), img, seg, DIGITS_MEAN)
            for img, seg in zip(
                small_probe.images.astype(np.float64), small_probe.segments, strict=True
            )
        ]
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_rank_deficient_masks_give_the_minimum_norm_solution():
    # Three vertical bands; bands 1 and 2 are always
    # switched together, so only their sum is identified.
    segments = np.repeat(np.repeat(np.array([[0, 1, 2]]), 8, axis=0), [3, 3, 2], axis=1).astype(
        np.int32
    )[None]
    rows = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    image = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    probe = ZestProbe(
        image, segments, np.array([3], np.int32), rows[None], {"hide_color": [0.25]}
    ).validate()
    weight = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    ours = ZestExtractor(device="cpu").signature(CentredLinear(weight, 0.25), probe)
    exact = superpixel_weights(
        weight.numpy().astype(np.float64), image[0].astype(np.float64), segments[0], 0.25
    )
    np.testing.assert_allclose(ours[0], exact[0], atol=1e-5)
    np.testing.assert_allclose(
        ours[1], (exact[1] + exact[2]) / 2, atol=1e-5
    )  # minimum norm splits evenly
    np.testing.assert_allclose(ours[2], ours[1], atol=1e-6)


def test_signature_file_end_to_end(tmp_path, digits_file):
    settings = {**default_settings("zest", "probe"), "n_images": 3, "n_samples": 64}
    probe_path = zest_probe_file(digits_file, tmp_path / "probe.h5", **settings)
    model = seeded_model("lenet", "digits", 2)
    meta = {
        "name": "digits/lenet/standard/i2-d2",
        "arch": "lenet",
        "dataset": "digits",
        "num_classes": 10,
    }
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    output = signature_file(
        "zest", checkpoint, probe_path, tmp_path / "sig.h5", device="cpu", chunk_size=50
    )
    sig = read_signature(output)
    probe = load_zest_probe(probe_path)
    assert sig.method == "zest" and sig.axes == ("superpixel", "class")
    assert sig.data.shape == (probe.total_segments, 10)
    np.testing.assert_array_equal(sig.extras["num_segments"], probe.num_segments)
    direct = ZestExtractor(device="cpu").signature(model, probe)
    np.testing.assert_allclose(sig.data, direct, rtol=1e-6, atol=1e-6)

    wrong_space = save_checkpoint(
        tmp_path / "mnist.safetensors",
        build_model("mlp", "mnist"),
        {"arch": "mlp", "dataset": "mnist", "num_classes": 10},
    )
    with pytest.raises(
        ValueError, match=r"inputs of shape \(1, 28, 28\).*\(1, 32, 32\).*model's own data set"
    ):
        signature_file("zest", wrong_space, probe_path, tmp_path / "bad.h5", device="cpu")
    assert not (tmp_path / "bad.h5").exists()


def test_bad_requests_are_refused(digits, small_probe):
    with pytest.raises(ValueError, match="n_images must be between 1 and the split's 64"):
        make_zest_probe(digits, n_images=65, **SEGMENTATION)
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        ZestExtractor(chunk_size=0)
    broken = ZestProbe(
        small_probe.images,
        small_probe.segments,
        small_probe.num_segments + 1,
        small_probe.masks,
        small_probe.params,
    )
    with pytest.raises(ValueError, match="invalid Zest probe: segment labels"):
        broken.validate()


def test_models_with_different_class_sets_are_compared_on_their_shared_classes_images():
    from modelkin.lineage import Lineage
    from modelkin.signatures import Signature, get_method
    from modelkin.signatures.zest.distance import zest_distance

    rng = np.random.default_rng(0)
    labels = np.array([3, 7, 5, 1])
    num_segments = np.array([2, 3, 1, 2])
    extras = {"labels": labels, "num_segments": num_segments}

    def signature(classes, columns):
        lineage = Lineage("m", "lenet", "digits", columns, classes=classes)
        attrs = {"model": lineage.to_dict(), "checkpoint_sha256": "x"}
        data = rng.normal(size=(8, columns))
        return Signature(data, "zest", {}, ("superpixel", "class"), attrs, dict(extras))

    parent = signature(None, 10)
    transfer = signature((5, 6, 7, 8, 9), 5)
    rows = np.repeat(labels, num_segments)
    keep = np.isin(rows, [5, 6, 7, 8, 9])  # images of classes 7 and 5: rows 2-4 and 5
    assert keep.tolist() == [False, False, True, True, True, True, False, False]
    cos = get_method("zest").distance("cos")
    expected = zest_distance(parent.data[keep], transfer.data[keep], "cos")
    assert get_method("zest").pair_distance(cos, parent, transfer) == pytest.approx(expected)
    # same class sets: every row
    other = signature(None, 10)
    assert get_method("zest").pair_distance(cos, parent, other) == pytest.approx(
        zest_distance(parent.data, other.data, "cos")
    )
