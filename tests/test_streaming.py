"""Bounded memory (issue 13): every streamed result equals the in-memory one on small data.

TRAK features and scores written block by block; ModelGiF fields streamed into chunked files and
compared block by block from disk; minibatch CKA streamed over a probe; the stitching front cache
spilled to disk. Budgets far below the data force many blocks.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from modelkin.attribution import TrakSettings, ensemble_scores, featurize
from modelkin.attribution.store import FEATURES_KIND, SCORES_KIND, streamed_arrays
from modelkin.attribution.streaming import featurize_to_file, scores_to_file
from modelkin.checkpoint import save_checkpoint
from modelkin.config import memory_budget_bytes, schema_default
from modelkin.data import load_split
from modelkin.hdf5 import StoredArray, create_empty_dataset
from modelkin.measures import debiased_linear_cka, linear_cka, minibatch_cka
from modelkin.models import seeded_model
from modelkin.signatures import get_method, read_signature
from modelkin.signatures.base import auto_chunk
from modelkin.signatures.compute import signature_file
from modelkin.signatures.gradfield.distance import gradfield_pairwise
from modelkin.signatures.gradfield.extract import GradientField, storage_chunks
from modelkin.signatures.gradfield.probe import gradfield_candidates_file, load_gradfield_probe
from modelkin.similarity import compare_layers
from modelkin.similarity.streaming import streamed_minibatch_cka
from modelkin.stitching import StitchOptions, build_stitched, initialise, train_stitcher
from modelkin.stitching.cache import cache_plan

CPU = torch.device("cpu")
KB = 1e-3  # memory_budget_mb of one kilobyte: every stage streams in its smallest blocks


def test_the_budget_has_one_source_the_schema():
    assert schema_default("memory_budget_mb") == 8000
    assert memory_budget_bytes() == 8_000_000_000
    assert memory_budget_bytes(2.5) == 2_500_000


# ---------------------------------------------------------------------------------------------
# TRAK


def tiny_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    ).eval()


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    return centres[y] + 0.8 * torch.randn(n, 1, 8, 8, generator=g), y


def _features_file(path, model, train, targets, settings, index, memory_bytes):
    axes = {"train_features": ("train", "p"), "target_grads": ("target", "p"), "q": ("train",)}
    with streamed_arrays(path, kind=FEATURES_KIND, method="trak", params={}, axes=axes) as writer:
        q, info = featurize_to_file(
            writer,
            model,
            train,
            targets,
            settings,
            checkpoint_index=index,
            device=CPU,
            memory_bytes=memory_bytes,
        )
        writer.write("q", q)
        writer.attrs["info"] = info
    return q, info


@pytest.mark.parametrize("max_projection_mib", [1024.0, 0.05])  # one or several parameter groups
def test_trak_features_and_scores_streamed_equal_in_memory(tmp_path, max_projection_mib):
    train, targets = blobs(300, 0), blobs(70, 1)
    settings = TrakSettings(proj_dim=40, batch_size=32, max_projection_mib=max_projection_mib)
    models = [tiny_cnn(0), tiny_cnn(1)]
    in_memory = [
        featurize(m, train, targets, settings, checkpoint_index=i, device="cpu")
        for i, m in enumerate(models)
    ]
    paths = []
    for i, model in enumerate(models):
        path = tmp_path / f"f{i}.h5"
        # 1 kB of budget: blocks of the minimum 64 rows, so 300 rows take 5 blocks
        q, info = _features_file(path, model, train, targets, settings, i, 1000)
        with h5py.File(path) as handle:
            np.testing.assert_allclose(
                handle["train_features"][()], in_memory[i].train_features.numpy(), rtol=2e-5,
                atol=1e-7,
            )  # fmt: skip
            np.testing.assert_allclose(
                handle["target_grads"][()], in_memory[i].target_grads.numpy(), rtol=1e-6, atol=1e-9
            )
            # the file format of the workflow: out_to_loss under its own name
        np.testing.assert_allclose(q, in_memory[i].out_to_loss.numpy(), rtol=1e-6)
        assert info["parameter_groups"] == in_memory[i].info["parameter_groups"]
        assert info["inverse_scale"] == pytest.approx(in_memory[i].info["inverse_scale"], rel=1e-9)
        # the scores reader expects out_to_loss
        with h5py.File(path, "a") as handle:
            handle["out_to_loss"] = q
        paths.append(path)
    for out_to_loss in (True, False):
        expected = ensemble_scores(in_memory, out_to_loss=out_to_loss).numpy()
        axes = {"scores": ("train", "target")}
        for budget in (1000, 10**9):  # blocks of rows and of targets, or one block
            out = tmp_path / f"s{out_to_loss}{budget}.h5"
            with streamed_arrays(
                out, kind=SCORES_KIND, method="trak", params={}, axes=axes
            ) as writer:
                q = scores_to_file(writer, paths, out_to_loss=out_to_loss, memory_bytes=budget)
            with h5py.File(out) as handle:
                np.testing.assert_allclose(handle["scores"][()], expected, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(
                q, torch.stack([f.out_to_loss for f in in_memory]).double().mean(0), rtol=1e-6
            )


def test_a_streamed_file_with_non_finite_values_never_appears(tmp_path):
    path = tmp_path / "bad.h5"
    with pytest.raises(ValueError, match="non-finite"):
        with streamed_arrays(
            path, kind=SCORES_KIND, method="trak", params={}, axes={"x": ("a",)}
        ) as writer:
            writer.write("x", np.array([1.0, np.nan]))
    assert not path.exists()


def test_streamed_attribution_arrays_are_chunked_but_not_compressed(tmp_path):
    """Projected gradients and scores are float noise: gzip saved 14% at 50x the write time, most
    of a GPU's TRAK time at CIFAR-10 scale."""
    path = tmp_path / "features.h5"
    noise = np.random.default_rng(0).standard_normal((600, 512)).astype(np.float32)
    with streamed_arrays(
        path, kind=FEATURES_KIND, method="trak", params={}, axes={"x": ("a", "p")}
    ) as writer:
        dataset = writer.create("x", noise.shape)
        dataset[:] = noise
    with h5py.File(path) as handle:
        assert handle["x"].compression is None
        assert handle["x"].chunks is not None
        np.testing.assert_array_equal(handle["x"][:], noise)


