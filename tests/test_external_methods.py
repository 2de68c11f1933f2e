"""Models from torchvision, timm and a user's factory through every comparison method.

Each model source (torchvision resnet18 and mobilenet_v3_small, a small torchvision
VisionTransformer built through the ``factory:`` path, and timm's resnet10t) goes through Zest,
ModelGiF, layer similarity and stitching, with its own layer names, on a user data set (the
bundled digits as a 3-channel NPZ, a few hundred 32x32 images). The models are untrained, so the
checks are known answers rather than accuracies:

- a signature computed twice is the same (distance 0), and the signature of a slightly
  perturbed copy is much closer than that of an independently initialised model of the source;
- linear CKA of a layer with itself is 1;
- a model stitched to itself through an identity stitching layer gives the model's logits, and
  a short stitching run of two different models completes, recording how the end was run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelkin.checkpoint import load_checkpoint, save_checkpoint
from modelkin.data import load_split, prepare_dataset
from modelkin.data_sources import forget_config_datasets, register_config_datasets
from modelkin.distances.compare import make_probe, signature_distances
from modelkin.models.external import build_external
from modelkin.models.layers import end_plan
from modelkin.models.preprocessing import Preprocessing
from modelkin.signatures import get_method, read_signature
from modelkin.signatures.compute import signature_file
from modelkin.similarity import compare_checkpoints_layers
from modelkin.stitching import build_stitched, initialise, load_stitched, stitch_models

pytest.importorskip("timm")

DATASET = "digits3"
TRAIN, TEST = 200, 64  # images per split of the user data set
VIT = "torchvision.models.vision_transformer:VisionTransformer"
VIT_KWARGS = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2}
VIT_KWARGS |= {"hidden_dim": 32, "mlp_dim": 64}


@dataclass(frozen=True)
class Case:
    source: str
    kwargs: dict[str, Any] | None
    layers: tuple[str, ...]  # compared with themselves by CKA
    identity_layer: str  # stitched to itself through an identity T
    identity_end: str  # how the end runs there: "split" (torch.fx) or "hooks" (whole model)
    train_layer: str  # where two different models are stitched and T trained
    train_end: str
    flatten: bool = False  # a token sequence (L, D) is stitched by a linear map on L*D features
    zero_head: str | None = None  # a head initialised to zero (constant logits) is redrawn


CASES = {
    "resnet18": Case(
        "torchvision:resnet18", None, ("layer2.1", "layer3.1.conv2"),
        "layer3.1.conv2", "hooks", "layer2.1", "split",
    ),
    "mobilenet_v3_small": Case(
        "torchvision:mobilenet_v3_small", None, ("features.4", "features.6.block.2"),
        "features.6.block.2", "hooks", "features.4", "split",
    ),
    "vit": Case(
        f"factory:{VIT}", VIT_KWARGS,
        ("encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1.mlp"),
        "encoder.layers.encoder_layer_1.mlp", "hooks", "encoder.layers.encoder_layer_0", "split",
        flatten=True, zero_head="heads.head",
    ),
    "timm_resnet10t": Case(
        "timm:resnet10t", None, ("layer2", "layer3.0.conv2"),
        "layer3.0.conv2", "hooks", "layer2", "split",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The bundled digits as a user data set of 3-channel 32x32 images (an NPZ file), prepared."""
    from modelkin.data import _digits_arrays

    root = tmp_path_factory.mktemp("external-methods-data")
    arrays = _digits_arrays()
    limits = {"train": TRAIN, "test": TEST}
    npz = {}
    for split, n in limits.items():
        npz[f"{split}_x"] = np.repeat(arrays[f"{split}_x"][:n], 3, axis=1)  # (N, 3, 32, 32)
        npz[f"{split}_y"] = arrays[f"{split}_y"][:n]
    np.savez(root / "digits3.npz", **npz)
    register_config_datasets(
        {"datasets": {DATASET: {"source": "npz", "path": str(root / "digits3.npz")}}}
    )
    try:
        yield prepare_dataset(DATASET, root / f"{DATASET}.safetensors")
    finally:
        forget_config_datasets()


def _checkpoint(path: Path, case: Case, seed: int, perturb_from: Path | None = None) -> Path:
    """An untrained model of ``case`` (initialised with ``seed``) bound to the data set, or a copy
    of ``perturb_from`` whose parameters are moved by 0.1% of each tensor's spread."""
    torch.manual_seed(seed)
    pre = Preprocessing(channels=3)  # the data set's 32x32 images as given, values in [0, 1]
    model = build_external(case.source, 10, pre, case.kwargs, image_size=(32, 32))
    if case.zero_head is not None:  # torchvision's ViT starts with a zero head: logits all 0
        head = model.net.get_submodule(case.zero_head)
        torch.nn.init.normal_(head.weight, std=0.02)
    if perturb_from is not None:
        model.load_state_dict(load_checkpoint(perturb_from).model.state_dict())
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                spread = p.std() if p.numel() > 1 else p.abs()
                p.add_(1e-3 * spread * torch.randn(p.shape, generator=gen))
    meta = {"dataset": DATASET, "algorithm": "imported", "name": f"{path.stem}"}
    return save_checkpoint(path, model, meta)


