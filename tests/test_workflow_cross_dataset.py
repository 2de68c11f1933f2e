"""A transfer to another data set, compared with its parent through Snakemake.

The second data set is the digits with their grey values inverted (255 - x), written by the
test as an npz file whose classes have the digits' names. Two parents are transferred to it; each
transfer's own signatures are on the inverted digits' probe, and its guest signatures on the
digits' probe, where the distance tables compare it with its parent (``transfer@digits_inv``)
and judge it against the other parents' and the reference models' unrelated pairs of the same
setting (``lenet/standard~lenet/standard@digits_inv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import run_snakemake
from modelkin.signatures import read_signature

pytestmark = pytest.mark.workflow

CONFIG = """\
results: results
device: cpu
datasets:
  digits_inv: {source: npz, path: digits_inv.npz, mean: [0.6947], std: [0.3236]}
zoo: {datasets: [digits], architectures: [lenet], algorithms: [standard], seeds: [0, 1, 2]}
training:
  base: {optimizer: adam, lr: 0.003, epochs: 2, batch_size: 16, train_limit: 400}
zest: {n_images: 12, n_samples: 120, kernel_size: 3, chunk_size: 512}
gradfield:
  n_steps: 10
  candidates: {n_points: 16}
  reference_points: 6
  selection_seeds: [100, 101]
  k_sweep: [6]
  chunk_size: 512
outputs: {n_images: 100}
derived:
  parents: [digits/lenet/standard/i0-d0, digits/lenet/standard/i1-d1]
  derivations:
    to_inverted: {kind: transfer, dataset: digits_inv, recipe: {epochs: 1}}
distances:
  methods: [zest, gradfield, outputs]
  reference_models: [{dataset: digits, arch: lenet, seeds: [3]}]
  calibration: {min_families: 3, min_partners: 1}
  on_insufficient_reference: warn
modeldiff: {run_by_default: false}
"""
TRANSFER = "derived/digits_inv/to_inverted/digits/lenet/standard/i{}-d{}/s0"
PARENT = "digits/lenet/standard/i{}-d{}"
SETTING = "digits:lenet/standard~lenet/standard@digits_inv"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from modelkin.data import _digits_arrays

    root = tmp_path_factory.mktemp("cross_dataset")
    arrays = _digits_arrays()
    np.savez(
        root / "digits_inv.npz",
        **{
            f"{split}_{part}": 255 - arrays[f"{split}_x"] if part == "x" else arrays[f"{split}_y"]
            for split in ("train", "test")
            for part in ("x", "y")
        },
        class_names=np.array([str(c) for c in range(10)]),
    )
    (root / "config.yaml").write_text(CONFIG)
    run_snakemake(root, "--cores", "2", "results/distances/zest.csv",
                  "results/distances/gradfield.csv", "results/distances/outputs.csv",
                  "results/relatedness/zest.csv")  # fmt: skip
    return root


def test_a_transfer_gets_a_signature_on_its_parents_probe(workdir):
    for method in ("zest", "gradfield"):
        path = workdir / f"results/signatures/{method}@digits/{TRANSFER.format(0, 0)}.h5"
        sig = read_signature(path)
        assert sig.lineage.dataset == "digits_inv"
        assert sig.probe_dataset == "digits"
        assert sig.probe_columns == list(range(10))  # the same class names, column by column
        assert sig.probe_classes is None  # every digit
        own = read_signature(workdir / f"results/signatures/{method}/{TRANSFER.format(0, 0)}.h5")
        assert own.probe_dataset == "digits_inv" and own.probe_columns is None
        assert own.probe_sha256 != sig.probe_sha256


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_the_parent_and_its_transfer_are_compared_on_the_parents_probe(workdir, method):
    table = pd.read_csv(workdir / f"results/distances/{method}.csv")
    pair = table[
        (table["model_a"] == PARENT.format(0, 0)) & (table["model_b"] == TRANSFER.format(0, 0))
        | (table["model_b"] == PARENT.format(0, 0)) & (table["model_a"] == TRANSFER.format(0, 0))
    ]
    assert len(pair) == 1
    row = pair.iloc[0]
    assert row["relation"] == "derived-by-transfer" and row["dataset"] == "digits"
    assert row["setting"] == SETTING
    # the null of that setting: the transfers against the unrelated digits models
    unrelated = table[(table["setting"] == SETTING) & table["reference_pair"]]
    assert len(unrelated) == 2 * 3  # each transfer against the 3 families not its own
    assert set(unrelated["dataset"]) == {"digits"}
    headline = {"zest": "cos", "gradfield": "cos"}[method]
    assert row[f"{headline}_reference_n"] == len(unrelated)
    assert np.isfinite(row[f"{headline}_p_value"])
    # a transfer stays nearer its parent than the other parent's transfer does
    other = table[
        (table["setting"] == SETTING)
        & table[["model_a", "model_b"]]
        .isin([PARENT.format(0, 0), TRANSFER.format(1, 1)])
        .all(axis=1)
    ]
    assert len(other) == 1
    assert row[headline] < other.iloc[0][headline]
    # the transfers are also compared with each other on their own data set's probe
    own = table[table["dataset"] == "digits_inv"]
    assert len(own) == 1 and own.iloc[0]["relation"] == "independent"


def test_outputs_compare_a_transfer_whose_classes_match_its_parents_column_by_column(workdir):
    table = pd.read_csv(workdir / "results/distances/outputs.csv")
    rows = table[table["setting"] == SETTING]
    assert len(rows) == 2 * 4 and rows["kl"].notna().all()


def test_relatedness_shows_the_cross_dataset_transfer_as_a_kind_of_its_own(workdir):
    table = pd.read_csv(workdir / "results/relatedness/zest.csv")
    assert "transfer@digits_inv" in set(table["derivation"])
    rows = table[(table["derivation"] == "transfer@digits_inv") & (table["metric"] == "cos")]
    assert int(rows.iloc[0]["n_positive"]) == 2


def test_compare_judges_a_parent_and_its_transfer_in_the_cross_dataset_setting(workdir):
    from modelkin.distances.compare import compare_checkpoints

    results = workdir / "results"
    parent = results / f"models/{PARENT.format(0, 0)}.safetensors"
    transfer = results / f"models/{TRANSFER.format(0, 0)}.safetensors"
    comparison = compare_checkpoints(
        parent, transfer, method="zest", reference=results / "distances/zest_reference.json",
        device="cpu", allow_insufficient_reference=True,
    )  # fmt: skip
    assert comparison.setting == SETTING
    # both signatures are the workflow's: the parent's own, the transfer's on the digits' probe
    assert sorted(str(Path(p).resolve()) for p in comparison.reused) == sorted(
        str((results / p).resolve())
        for p in (
            f"signatures/zest/{PARENT.format(0, 0)}.h5",
            f"signatures/zest@digits/{TRANSFER.format(0, 0)}.h5",
        )
    )
    table = pd.read_csv(results / "distances/zest.csv")
    row = table[
        (table["model_a"] == PARENT.format(0, 0)) & (table["model_b"] == TRANSFER.format(0, 0))
    ]
    assert comparison.distances["cos"] == pytest.approx(float(row.iloc[0]["cos"]), abs=1e-6)