# ---------------------------------------------------------------------------------------------
# ModelGiF


@pytest.fixture(scope="module")
def gradfield_case(tmp_path_factory, digits_file):
    root = tmp_path_factory.mktemp("gradfield")
    probe = gradfield_candidates_file(digits_file, root / "probe.h5", split="train", n_points=5)
    paths = []
    for seed in range(3):
        model = seeded_model("lenet", "digits", seed).eval()
        meta = {"name": f"digits/lenet/standard/i{seed}-d{seed}", "arch": "lenet",
                "dataset": "digits", "num_classes": 10}  # fmt: skip
        checkpoint = save_checkpoint(root / f"m{seed}.safetensors", model, meta)
        paths.append(
            signature_file(
                "gradfield",
                checkpoint,
                probe,
                root / f"s{seed}.h5",
                n_steps=8,
                device="cpu",
                chunk_size=16,
            )  # fmt: skip
        )
    return root, probe, paths


def test_gradfield_streams_into_a_chunked_file_equal_to_the_in_memory_field(gradfield_case):
    root, probe_path, paths = gradfield_case
    probe = load_gradfield_probe(probe_path)
    model = seeded_model("lenet", "digits", 0).eval()
    sig = read_signature(paths[0])
    direct = GradientField(8, torch.from_numpy(probe.baseline), device="cpu").signature(
        model, torch.from_numpy(probe.points), torch.as_tensor(sig.extras["targets"])
    )
    np.testing.assert_allclose(sig.data, direct, atol=1e-6)
    assert sig.params["precision"] == "fp32" and sig.params["field_dtype"] == "float32"
    # A field over 1 MiB is chunked by point (and by step at ImageNet size) and compressed.
    assert storage_chunks((128, 50, 1024), 4) == (1, 50, 1024)
    assert storage_chunks((128, 50, 3 * 224 * 224), 4) == (1, 1, 3 * 224 * 224)
    with h5py.File(root / "chunks.h5", "w") as handle:
        dataset = create_empty_dataset(
            handle, "signature", (8, 50, 1024), np.float32, chunks=(1, 50, 1024)
        )
        assert dataset.chunks == (1, 50, 1024) and dataset.compression == "gzip"