@pytest.fixture(scope="module", params=list(CASES))
def models(request, tmp_path_factory, data) -> tuple[Case, dict[str, Path]]:
    """Per source: ``base``, its perturbed ``copy`` and an ``independent`` model."""
    case = CASES[request.param]
    root = tmp_path_factory.mktemp(f"external-{request.param}")
    base = _checkpoint(root / "base.safetensors", case, 0)
    return case, {
        "base": base,
        "copy": _checkpoint(root / "copy.safetensors", case, 2, perturb_from=base),
        "independent": _checkpoint(root / "independent.safetensors", case, 1),
    }


def _signatures(method: str, probe: Path, models: dict[str, Path], out: Path, **settings):
    paths = {
        key: signature_file(method, models[key], probe, out / f"{method}_{key}.h5", **settings)
        for key in ("base", "copy", "independent")
    }
    paths["again"] = signature_file(
        method, models["base"], probe, out / f"{method}_again.h5", **settings
    )
    return {key: read_signature(p) for key, p in paths.items()}


def _check_signatures(signatures) -> None:
    np.testing.assert_array_equal(np.asarray(signatures["again"].data), signatures["base"].data)
    same = signature_distances(signatures["base"], signatures["again"])
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values()), same
    copy = signature_distances(signatures["base"], signatures["copy"])["cos"]
    independent = signature_distances(signatures["base"], signatures["independent"])["cos"]
    assert copy < 0.1 * independent, (copy, independent)


def test_zest(models, data, tmp_path):
    case, paths = models
    probe = make_probe("zest", data, tmp_path / "probe.h5", split="test", n_images=3, n_samples=32)
    signatures = _signatures("zest", probe, paths, tmp_path, device="cpu")
    assert signatures["base"].data.shape[1] == 10
    _check_signatures(signatures)


def test_modelgif(models, data, tmp_path):
    case, paths = models
    probe = make_probe("gradfield", data, tmp_path / "probe.h5", split="test", n_points=3)
    signatures = _signatures(
        "gradfield", probe, paths, tmp_path, device="cpu", n_steps=3, target="label"
    )
    assert signatures["base"].data.shape == (3, 3, 3 * 32 * 32)
    _check_signatures(signatures)


def test_layer_similarity_of_a_model_with_itself(models, data):
    case, paths = models
    table = compare_checkpoints_layers(
        paths["base"], paths["base"], data, list(case.layers), list(case.layers),
        ["cka"], n_images=32, device="cpu", streaming="never",
    )  # fmt: skip
    assert len(table) == len(case.layers) ** 2 and set(table["status"]) == {"ok"}
    same = table[table["layer_a"] == table["layer_b"]]
    assert sorted(same["layer_a"]) == sorted(case.layers)
    np.testing.assert_allclose(same["value"], 1.0, rtol=0, atol=1e-6)


FAST = {"epochs": 1, "batch_size": 50, "measure_images": 16, "robust_eval": False}


def test_stitching_a_model_to_itself_through_the_identity(models, data, tmp_path):
    case, paths = models
    layer = case.identity_layer
    ckpt = load_checkpoint(paths["base"])
    x = load_split(data, "test", limit=32).x
    with torch.no_grad():
        want = ckpt.model(x)
    for at, end in ((layer, case.identity_end), (case.train_layer, case.train_end)):
        stitched = build_stitched(ckpt.model, at, ckpt.model, at, flatten=case.flatten)
        initialise(stitched.stitch, "eye", generator=torch.Generator().manual_seed(0))
        assert stitched.end_plan.mode == end
        with torch.no_grad():
            torch.testing.assert_close(stitched.eval()(x), want, rtol=1e-5, atol=1e-5)

    out = tmp_path / "identity.json"
    options = {**FAST, "init": "eye", "train_limit": 50, "ps_inv": False, "flatten": case.flatten}
    payload = stitch_models(
        paths["base"], paths["base"], layer, layer, output=out, data=[data], options=options,
        device="cpu",
    )  # fmt: skip
    assert payload["execution"]["end"] == case.identity_end
    assert layer in payload["execution"]["end_reason"]
    evaluation = payload["evaluations"][DATASET]
    assert evaluation["before"]["agreement_with_model2"] == 1.0
    assert evaluation["before"]["accuracy"] == evaluation["model2"]["accuracy"]
    assert evaluation["similarity"]["before_vs_model2"]["cka"] == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        reloaded = load_stitched(out, "before")(x)
    torch.testing.assert_close(reloaded, want, rtol=1e-5, atol=1e-5)


