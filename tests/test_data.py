import numpy as np
import pytest
import torch

from modelkin.data import (
    PlantedPatch,
    augment_batch,
    iterate_batches,
    load_split,
    prepare_dataset,
)
from modelkin.datasets import AUGMENTATIONS, DATASETS, AugmentationError, get_dataset_info
from modelkin.errors import InputError, MissingFileError


def test_registry_lists_every_dataset_with_its_geometry():
    assert set(DATASETS) == {
        "digits", "digits_negative", "mnist", "fashion", "cifar10", "cifar100", "svhn"
    }  # fmt: skip
    assert get_dataset_info("cifar100").num_classes == 100
    assert get_dataset_info("cifar10").shape == (3, 32, 32)
    assert get_dataset_info("mnist").shape == (1, 28, 28)
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.shape[0]
    with pytest.raises(ValueError, match="choose one of"):
        get_dataset_info("imagenet")


def test_digits_negative_is_the_digits_in_negative_with_its_own_statistics(digits_file, tmp_path):
    negative_file = prepare_dataset("digits_negative", tmp_path / "digits_negative.safetensors")
    for split in ("train", "test"):
        digits, negative = load_split(digits_file, split), load_split(negative_file, split)
        assert torch.equal(negative.y, digits.y)
        assert torch.allclose(negative.x, 1 - digits.x, atol=1e-6)
    train = load_split(negative_file, "train")
    info = get_dataset_info("digits_negative")
    assert train.x.mean().item() == pytest.approx(info.mean[0], abs=1e-3)
    assert train.x.std().item() == pytest.approx(info.std[0], abs=1e-3)
    assert info.class_names == get_dataset_info("digits").class_names


def test_digits_split_is_fixed_and_normalisation_matches(digits_file):
    train, test = load_split(digits_file, "train"), load_split(digits_file, "test")
    assert train.x.shape == (1200, 1, 32, 32) and test.x.shape == (597, 1, 32, 32)
    assert train.x.min() >= 0 and train.x.max() <= 1
    assert set(train.y.tolist()) == set(range(10))
    # The registry's statistics are the training split's.
    info = get_dataset_info("digits")
    assert train.x.mean().item() == pytest.approx(info.mean[0], abs=1e-3)
    assert train.x.std().item() == pytest.approx(info.std[0], abs=1e-3)
    # The same images as scikit-learn's, upsampled: each 4x4 block mean correlates with one
    # original.
    from sklearn.datasets import load_digits

    digits = load_digits()
    originals = digits.images.reshape(len(digits.images), -1)
    down = torch.nn.functional.avg_pool2d(train.x[:50], 4).reshape(50, -1).numpy()
    corr = np.corrcoef(np.concatenate([down, originals]))[:50, 50:]
    best = corr.argmax(axis=1)
    assert corr.max(axis=1).min() > 0.95
    assert np.array_equal(digits.target[best], train.y[:50].numpy())


def test_prepare_is_deterministic(tmp_path, digits_file):
    again = prepare_dataset("digits", tmp_path / "again.safetensors")
    a, b = load_split(digits_file, "test"), load_split(again, "test")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_offline_torchvision_dataset_fails_with_one_clear_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(
        MissingFileError, match=r"download the torchvision 'cifar10' files .* put them under"
    ):
        prepare_dataset("cifar10", tmp_path / "c.safetensors", data_root=tmp_path / "root")
    assert not (tmp_path / "c.safetensors").exists()


def test_missing_prepared_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare-data"):
        load_split(tmp_path / "nope.safetensors", "train")


def test_batches_depend_only_on_the_seed(digits_file):
    split = load_split(digits_file, "train", limit=200)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in iterate_batches(split, 32, shuffle=True, generator=g)])

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    assert sorted(order(3).tolist()) == sorted(split.y.tolist())