def test_float16_fields_are_half_the_size_and_near_the_float32_distances(gradfield_case, tmp_path):
    root, probe, paths = gradfield_case
    halves = []
    for seed in range(3):
        halves.append(
            signature_file(
                "gradfield",
                root / f"m{seed}.safetensors",
                probe,
                tmp_path / f"h{seed}.h5",
                n_steps=8,
                device="cpu",
                field_dtype="float16",
            )  # fmt: skip
        )
    full = [read_signature(p).data for p in paths]
    half = [read_signature(p) for p in halves]
    assert half[0].data.dtype == np.float16 and half[0].params["field_dtype"] == "float16"
    np.testing.assert_allclose(half[0].data.astype(np.float32), full[0], rtol=2e-3, atol=1e-6)
    a = gradfield_pairwise(full)
    b = gradfield_pairwise([h.data for h in half])
    for metric in a:
        np.testing.assert_allclose(b[metric], a[metric], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("chunk_bytes", [1, 3 * 3 * 1024 * 8 * 3, 1 << 30])
def test_gradfield_distances_from_disk_block_by_block_equal_in_memory(gradfield_case, chunk_bytes):
    """1 byte: one step of one point per block; one point's 8 steps need 3*3*1024*8*8 bytes, so
    the middle budget splits each point into blocks of 3 steps; 1 GiB: all points at once."""
    _, _, paths = gradfield_case
    in_memory = gradfield_pairwise([read_signature(p).data for p in paths])
    lazy = [read_signature(p, lazy=True).data for p in paths]
    assert all(isinstance(f, StoredArray) for f in lazy)
    streamed = gradfield_pairwise(lazy, chunk_bytes=chunk_bytes)
    for metric, matrix in in_memory.items():
        np.testing.assert_allclose(streamed[metric], matrix, rtol=1e-12, atol=1e-13)
    method = get_method("gradfield")
    tiny = method.pairwise(lazy, memory_bytes=1000)
    for metric, matrix in in_memory.items():
        np.testing.assert_allclose(tiny[metric], matrix, rtol=1e-12, atol=1e-13)


def test_automatic_chunks_shrink_with_the_input_size():
    sizes = {"cpu": 128, "cuda": 4096}
    assert auto_chunk(sizes, "cpu", (1, 32, 32)) == auto_chunk(sizes, "cpu", (3, 32, 32)) == 128
    assert auto_chunk(sizes, "cpu", (3, 224, 224)) == 2  # 128 / 49
    assert auto_chunk(sizes, "cuda", (3, 224, 224)) == 83
    assert auto_chunk(sizes, "cpu", (3, 1024, 1024)) == 1  # never 0


# ---------------------------------------------------------------------------------------------
# Minibatch CKA


def test_minibatch_cka_with_one_batch_is_debiased_cka_and_near_linear_cka_for_many_samples():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 30))
    Y = X @ rng.standard_normal((30, 20)) + 0.5 * rng.standard_normal((60, 20))
    assert minibatch_cka(X, Y, batch_size=60) == pytest.approx(debiased_linear_cka(X, Y), abs=1e-12)
    assert minibatch_cka(X, Y, batch_size=1000) == pytest.approx(
        debiased_linear_cka(X, Y), abs=1e-12
    )
    # invariances: orthogonal maps, isotropic scaling, translation of either side
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    assert minibatch_cka(3.0 * X @ Q + 2.0, Y, 16) == pytest.approx(minibatch_cka(X, Y, 16))
    # n >> p: the estimator and the biased in-memory CKA agree
    X = rng.standard_normal((4000, 8))
    Y = np.tanh(X @ rng.standard_normal((8, 6))) + 0.3 * rng.standard_normal((4000, 6))
    assert minibatch_cka(X, Y, batch_size=256) == pytest.approx(linear_cka(X, Y), abs=0.02)
    with pytest.raises(ValueError, match="batch_size >= 4"):
        minibatch_cka(X, Y, batch_size=3)