def test_stitching_two_different_models_trains(models, data, tmp_path):
    case, paths = models
    layer = case.train_layer
    options = {**FAST, "train_limit": 200, "flatten": case.flatten}
    payload = stitch_models(
        paths["base"], paths["independent"], layer, layer, output=tmp_path / "run.json",
        data=[data], options=options, device="cpu",
    )  # fmt: skip
    base = load_checkpoint(paths["base"]).model
    assert payload["execution"]["end"] == case.train_end == end_plan(base, layer).mode
    assert len(payload["training"]["epochs"]) == 1 and payload["training"]["steps"] == 4
    assert 0.0 <= payload["training"]["epochs"][0]["train_accuracy"] <= 1.0
    assert payload["model1"]["layer"] == payload["model2"]["layer"] == layer
    evaluation = payload["evaluations"][DATASET]
    assert evaluation["test_images"] == TEST
    for variant in ("before", "after", "ps_inv", "model1", "model2"):
        assert 0.0 <= evaluation[variant]["accuracy"] <= 1.0


# ---------------------------------------------------------------------------------------------
# Model sources where the library used to expect a zoo model


def _vit_checkpoint(path: Path, dataset: str, image_size: tuple[int, int], seed: int) -> Path:
    torch.manual_seed(seed)
    pre = Preprocessing(input_size=(32, 32), channels=3)
    model = build_external(f"factory:{VIT}", 10, pre, VIT_KWARGS, image_size=image_size)
    torch.nn.init.normal_(model.net.heads.head.weight, std=0.02)
    return save_checkpoint(path, model, {"dataset": dataset, "name": path.stem})


def test_compare_checkpoints_bound_to_user_data_sets(data, tmp_path):
    """Two data sets' names differ: their image shapes are compared as the checkpoints record
    them, also for a user data set that is not registered in this process."""
    from modelkin.distances import compare_checkpoints
    from modelkin.errors import InputError

    mine = _vit_checkpoint(tmp_path / "mine.safetensors", DATASET, (32, 32), 0)
    theirs = _vit_checkpoint(tmp_path / "theirs.safetensors", "not_registered_here", (32, 32), 1)
    probe_options = {"split": "test", "n_images": 2, "n_samples": 16}
    comparison = compare_checkpoints(
        mine, theirs, method="zest", data=data, probe_options=probe_options, device="cpu"
    )
    assert 0.0 < comparison.distances["cos"] <= 2.0
    small = _vit_checkpoint(tmp_path / "small.safetensors", "small_images", (16, 16), 2)
    with pytest.raises(InputError, match=r"3x32x32 images\) and .*3x16x16 images\) take inputs"):
        compare_checkpoints(mine, small, method="zest", data=data, probe_options=probe_options)


def test_layers_of_a_model_source_from_the_command_line(capsys):
    import json

    from modelkin.cli import main

    assert main(["layers", "torchvision:resnet18", "--dataset", "digits", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {r["name"]: r for r in json.loads(captured.out)}
    assert (
        rows["layer3.1.conv2"]["shape"] == [256, 2, 2] and not rows["layer3.1.conv2"]["cut_point"]
    )
    assert rows["layer2.1"]["cut_point"] and rows["fc"]["shape"] == [10]
    assert "takes 3-channel images, digits has 1-channel ones" in captured.err
    vit = ["layers", VIT, "--kwargs", json.dumps(VIT_KWARGS), "--dataset", "cifar10"]
    assert main([*vit, "--num-classes", "7", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["encoder.layers.encoder_layer_1.mlp"]["shape"] == [17, 32]
    assert rows["heads.head"]["shape"] == [7]
    assert main(["layers", "timm:resnet10t", "--dataset", "nowhere"]) == 1
    assert "give --num-classes" in capsys.readouterr().err
    assert main(["layers", "lenet", "--kwargs", "{}"]) == 1
    assert "only apply to a model source" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_models_of_different_architectures_compare_on_one_probe(method, data, tmp_path):
    """Zest and ModelGiF compare behaviour on the same inputs, so a resnet18 and a
    mobilenet_v3_small of the same data set and classes have finite distances; the weight-space
    baseline has none across architectures ("not comparable" in a question)."""
    settings = (
        {"split": "test", "n_images": 3, "n_samples": 32}
        if method == "zest"
        else {"split": "test", "n_points": 3}
    )
    probe = make_probe(method, data, tmp_path / "probe.h5", **settings)
    extra = {} if method == "zest" else {"n_steps": 3, "target": "label"}
    resnet = _checkpoint(tmp_path / "resnet.safetensors", CASES["resnet18"], 0)
    mobilenet = _checkpoint(tmp_path / "mobilenet.safetensors", CASES["mobilenet_v3_small"], 0)
    signatures = [
        read_signature(signature_file(method, path, probe, tmp_path / f"{path.stem}.h5",
                                      device="cpu", **extra))
        for path in (resnet, mobilenet)
    ]  # fmt: skip
    distances = signature_distances(*signatures)
    assert all(np.isfinite(v) and v > 0 for v in distances.values()), distances
    weights = [
        read_signature(signature_file("weights", path, None, tmp_path / f"w_{path.stem}.h5"))
        for path in (resnet, mobilenet)
    ]
    entry = get_method("weights")
    assert np.isnan(entry.pair_distance(entry.headline, *weights))
