"""The HDF5 signature and probe files: every attribute
on disk, clear errors, the comparability check."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelkin import __version__
from modelkin.checkpoint import load_checkpoint, save_checkpoint
from modelkin.inspect import describe
from modelkin.io import file_sha256
from modelkin.lineage import Lineage
from modelkin.models import seeded_model
from modelkin.signatures import (
    Computed,
    SignatureError,
    SignatureMismatch,
    check_comparable,
    get_method,
    read_probe,
    read_signature,
    write_probe,
    write_signature,
)

MODEL_META = {
    "name": "digits/mlp/standard/i3-d4",
    "arch": "mlp",
    "dataset": "digits",
    "num_classes": 10,
    "algorithm": "standard",
    "init_seed": 3,
    "data_seed": 4,
    "parent": "digits/mlp/standard/i0-d0",
    "history": [{"epoch": 1}],  # not copied into signatures
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    return save_checkpoint(path, seeded_model("mlp", "digits", 3), MODEL_META)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.h5"
    arrays = {
        "images": np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32),
        "labels": np.arange(3),
    }
    return write_probe(
        path, arrays, kind="zest", params={"dataset": "digits", "n_images": 3, "seed": 0}
    )


def make_signature(
    tmp_path, checkpoint, probe, name="sig.h5", shape=(7, 10), params=None, method="zest", seed=0
):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    computed = Computed(data, params or {"outputs": "logits"}, {"num_segments": np.array([3, 4])})
    return write_signature(
        tmp_path / name,
        computed,
        method=get_method(method),
        checkpoint=load_checkpoint(checkpoint),
        probe=read_probe(probe),
    )


def test_every_attribute_reads_back_with_plain_h5py(tmp_path, checkpoint, probe):
    path = make_signature(tmp_path, checkpoint, probe)
    with h5py.File(path, "r") as handle:
        assert set(handle) == {"signature", "num_segments"}
        data = handle["signature"][()]
        attrs = dict(handle.attrs)
    assert data.shape == (7, 10) and data.dtype == np.float32
    assert attrs["modelkin_kind"] == "modelkin-signature"
    assert attrs["method"] == "zest"
    assert json.loads(attrs["params"]) == {"outputs": "logits"}
    assert list(attrs["axes"]) == ["superpixel", "class"]
    assert attrs["checkpoint"] == str(checkpoint)
    assert attrs["checkpoint_sha256"] == file_sha256(checkpoint)
    model = json.loads(attrs["model"])
    lineage = {k: v for k, v in MODEL_META.items() if k != "history"}
    assert model == {**Lineage(**lineage).to_dict(), "sha256": file_sha256(checkpoint)}
    assert attrs["probe"] == str(probe)
    assert attrs["probe_sha256"] == file_sha256(probe)
    assert attrs["probe_kind"] == "zest"
    assert json.loads(attrs["probe_params"]) == {"dataset": "digits", "n_images": 3, "seed": 0}
    assert attrs["modelkin_version"] == __version__
    assert "created" not in attrs  # no timestamp: identical inputs give identical bytes


def test_signature_files_are_byte_reproducible(tmp_path, checkpoint, probe):
    first = make_signature(tmp_path, checkpoint, probe, "first.h5")
    second = make_signature(tmp_path, checkpoint, probe, "second.h5")
    assert file_sha256(first) == file_sha256(second)


def test_read_signature_round_trip(tmp_path, checkpoint, probe):
    path = make_signature(tmp_path, checkpoint, probe)
    sig = read_signature(path)
    expected = np.random.default_rng(0).standard_normal((7, 10)).astype(np.float32)
    np.testing.assert_array_equal(sig.data, expected)
    assert (
        sig.method == "zest"
        and sig.params == {"outputs": "logits"}
        and sig.axes == ("superpixel", "class")
    )
    assert sig.probe_sha256 == file_sha256(probe)
    assert sig.lineage.init_seed == 3 and sig.lineage.parent == MODEL_META["parent"]
    assert sig.lineage.sha256 == file_sha256(checkpoint) and sig.name == MODEL_META["name"]
    np.testing.assert_array_equal(sig.extras["num_segments"], [3, 4])
    assert any("signature  dataset (7, 10) float32" in line for line in describe(path))


def test_missing_corrupt_and_foreign_files_name_the_file_and_the_fix(tmp_path, checkpoint, probe):
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match=r"nope\.h5.*snakemake"):
        read_signature(missing)

    good = make_signature(tmp_path, checkpoint, probe)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:600])
    with pytest.raises(SignatureError, match=r"truncated\.h5.*(corrupt|damaged).*delete it"):
        read_signature(truncated)

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(SignatureError, match=r"garbage\.h5 is not a readable HDF5"):
        read_signature(garbage)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["signature"] = np.zeros(3)
    with pytest.raises(SignatureError, match="not a modelkin signature"):
        read_signature(foreign)
    with pytest.raises(SignatureError, match="not a modelkin probe"):
        read_probe(foreign)


def test_write_refuses_an_array_that_does_not_fit_the_methods_axes(tmp_path, checkpoint, probe):
    with pytest.raises(SignatureError, match=r"axes \('superpixel', 'class'\)"):
        make_signature(tmp_path, checkpoint, probe, "a.h5", shape=(2, 3, 4))
    assert not (tmp_path / "a.h5").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_reading_refuses_non_finite_values(tmp_path, checkpoint, probe):
    path = make_signature(tmp_path, checkpoint, probe)
    with h5py.File(path, "r+") as handle:
        handle["signature"][0, 0] = np.nan
    with pytest.raises(SignatureError, match="non-finite"):
        read_signature(path)
    # An extra dataset (e.g. ModelGiF's logit_gap) too: compare and distance read through this.
    path = make_signature(tmp_path, checkpoint, probe, "extra.h5")
    with h5py.File(path, "r+") as handle:
        handle["logit_gap"] = np.array([0.5, np.inf])
    with pytest.raises(SignatureError, match=r"1 non-finite values in its 'logit_gap' dataset"):
        read_signature(path)


def test_check_comparable(tmp_path, checkpoint, probe):
    base = read_signature(make_signature(tmp_path, checkpoint, probe, "base.h5"))
    check_comparable(
        base, read_signature(make_signature(tmp_path, checkpoint, probe, "same.h5", seed=1))
    )
    # Zest signatures of models with different class
    # counts are comparable (classes are aligned later).
    check_comparable(
        base, read_signature(make_signature(tmp_path, checkpoint, probe, "c100.h5", shape=(7, 100)))
    )

    with pytest.raises(
        SignatureMismatch,
        match=r"different zest parameters \(outputs: 'logits' vs 'probabilities'\)",
    ):
        other = make_signature(
            tmp_path, checkpoint, probe, "params.h5", params={"outputs": "probabilities"}
        )
        check_comparable(base, read_signature(other))
    other_method = read_signature(make_signature(tmp_path, checkpoint, probe, "m.h5"))
    other_method.method = "gradfield"
    with pytest.raises(SignatureMismatch, match="different methods"):
        check_comparable(base, other_method)
    with pytest.raises(SignatureMismatch, match="incompatible shapes"):
        check_comparable(
            base, read_signature(make_signature(tmp_path, checkpoint, probe, "s.h5", shape=(8, 10)))
        )

    other_probe = write_probe(
        tmp_path / "other_probe.h5", {"images": np.ones((3, 1, 32, 32))}, kind="zest", params={}
    )
    with pytest.raises(SignatureMismatch, match="different probes.*same probe file"):
        check_comparable(
            base, read_signature(make_signature(tmp_path, checkpoint, other_probe, "p.h5"))
        )


def test_probe_files_are_reproducible_and_typed(tmp_path):
    arrays = {
        "points": np.random.default_rng(1).random((20, 1, 8, 8)).astype(np.float32),
        "labels": np.arange(20),
    }
    params = {"dataset": "digits", "classes": None, "nested": {"a": [1, 2]}}
    first = write_probe(tmp_path / "one.h5", arrays, kind="gradfield", params=params)
    second = write_probe(tmp_path / "two.h5", arrays, kind="gradfield", params=params)
    assert file_sha256(first) == file_sha256(second)
    probe = read_probe(first, kind="gradfield")
    assert (
        probe.kind == "gradfield" and probe.params == params and probe.sha256 == file_sha256(first)
    )
    np.testing.assert_array_equal(probe.arrays["points"], arrays["points"])
    with pytest.raises(SignatureError, match="is a gradfield probe, but a zest probe is needed"):
        read_probe(first, kind="zest")


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_a_model_whose_outputs_ignore_the_input_has_no_signature(tmp_path, method):
    """An output layer of zeros (like torchvision's untrained ViT head) gives constant logits, a
    constant signature, and a cos distance of 1 to itself: refused with the cause named."""
    import torch

    from modelkin.data import prepare_dataset
    from modelkin.distances.compare import make_probe
    from modelkin.signatures.compute import compute_signature

    model = seeded_model("mlp", "digits", 3)
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.fc3.bias.zero_()
    prepared = prepare_dataset("digits", tmp_path / "digits.safetensors")
    options = {"n_images": 2, "n_samples": 16} if method == "zest" else {"n_points": 2}
    probe = read_probe(make_probe(method, prepared, tmp_path / "probe.h5", **options))
    extra = {} if method == "zest" else {"n_steps": 3}
    with pytest.raises(SignatureError, match="is constant .* do not depend on its input"):
        compute_signature(method, model, probe, device="cpu", **extra)
