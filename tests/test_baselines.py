"""The papers' baselines as signature methods: known answers and the invariances each claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelkin.checkpoint import save_checkpoint
from modelkin.models import seeded_model
from modelkin.models.layers import capture
from modelkin.signatures import get_method, read_probe, read_signature
from modelkin.signatures.baselines.fingerprint import correlation_matrix, fingerprint_distance
from modelkin.signatures.baselines.outputs import disagreement, softmax, symmetric_kl
from modelkin.signatures.baselines.penultimate import cka_distance
from modelkin.signatures.compute import signature_file

META = {"arch": "lenet", "dataset": "digits", "num_classes": 10}


@pytest.fixture(scope="module")
def images_probe(digits_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("baselines") / "probe.h5"
    # plain images: the untrained models here predict one class on almost every blend
    return get_method("outputs").make_probe(digits_file, path, n_images=64, blend=None)


def checkpoint(tmp_path, name, model, arch="lenet"):
    return save_checkpoint(
        tmp_path / f"{name}.safetensors", model, {**META, "arch": arch, "name": name}
    )


def test_weights_are_the_parameters_and_other_architectures_get_no_distance(tmp_path):
    a, b = seeded_model("lenet", "digits", 0), seeded_model("lenet", "digits", 1)
    paths = [checkpoint(tmp_path, n, m) for n, m in (("a", a), ("b", b))]
    sigs = [
        read_signature(signature_file("weights", p, None, tmp_path / f"{i}.h5"))
        for i, p in enumerate(paths)
    ]
    flat = torch.cat([p.detach().flatten() for p in a.parameters()]).numpy()
    np.testing.assert_array_equal(sigs[0].data, flat)
    assert sigs[0].attrs["probe_sha256"] == "none"
    method = get_method("weights")
    expected = float(np.linalg.norm(sigs[0].data.astype(np.float64) - sigs[1].data))
    assert method.pairwise(sigs)["l2"][0, 1] == pytest.approx(expected)
    mlp = signature_file(
        "weights", checkpoint(tmp_path, "m", seeded_model("mlp", "digits", 0), "mlp"), None,
        tmp_path / "m.h5",
    )  # fmt: skip
    assert np.isnan(method.pairwise([sigs[0], read_signature(mlp)])["cos"][0, 1])


def test_outputs_disagreement_and_kl_known_answers():
    p = softmax(np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]]))
    q = p[:, [1, 0, 2]]  # the first two classes swapped
    assert disagreement(p, p) == 0.0
    assert disagreement(p, q) == pytest.approx(3 / 4)  # rows 0, 1 and 3 change their argmax
    assert symmetric_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    assert symmetric_kl(p, q) == pytest.approx(symmetric_kl(q, p))
    row = p[0]
    kl = (row * np.log(row / row[[1, 0, 2]])).sum()
    assert symmetric_kl(p[:1], q[:1]) == pytest.approx(kl)  # symmetric for a swap


def test_the_outputs_probe_blends_two_images_of_different_classes(digits_file, tmp_path):
    from modelkin.data import load_split
    from modelkin.errors import InputError
    from modelkin.signatures.baselines.images import blend_pairs

    outputs = get_method("outputs")
    probe = read_probe(outputs.make_probe(digits_file, tmp_path / "b.h5", n_images=40, blend=0.3))
    test = load_split(digits_file, "test")
    x, y = test.x.numpy(), test.y.numpy()
    first, second = blend_pairs(y, 40, 0)
    assert len(first) == 40 and (y[first] != y[second]).all()
    np.testing.assert_allclose(probe.arrays["images"], 0.7 * x[first] + 0.3 * x[second], atol=1e-6)
    np.testing.assert_array_equal(probe.arrays["second_labels"], y[second])
    assert probe.params["selection"] == "blends" and probe.params["blend"] == 0.3
    default = read_probe(outputs.make_probe(digits_file, tmp_path / "d.h5", n_images=40))
    assert default.params["blend"] == 0.5  # the schema's default
    plain = read_probe(outputs.make_probe(digits_file, tmp_path / "p.h5", n_images=40, blend=None))
    np.testing.assert_array_equal(plain.arrays["images"], x[:40])
    with pytest.raises(InputError, match=r"blend must be in \(0, 0.5\]"):
        outputs.make_probe(digits_file, tmp_path / "bad.h5", n_images=40, blend=0.7)


def test_fingerprint_ignores_class_order_and_scale():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 10))
    base = correlation_matrix(logits)
    permuted = correlation_matrix(3.0 * logits[:, rng.permutation(10)] + 1.0)
    assert fingerprint_distance(base, permuted) == pytest.approx(0.0, abs=1e-12)
    other = correlation_matrix(rng.normal(size=(30, 10)))
    assert 0.5 < fingerprint_distance(base, other) < 1.5  # unrelated outputs: about 1


def test_penultimate_features_are_the_heads_input_and_cka_is_rotation_invariant(
    tmp_path, images_probe
):
    model = seeded_model("lenet", "digits", 3).eval()
    path = signature_file(
        "penultimate_cka", checkpoint(tmp_path, "l", model), images_probe, tmp_path / "l.h5"
    )
    features = read_signature(path).data
    images = torch.as_tensor(read_probe(images_probe).arrays["images"])
    relu4 = capture(model, images, ["relu4"])["relu4"].numpy()  # LeNet's fc3 reads relu4
    np.testing.assert_allclose(features, relu4, rtol=1e-5, atol=1e-6)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(84, 84)))
    assert cka_distance(features, 2.0 * features @ rotation) == pytest.approx(0.0, abs=1e-9)


def test_a_model_and_its_copy_are_closer_than_two_seeds_for_every_baseline(tmp_path, images_probe):
    a = seeded_model("lenet", "digits", 0)
    copy = seeded_model("lenet", "digits", 0)
    with torch.no_grad():
        for p in copy.parameters():
            p.mul_(1.0 + 0.01 * torch.randn_like(p))
    other = seeded_model("lenet", "digits", 1)
    paths = {n: checkpoint(tmp_path, n, m) for n, m in (("a", a), ("copy", copy), ("other", other))}
    for method in ("weights", "outputs", "output_correlation", "penultimate_cka"):
        probe = None if method == "weights" else images_probe  # one probe of images serves all
        sigs = [
            read_signature(signature_file(method, p, probe, tmp_path / f"{method}_{n}.h5"))
            for n, p in paths.items()
        ]
        headline = get_method(method).headline.metric
        matrix = get_method(method).pairwise(sigs)[headline]
        assert matrix[0, 1] < matrix[0, 2], method
