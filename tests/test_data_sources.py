"""Users' own data sets (the config's ``datasets:``): image folders, NPZ and HDF5 prepared into the
same file as the built-in data sets, registered by name, and one clear line per bad input."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from modelkin.config import ConfigError, validate_config
from modelkin.config_checks import config_problems
from modelkin.data import load_split, prepare_dataset
from modelkin.data_sources import (
    DataSourceError,
    config_source,
    forget_config_datasets,
    register_config_datasets,
    source_files,
)
from modelkin.data_sources.digits_folder import write_digits_image_folder
from modelkin.datasets import DATASETS, get_dataset_info
from modelkin.errors import MissingFileError, ModelkinError
from modelkin.workflow import snakemake_job

CLASSES = ("cat", "dog", "emu")  # sorted, as the folders are
MINIMAL = {"modeldiff": {"run_by_default": False}, "zoo": {"architectures": ["lenet"]}}


@pytest.fixture(autouse=True)
def _forget_user_datasets():
    """Each test registers its own data sets; none leaks into another test's registry."""
    yield
    forget_config_datasets()


def write_folder(root: Path, per_class: int = 5, size=(12, 10), mode="RGB", seed=0) -> Path:
    """``root/{train,test}/<class>/NN.png``: ``per_class`` random images per class and split
    (``size`` is width x height, as PIL says)."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for split in ("train", "test"):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
                Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
                    folder / f"{i:02d}.png"
                )
    return root


def config_with(name: str, entry: dict, **sections) -> dict:
    """A minimal configuration whose zoo trains on the user data set ``name``, validated."""
    config = copy.deepcopy({**MINIMAL, **sections})
    config["datasets"] = {name: entry}
    config["zoo"]["datasets"] = [name]
    return validate_config(config)


def prepare(name: str, entry: dict, tmp_path: Path) -> Path:
    config_with(name, entry)
    return prepare_dataset(name, tmp_path / f"{name}.safetensors")


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


# -- image folders ------------------------------------------------------------------------------


def test_image_folder_is_resized_and_labelled_by_its_sub_folders(tmp_path):
    root = write_folder(tmp_path / "pets")
    out = prepare("pets", {"source": "imagefolder", "path": str(root), "size": [16, 16]}, tmp_path)
    arrays = arrays_of(out)
    info = get_dataset_info("pets")
    assert info.shape == (3, 16, 16) and info.num_classes == 3 and info.class_names == CLASSES
    assert (info.train_size, info.test_size) == (15, 15) and info.source == "imagefolder"
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)  # the neutral default
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        assert x.shape == (15, 3, 16, 16) and x.dtype == np.uint8 and y.dtype == np.int64
        assert y.tolist() == [0] * 5 + [1] * 5 + [2] * 5  # sorted folders, sorted files
        for i, (label, name) in enumerate((c, n) for c in range(3) for n in range(5)):
            # Known answer: PIL's own bilinear resize of the same file.
            image = Image.open(root / split / CLASSES[label] / f"{name:02d}.png").convert("RGB")
            expected = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR))
            np.testing.assert_array_equal(x[i], expected.transpose(2, 0, 1))
    split = load_split(out, "test")  # loads by name, through the registry
    assert split.info.name == "pets" and split.x.shape == (15, 3, 16, 16)


def test_image_folder_without_size_keeps_the_images_and_converts_channels(tmp_path):
    root = write_folder(tmp_path / "pets")
    out = prepare("pets", {"source": "imagefolder", "path": str(root), "channels": 1}, tmp_path)
    x = arrays_of(out)["train_x"]
    assert x.shape == (15, 1, 10, 12)
    first = Image.open(root / "train" / "cat" / "00.png").convert("L")
    np.testing.assert_array_equal(x[0, 0], np.asarray(first))


def test_the_exported_digits_folder_prepares_to_the_built_in_digits(tmp_path):
    folder = write_digits_image_folder(tmp_path / "digits_folder", channels=1)
    assert sorted(p.name for p in (folder / "train").iterdir()) == [str(d) for d in range(10)]
    out = prepare("my_digits", {"source": "imagefolder", "path": str(folder)}, tmp_path)
    mine = arrays_of(out)
    builtin = arrays_of(prepare_dataset("digits", tmp_path / "digits.safetensors"))
    for split in ("train", "test"):
        order = np.argsort(builtin[f"{split}_y"], kind="stable")  # the folder: by class, index
        np.testing.assert_array_equal(mine[f"{split}_x"], builtin[f"{split}_x"][order])
        np.testing.assert_array_equal(mine[f"{split}_y"], builtin[f"{split}_y"][order])
    with pytest.raises(DataSourceError, match="already exists and is not empty"):
        write_digits_image_folder(folder)
    rgb = write_digits_image_folder(tmp_path / "rgb", channels=3)
    assert Image.open(next((rgb / "test" / "7").iterdir())).mode == "RGB"


# -- arrays -------------------------------------------------------------------------------------


def random_arrays(n_train=7, n_test=4, shape=(6, 5, 3), classes=3, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train_y": rng.integers(0, classes, n_train),
        "test_x": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "test_y": rng.integers(0, classes, n_test),
    }


def test_npz_round_trip(tmp_path):
    given = random_arrays()
    given["train_y"][0] = 4  # five classes, by the largest label
    np.savez(tmp_path / "a.npz", **given)
    out = prepare("arr", {"source": "npz", "path": str(tmp_path / "a.npz")}, tmp_path)
    arrays = arrays_of(out)
    for split in ("train", "test"):  # (N, H, W, C) -> (N, C, H, W), unchanged otherwise
        np.testing.assert_array_equal(
            arrays[f"{split}_x"], given[f"{split}_x"].transpose(0, 3, 1, 2)
        )
        np.testing.assert_array_equal(arrays[f"{split}_y"], given[f"{split}_y"])
    info = get_dataset_info("arr")
    assert info.shape == (3, 6, 5) and info.class_names == ("0", "1", "2", "3", "4")
    assert (info.train_size, info.test_size) == (7, 4)


def test_hdf5_round_trip_with_class_names_and_float_images(tmp_path):
    given = random_arrays(shape=(1, 8, 8))  # (N, C, H, W) greyscale
    with h5py.File(tmp_path / "a.h5", "w") as f:
        for key in ("train", "test"):
            f[f"{key}_x"] = given[f"{key}_x"] / 255.0  # floats in [0, 1]
            f[f"{key}_y"] = given[f"{key}_y"]
        f["class_names"] = np.array(["a", "b", "c"], dtype=h5py.string_dtype())
    out = prepare("h", {"source": "hdf5", "path": str(tmp_path / "a.h5")}, tmp_path)
    arrays = arrays_of(out)
    for key in given:
        np.testing.assert_array_equal(arrays[key], given[key])
    assert get_dataset_info("h").class_names == ("a", "b", "c")


def test_arrays_are_resized_as_pil_does(tmp_path):
    given = random_arrays()
    np.savez(tmp_path / "a.npz", **given)
    entry = {"source": "npz", "path": str(tmp_path / "a.npz"), "size": [4, 4], "channels": 1}
    x = arrays_of(prepare("arr", entry, tmp_path))["train_x"]
    image = Image.fromarray(given["train_x"][2]).convert("L")
    expected = image.resize((4, 4), Image.Resampling.BILINEAR)
    assert x.shape == (7, 1, 4, 4)
    np.testing.assert_array_equal(x[2, 0], np.asarray(expected))


# -- registration and the configuration --------------------------------------------------------


def test_registration_makes_the_name_a_data_set_everywhere(tmp_path):
    root = write_folder(tmp_path / "pets")
    entry = {"source": "imagefolder", "path": str(root), "size": [32, 32], "mean": [0.4] * 3}
    config = config_with("pets", entry)
    assert config["zoo"]["datasets"] == ["pets"]
    assert config["datasets"]["pets"]["augmentation"] == "none"  # the schema's defaults
    found = config_problems(config, check_device=False)  # the folder's 15 training images count
    assert found and all("asked of pets's train split, which holds 15" in line for line in found)
    assert get_dataset_info("pets").mean == (0.4, 0.4, 0.4)
    assert source_files(config_source("pets"))[0].endswith("train/cat/00.png")
    assert len(source_files(config_source("pets"))) == 30
    assert register_config_datasets(config) == ["pets"]  # again: replaces, never raises
    bad = {"datasets": {"gone": {"source": "npz", "path": "/nonexistent.npz"}, "x": 3}}
    assert register_config_datasets(bad) == ["gone"]  # known by name; the check says why not
    forget_config_datasets()
    with pytest.raises(ModelkinError, match="unknown data set 'pets'.*datasets: section"):
        get_dataset_info("pets")
    job = SimpleNamespace(log=[], threads=1, rule="prepare_data", config=config)
    with snakemake_job(job):  # a job's fresh process registers them from snakemake.config
        assert get_dataset_info("pets").shape == (3, 32, 32)


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"source": "imagefolder", "path": "x", "colour": 1}, r"datasets.mine.colour: unknown key"),
        (
            {"source": "imagefolder", "path": "x", "channels": 2},
            r"datasets.mine.channels: 2 is not",
        ),
        ({"source": "zip", "path": "x"}, r"datasets.mine.source: 'zip' is not one of"),
        ({"path": "x"}, r"datasets.mine: 'source' is a required property"),
    ],
)
def test_bad_entries_are_schema_errors(entry, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({**copy.deepcopy(MINIMAL), "datasets": {"mine": entry}})


def problem_lines(name: str, entry: dict) -> list[str]:
    return config_problems(config_with(name, entry), check_device=False)


def test_a_built_in_name_or_a_missing_path_is_one_line_each(tmp_path):
    root = write_folder(tmp_path / "pets")
    config = copy.deepcopy(MINIMAL)
    config["datasets"] = {
        "mnist": {"source": "imagefolder", "path": str(root)},
        "gone": {"source": "npz", "path": str(tmp_path / "gone.npz")},
    }
    found = config_problems(validate_config(config), check_device=False)
    assert found == [
        "datasets.mnist: 'mnist' is a built-in data set; give yours another name",
        f"datasets.gone.path: {tmp_path / 'gone.npz'} does not exist (relative paths start in "
        "the directory Snakemake runs in); correct the path or create it",
    ]
    assert DATASETS["mnist"].source == "torchvision"  # never replaced


# -- bad input: one clear line each, nothing written -------------------------------------------


def fails_to_prepare(name: str, entry: dict, tmp_path: Path, message: str) -> None:
    """Preparing fails with ``message``, and no file (or part file) is left behind; the config
    check says the same before any job runs where it can tell from headers."""
    config_with(name, entry)
    out = tmp_path / "out" / f"{name}.safetensors"
    with pytest.raises(ModelkinError, match=message):
        prepare_dataset(name, out)
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda r: [p.unlink() for p in r.rglob("*.png")], r"train/cat holds no images"),
        (lambda r: (r / "test" / "emu").rename(r / "test" / "eel"), r"only in train/: emu; only "),
        (lambda r: (r / "test").rename(r / "t"), r"pets/test is missing"),
    ],
    ids=["no images", "classes differ", "missing split"],
)
def test_bad_image_folders(tmp_path, damage, message):
    root = write_folder(tmp_path / "pets")
    damage(root)
    entry = {"source": "imagefolder", "path": str(root), "size": [8, 8]}
    fails_to_prepare("pets", entry, tmp_path, message)
    # The folder's layout is checked before any job runs, one line for the entry.
    (line,) = problem_lines("pets", entry)
    assert line.startswith("datasets.pets: ") and re.search(message, line)


def test_an_unreadable_image_is_named(tmp_path):
    root = write_folder(tmp_path / "pets")
    (root / "test" / "dog" / "02.png").write_bytes(b"\x89PNG broken")
    entry = {"source": "imagefolder", "path": str(root)}
    fails_to_prepare("pets", entry, tmp_path, r"cannot read image .*test/dog/02.png")


def test_images_of_different_sizes_need_a_size(tmp_path):
    root = write_folder(tmp_path / "pets")
    Image.new("RGB", (7, 7)).save(root / "test" / "emu" / "99.png")
    fails_to_prepare(
        "pets",
        {"source": "imagefolder", "path": str(root)},
        tmp_path,
        r"99.png is 7x7 pixels.*size:",
    )


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.pop("test_y"), r"has no array test_y; it must hold train_x"),
        (
            lambda a: a.update(test_y=np.array([0, 1, 7, 0])),
            r"test_y .* holds label 7, outside 0..2",
        ),
        (lambda a: a.update(train_y=a["train_y"][:-1]), r"holds 7 images but train_y 6 labels"),
        (lambda a: a.update(train_x=np.zeros((7, 6, 5, 2), np.uint8)), r"1 or 3 channels"),
        (lambda a: a.update(test_x=a["test_x"] * 2.0), r"values outside \[0, 1\]"),
    ],
    ids=["missing array", "label out of range", "lengths differ", "2 channels", "floats > 1"],
)
def test_bad_npz_files(tmp_path, change, message):
    given = random_arrays()
    change(given)
    np.savez(tmp_path / "a.npz", **given)
    entry = {"source": "npz", "path": str(tmp_path / "a.npz"), "class_names": ["a", "b", "c"]}
    fails_to_prepare("arr", entry, tmp_path, message)


def test_a_file_that_is_no_npz_and_mean_of_the_wrong_length(tmp_path):
    (tmp_path / "a.npz").write_text("not a zip")
    entry = {"source": "npz", "path": str(tmp_path / "a.npz")}
    assert problem_lines("arr", entry) == [
        f"datasets.arr: cannot read {tmp_path / 'a.npz'} as NPZ (BadZipFile: File is not a zip "
        "file); check source: and the file"
    ]
    np.savez(tmp_path / "b.npz", **random_arrays())
    entry = {"source": "npz", "path": str(tmp_path / "b.npz"), "std": [0.2]}
    assert problem_lines("arr", entry) == [
        "datasets.arr.std: 1 values for the 3 channel(s) of its images; give one per channel "
        "(or set channels)"
    ]


def test_a_missing_path_fails_the_preparation_too(tmp_path):
    config_with("gone", {"source": "hdf5", "path": str(tmp_path / "gone.h5")})
    with pytest.raises(MissingFileError, match="gone.h5 does not exist"):
        prepare_dataset("gone", tmp_path / "gone.safetensors")


def test_prepared_tensors_load_as_torch(tmp_path):
    np.savez(tmp_path / "a.npz", **random_arrays())
    out = prepare("arr", {"source": "npz", "path": str(tmp_path / "a.npz")}, tmp_path)
    split = load_split(out, "train", limit=3)
    assert split.x.dtype == torch.float32 and float(split.x.max()) <= 1.0 and len(split) == 3


# -- the workflow -------------------------------------------------------------------------------


@pytest.mark.workflow
@pytest.mark.slow
def test_the_workflow_prepares_a_folder_again_when_its_files_or_settings_change(tmp_path):
    import yaml

    from helpers import run_snakemake

    write_folder(tmp_path / "pets")
    config = copy.deepcopy(MINIMAL)
    config["zoo"]["datasets"] = ["pets"]
    config["zest"] = {"n_images": 10}  # 15 training images
    config["gradfield"] = {"candidates": {"n_points": 12}, "reference_points": 8}
    config["datasets"] = {"pets": {"source": "imagefolder", "path": "pets", "size": [16, 16]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/data/pets.safetensors"

    def planned() -> str:
        return run_snakemake(tmp_path, "-n", "--cores", "1", target).stdout

    run_snakemake(tmp_path, "--cores", "1", target)
    assert arrays_of(tmp_path / target)["train_x"].shape == (15, 3, 16, 16)
    assert "rule prepare_data" in (tmp_path / "results/logs/prepare_data/pets.log").read_text()
    assert "Nothing to be done" in planned()
    Image.new("RGB", (12, 10)).save(tmp_path / "pets" / "train" / "dog" / "99.png")
    assert "prepare_data" in planned()  # a new image: its input files changed
    run_snakemake(tmp_path, "--cores", "1", target)
    assert arrays_of(tmp_path / target)["train_x"].shape == (16, 3, 16, 16)
    config["datasets"]["pets"]["size"] = [8, 8]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert "prepare_data" in planned()  # another size: its params changed
