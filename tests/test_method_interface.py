"""The signature-method interface: a new method is one class and one registry entry.

A toy method (each model's mean logit vector over a probe of images, compared by Euclidean
distance) is defined here, registered, computed for a small model collection, and run through
the distance stage, which writes its table with the relations, the references and the values
numpy computes independently.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelkin.checkpoint import save_checkpoint
from modelkin.data import load_split
from modelkin.distances.tables import distance_stage
from modelkin.io import read_json
from modelkin.models import seeded_model
from modelkin.signatures import (
    METHODS,
    Computed,
    Distance,
    SignatureError,
    SignatureMethod,
    get_method,
    read_probe,
    read_signature,
    register_method,
    write_probe,
)
from modelkin.signatures.compute import signature_file
from modelkin.signatures.registry import unregister_method


def _euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class MeanLogits(SignatureMethod):
    """A model's mean logit per class over the probe's images."""

    name = "toy_mean_logits"
    description = "mean logit per class over a probe of images"
    needs = frozenset({"logits"})
    axes = ("class",)
    probe_kind = "toy_images"
    probe_keys = ("n_images",)
    distances = (
        Distance(
            "toy_mean_logits", "l2", _euclidean, False, True, True, (0.0, math.inf), "Euclidean"
        ),
    )

    def make_probe(self, prepared, output, n_images: int = 16) -> Path:
        split = load_split(prepared, "test", limit=n_images)
        params = {"n_images": n_images, "input_shape": list(split.x.shape[1:])}
        return write_probe(output, {"images": split.x.numpy()}, kind=self.probe_kind, params=params)

    def compute(self, model, probe, *, device, chunk_size=None, **settings) -> Computed:
        with torch.no_grad():
            logits = model(torch.as_tensor(probe.arrays["images"], device=device))
        return Computed(logits.mean(0).cpu().numpy(), {"reduction": "mean"})


@pytest.fixture()
def toy_method():
    method = register_method(MeanLogits())
    yield method
    unregister_method(method.name)
    assert method.name not in METHODS


def checkpoint(root: Path, name: str, model: torch.nn.Module, **meta) -> Path:
    base = {"name": name, "arch": "mlp", "dataset": "digits", "num_classes": 10}
    return save_checkpoint(root / f"{name.replace('/', '_')}.safetensors", model, {**base, **meta})


def test_a_registered_method_runs_through_the_distance_stage(toy_method, digits_file, tmp_path):
    assert get_method("toy_mean_logits") is toy_method
    probe = toy_method.make_probe(digits_file, tmp_path / "probe.h5", n_images=8)

    zoo = {f"digits/mlp/standard/i{s}-d{s}": seeded_model("mlp", "digits", s) for s in range(3)}
    parent = "digits/mlp/standard/i0-d0"
    child = f"derived/digits/finetune/{parent}/s0"
    copy = seeded_model("mlp", "digits", 0)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    paths = {
        name: checkpoint(tmp_path, name, model, algorithm="standard", init_seed=s, data_seed=s)
        for s, (name, model) in enumerate(zoo.items())
    }
    paths[child] = checkpoint(
        tmp_path, child, copy, algorithm="finetune", derivation="finetune", parent=parent,
        root_algorithm="standard", init_seed=1001, data_seed=1002,
    )  # fmt: skip

    signatures = {
        name: signature_file("toy_mean_logits", path, probe, tmp_path / f"{i}.h5", device="cpu")
        for i, (name, path) in enumerate(paths.items())
    }
    table = distance_stage(
        "toy_mean_logits",
        list(signatures),
        list(signatures.values()),
        tmp_path / "toy.csv",
        tmp_path / "toy_reference.json",
        calibration={"min_families": 3, "min_partners": 1},
    )
    frame = pd.read_csv(tmp_path / "toy.csv")
    assert len(frame) == len(table.rows) == 6

    images = torch.as_tensor(read_probe(probe).arrays["images"])
    models = {**zoo, child: copy}
    with torch.no_grad():
        expected = {name: m.eval()(images).mean(0).numpy() for name, m in models.items()}
    for a, b in itertools.combinations(paths, 2):
        row = frame[(frame.model_a == a) & (frame.model_b == b)].iloc[0]
        assert row["l2"] == pytest.approx(_euclidean(expected[a], expected[b]), rel=1e-5)
    relation = frame.set_index(["model_a", "model_b"])["relation"]
    assert relation[(parent, child)] == "derived-by-finetune"
    assert relation[("digits/mlp/standard/i1-d1", "digits/mlp/standard/i2-d2")] == "independent"
    reference = read_json(tmp_path / "toy_reference.json")
    setting = reference["references"]["digits:mlp/standard~mlp/standard"]["l2"]
    assert setting["n"] == 5 and reference["method"] == "toy_mean_logits"  # with the child's
    # The signature files carry the lineage the table used: no checkpoint was read for it.
    assert read_signature(signatures[child]).lineage.parent == parent


def test_every_method_gets_the_same_checks(toy_method, digits_file, tmp_path):
    probe = toy_method.make_probe(digits_file, tmp_path / "probe.h5", n_images=4)
    broken = seeded_model("mlp", "digits", 0)
    with torch.no_grad():
        broken.fc3.bias[2] = float("nan")
    path = checkpoint(tmp_path, "digits/mlp/standard/i0-d0", broken)
    for method, probe_file in (("toy_mean_logits", probe), ("zest", None), ("gradfield", None)):
        if probe_file is None:
            settings = {"n_images": 2, "n_samples": 10} if method == "zest" else {}
            if method == "gradfield":
                settings = {"candidates": {"n_points": 2}}
            probe_file = get_method(method).make_probe(
                digits_file, tmp_path / f"{method}.h5", **settings
            )
        with pytest.raises(SignatureError, match="non-finite outputs on the probe.*class 2"):
            signature_file(method, path, probe_file, tmp_path / f"{method}_sig.h5", device="cpu")
        assert not (tmp_path / f"{method}_sig.h5").exists()