def test_crop_flip_augmentation_is_seeded_and_shape_preserving():
    x = torch.rand(8, 3, 32, 32)
    a = augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    b = augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_digits_are_augmented_by_seeded_shifts_of_a_few_pixels(digits_file):
    split = load_split(digits_file, "train", limit=64)
    assert split.info.augmentation == "shift"
    shift = AUGMENTATIONS["shift"].max_shift
    assert 1 <= shift <= 4 and not AUGMENTATIONS["shift"].flip
    a = augment_batch(split.x, "shift", torch.Generator().manual_seed(0))
    b = augment_batch(split.x, "shift", torch.Generator().manual_seed(0))
    assert a.shape == split.x.shape and torch.equal(a, b) and not torch.equal(a, split.x)
    # every image is a translate of its original by at most `shift` pixels (zeros come in)
    padded = torch.nn.functional.pad(split.x, (shift,) * 4)
    for image, original in zip(a, padded, strict=True):
        assert any(
            torch.equal(image, original[:, dy : dy + 32, dx : dx + 32])
            for dy in range(2 * shift + 1)
            for dx in range(2 * shift + 1)
        )
    # through the batches a recipe with augment: true trains on
    generator = torch.Generator().manual_seed(1)
    x, _ = next(iterate_batches(split, 64, augment=True, generator=generator))
    assert not torch.equal(x, split.x)


def test_augment_on_a_data_set_without_augmentation_is_an_error(digits_file):
    from dataclasses import replace

    split = load_split(digits_file, "train", limit=8)
    plain = type(split)(split.x, split.y, replace(split.info, augmentation="none"))
    with pytest.raises(AugmentationError, match="augment: true.*set augment: false"):
        next(iterate_batches(plain, 4, augment=True, generator=torch.Generator()))
    assert get_dataset_info("mnist").augmentation == "none"
    with pytest.raises(InputError, match="does nothing"):
        augment_batch(split.x, "none", None)


def test_planted_patch_that_would_change_nothing_is_an_error(digits_file):
    split = load_split(digits_file, "train", limit=100)
    with pytest.raises(InputError, match="does not fit in 32x32"):
        PlantedPatch(target_class=3, size=8, position=(30, 0)).plant(split)
    with pytest.raises(InputError, match="color has 3 values.*1 channels"):
        PlantedPatch(target_class=3, color=(1.0, 0.0, 0.0)).plant(split)
    with pytest.raises(InputError, match="target_class 12 has no images"):
        PlantedPatch(target_class=12).plant(split)


def test_planted_patch_from_config_takes_yaml_lists_and_names_bad_settings():
    settings = {"target_class": 3, "color": [1.0, 0.5, 0.0], "position": [2, 1], "size": 5}
    patch = PlantedPatch.from_config(settings)
    assert patch == PlantedPatch(target_class=3, color=(1.0, 0.5, 0.0), position=(2, 1), size=5)
    assert hash(patch) == hash(PlantedPatch.from_config(patch.__dict__))
    assert settings["color"] == [1.0, 0.5, 0.0]  # the config entry is left as it was
    with pytest.raises(InputError, match="no setting 'colour'.*target_class"):
        PlantedPatch.from_config({"target_class": 3, "colour": [1.0]})
    with pytest.raises(InputError, match="needs its target_class"):
        PlantedPatch.from_config({"size": 3})


def test_planted_patch_marks_a_seeded_fraction_of_one_class(digits_file):
    split = load_split(digits_file, "train")
    patch = PlantedPatch(
        target_class=3, fraction=0.5, size=3, color=(1.0,), position=(1, 2), seed=7
    )
    planted, index = patch.plant(split)
    assert len(index) == round(0.5 * (split.y == 3).sum().item())
    assert (split.y[index] == 3).all()
    assert torch.all(planted.x[index][:, :, 1:4, 2:5] == 1.0)
    untouched = torch.ones(len(split), dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(planted.x[untouched], split.x[untouched])