def test_streamed_minibatch_cka_equals_the_in_memory_estimator(digits_file):
    probe = load_split(digits_file, "test", limit=90).x
    a, b = seeded_model("lenet", "digits", 0).eval(), seeded_model("lenet", "digits", 1).eval()
    layers = ["relu1", "relu3"]
    streamed = streamed_minibatch_cka(a, b, probe, layers, layers, batch_size=32, device="cpu")
    from modelkin.models.layers import capture

    with torch.no_grad():
        acts_a, acts_b = capture(a, probe, layers), capture(b, probe, layers)
    for la in layers:
        for lb in layers:
            X = acts_a[la].reshape(90, -1).double().numpy()
            Y = acts_b[lb].reshape(90, -1).double().numpy()
            # 90 = 32 + 32 + 26: three batches, as the stream saw them
            assert streamed[(la, lb)] == pytest.approx(minibatch_cka(X, Y, 32), abs=1e-10)


def test_compare_layers_streams_when_the_activations_exceed_the_budget(digits_file):
    probe = load_split(digits_file, "test", limit=40).x
    a, b = seeded_model("lenet", "digits", 0).eval(), seeded_model("lenet", "digits", 1).eval()
    options = {"device": "cpu", "measure_params": {"minibatch_cka": {"batch_size": 20}}}
    held = compare_layers(a, b, probe, ["relu2"], ["relu2"], ["cka", "minibatch_cka"], **options)
    streamed = compare_layers(
        a, b, probe, ["relu2"], ["relu2"], ["cka", "minibatch_cka"], memory_budget_mb=KB,
        **options,
    )  # fmt: skip
    value = lambda t, m: float(t.loc[t.measure == m, "value"].iloc[0])  # noqa: E731
    assert value(streamed, "minibatch_cka") == pytest.approx(value(held, "minibatch_cka"), 1e-10)
    cka = streamed[streamed.measure == "cka"].iloc[0]
    assert cka.status == "skipped" and "over the memory budget" in cka.reason
    assert "streamed" in streamed.sampling.iloc[0]
    always = compare_layers(
        a, b, probe, ["relu2"], ["relu2"], ["cka"], streaming="always", **options
    )
    assert value(always, "minibatch_cka") == pytest.approx(value(held, "minibatch_cka"), 1e-10)
    with pytest.raises(ValueError, match="spatial mode"):
        compare_layers(
            a, b, probe, ["relu2"], ["relu2"], ["cka"], conv_mode="spatial", memory_budget_mb=KB,
            **options,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Stitching


def test_a_front_cache_spilled_to_disk_trains_exactly_as_in_memory(digits_file):
    train = load_split(digits_file, "train", limit=96)
    options = StitchOptions.from_dict(
        {"epochs": 1, "batch_size": 32, "lr": 0.01, "target_type": "soft_12", "cka_reg": 0.5}
    )
    runs = {}
    for cache in ("memory", "disk"):
        m1, m2 = (
            seeded_model("lenet", "digits", 0).eval(),
            seeded_model("lenet", "digits", 1).eval(),
        )
        stitched = build_stitched(m1, "relu2", m2, "relu2")
        initialise(stitched.stitch, "random", generator=torch.Generator().manual_seed(7))
        log = train_stitcher(stitched, train, options, device=CPU, cache=cache)
        assert log.front_cache == cache and log.cached_front
        runs[cache] = (log.step_loss, [p.detach().clone() for p in stitched.stitch.parameters()])
    np.testing.assert_allclose(runs["disk"][0], runs["memory"][0], rtol=1e-6)
    for a, b in zip(runs["disk"][1], runs["memory"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # auto: in memory within the budget, spilled beyond it
    stitched = build_stitched(m1, "relu2", m2, "relu2")
    assert cache_plan(stitched, len(train), options, CPU) == "memory"
    assert cache_plan(stitched, len(train), options, CPU, memory_budget_mb=KB) == "disk"
    log = train_stitcher(stitched, train, options, device=CPU, memory_budget_mb=KB)
    assert log.front_cache == "disk"
