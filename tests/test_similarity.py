"""Layer-by-layer similarity: known answers, invariances,
agreement with the measures on raw matrices."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from modelkin.checkpoint import save_checkpoint
from modelkin.cli import main
from modelkin.data import load_split
from modelkin.measures import REGISTRY, compute, to_matrix
from modelkin.models import seeded_model
from modelkin.models.layers import LayerError, capture, layer_names
from modelkin.similarity import (
    COLUMNS,
    PairError,
    capture_activations,
    compare_checkpoints_layers,
    compare_layers,
    format_layer_tables,
    layer_matrix,
    matched_layers,
    plan_pairs,
    plot_layer_heatmaps,
    read_table,
    same_layer_summary,
    select_layers,
    to_representation,
)

ALL_LAYERS = ["relu1", "relu2", "relu3", "relu4"]


@pytest.fixture(scope="module")
def probe(digits_file) -> torch.Tensor:
    return load_split(digits_file, "test", limit=48).x


@pytest.fixture(scope="module")
def lenets():
    return seeded_model("lenet", "digits", 0), seeded_model("lenet", "digits", 1)


def _permuted_rescaled_copy(model):
    """The same function with relu1's channels permuted
    and scaled by 3 (ReLU is positively homogeneous)."""
    twin = copy.deepcopy(model)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        twin.conv1.weight.copy_(model.conv1.weight[perm] * 3.0)
        twin.conv1.bias.copy_(model.conv1.bias[perm] * 3.0)
        twin.conv2.weight.copy_(model.conv2.weight[:, perm] / 3.0)
    return twin


def test_identical_models_give_each_measures_identity_on_the_diagonal(lenets, probe):
    model = lenets[0]
    twin = copy.deepcopy(model)
    table = compare_layers(
        model, twin, probe, "relu", "relu", ["cka", "rbf_cka", "procrustes", "mse"], device="cpu"
    )
    # flag: 48 images are too few for CCA on these layers, but identical inputs still give 1.
    cca = compare_layers(
        model,
        twin,
        probe,
        ["relu2", "relu4"],
        ["relu2", "relu4"],
        ["cca", "svcca", "pwcca"],
        device="cpu",
        degenerate="flag",
    )
    for measure, identity in [("cka", 1.0), ("rbf_cka", 1.0), ("procrustes", 0.0), ("mse", 0.0)]:
        matrix = layer_matrix(table, measure).to_numpy()
        np.testing.assert_allclose(np.diag(matrix), identity, atol=1e-6, err_msg=measure)
    for measure in ("cca", "svcca", "pwcca"):
        np.testing.assert_allclose(
            np.diag(layer_matrix(cca, measure).to_numpy()), 1.0, atol=1e-6, err_msg=measure
        )
    cka = layer_matrix(table, "cka").to_numpy()
    assert (cka[~np.eye(4, dtype=bool)] < 0.999).all()  # different layers are not identical
    mse = table[table["measure"] == "mse"]
    off = mse[mse["layer_a"] != mse["layer_b"]]
    assert (off["status"] == "skipped").all() and off["value"].isna().all()
    assert off["reason"].str.contains("equal shapes").all()


def test_table_layout_follows_the_requested_order(lenets, probe):
    table = compare_layers(
        *lenets,
        probe,
        ["relu4", "relu2"],
        ["relu1", "relu3", "relu4"],
        ["procrustes", "cka"],
        device="cpu",
    )
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 2 * 3 * 2
    assert list(dict.fromkeys(table["layer_a"])) == ["relu4", "relu2"]
    assert list(layer_matrix(table, "cka").columns) == ["relu1", "relu3", "relu4"]
    assert table.loc[table["measure"] == "procrustes", "higher_is_similar"].eq(False).all()
    assert table.loc[table["measure"] == "cka", "higher_is_similar"].eq(True).all()
    assert (table["samples"] == len(probe)).all() and (table["status"] == "ok").all()
    assert table.loc[table["layer_a"] == "relu4", "features_a"].eq(84).all()


def test_swapping_the_models_transposes_symmetric_measures(lenets, probe):
    measures = ["cka", "rbf_cka", "debiased_cka", "cca", "svcca", "procrustes", "reference_cca"]
    layers = ["relu2", "relu3", "relu4"]
    ab = compare_layers(*lenets, probe, layers, layers, measures, device="cpu", degenerate="flag")
    ba = compare_layers(
        lenets[1], lenets[0], probe, layers, layers, measures, device="cpu", degenerate="flag"
    )
    for measure in measures:
        assert REGISTRY[measure].symmetric
        np.testing.assert_allclose(
            layer_matrix(ab, measure).to_numpy(),
            layer_matrix(ba, measure).to_numpy().T,
            rtol=1e-9,
            atol=1e-9,
            err_msg=measure,
        )


def test_values_agree_with_the_measures_on_the_raw_matrices(lenets, probe):
    """The rotated shortcut for orthogonally invariant measures
    changes nothing, even for p >> n (relu2: 1600)."""
    measures = [m for m in REGISTRY if not REGISTRY[m].requires_same_shape]
    table = compare_layers(
        *lenets,
        probe,
        ["relu2", "relu3"],
        ["relu2", "relu4"],
        measures,
        device="cpu",
        degenerate="flag",
    )
    acts_a = capture_activations(lenets[0], probe, ["relu2", "relu3"], device="cpu")
    acts_b = capture_activations(lenets[1], probe, ["relu2", "relu4"], device="cpu")
    for row in table.itertuples():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = compute(
                row.measure,
                to_matrix(acts_a[row.layer_a], "flatten"),
                to_matrix(acts_b[row.layer_b], "flatten"),
            )
        assert row.value == pytest.approx(expected, rel=1e-9, abs=1e-9), (
            row.layer_a,
            row.layer_b,
            row.measure,
        )


def test_a_permuted_rescaled_copy_is_identical_to_invariant_measures(lenets, probe):
    model = lenets[0]
    twin = _permuted_rescaled_copy(model)
    torch.testing.assert_close(twin(probe), model(probe), rtol=1e-4, atol=1e-4)
    flat = compare_layers(
        model, twin, probe, ["relu1"], ["relu1"], ["cka", "procrustes", "mse"], device="cpu"
    )
    values = flat.set_index("measure")["value"]
    assert values["cka"] == pytest.approx(1.0, abs=1e-9)
    assert values["procrustes"] == pytest.approx(0.0, abs=1e-6)
    assert values["mse"] > 0.01  # the element-wise measure is not fooled: units moved and grew
    # Spatial mode: 6 channels over 48 x 784 rows, so CCA is well posed and sees the same space.
    spatial = compare_layers(
        model,
        twin,
        probe,
        ["relu1"],
        ["relu1"],
        ["cca", "pwcca", "cka"],
        device="cpu",
        conv_mode="spatial",
        max_spatial_samples=3000,
    )
    assert (spatial["status"] == "ok").all()
    np.testing.assert_allclose(spatial["value"], 1.0, atol=1e-9)


def test_degenerate_cca_is_reported_not_silent(lenets, probe):
    nan = compare_layers(*lenets, probe, ["relu1"], ["relu1"], ["cca", "cka"], device="cpu")
    cca = nan.set_index("measure").loc["cca"]
    assert cca["status"] == "degenerate" and np.isnan(cca["value"])
    assert "exceeds" in cca["reason"] and "degrees of freedom" in cca["reason"]
    assert nan.set_index("measure").loc["cka", "status"] == "ok"
    flagged = compare_layers(
        *lenets, probe, ["relu1"], ["relu1"], ["cca"], device="cpu", degenerate="flag"
    )
    assert flagged["status"].iat[0] == "degenerate" and flagged["value"].iat[0] == pytest.approx(
        1.0
    )
    text = format_layer_tables(flagged)
    assert "1.000*" in text and "degenerate CCA" in text


def test_undefined_values_carry_the_measures_reason(lenets, probe):
    dead = copy.deepcopy(lenets[0])
    with torch.no_grad():
        dead.conv1.weight.zero_()
        dead.conv1.bias.fill_(-1.0)  # relu1 is 0 for every input
    table = compare_layers(
        dead, lenets[1], probe, ["relu1"], ["relu1"], ["cka", "procrustes"], device="cpu"
    )
    assert (table["status"] == "undefined").all() and table["value"].isna().all()
    assert table["reason"].str.contains("constant").all()


def test_spatial_mode_pairs_positions(lenets, probe):
    a, b = lenets
    table = compare_layers(
        a,
        b,
        probe,
        ["relu1", "relu2", "relu3"],
        ["relu1", "relu3"],
        ["cka"],
        device="cpu",
        conv_mode="spatial",
    )
    status = table.set_index(["layer_a", "layer_b"])["status"]
    assert status[("relu1", "relu1")] == "ok" and status[("relu3", "relu3")] == "ok"
    for cell in [("relu1", "relu3"), ("relu2", "relu1"), ("relu2", "relu3"), ("relu3", "relu1")]:
        assert status[cell] == "skipped"
    reason = table.set_index(["layer_a", "layer_b"]).loc[("relu2", "relu1"), "reason"]
    assert "10x10" in reason and "28x28" in reason and "flatten" in reason
    rows = table.set_index(["layer_a", "layer_b"])
    assert rows.loc[("relu1", "relu1"), "samples"] == len(probe) * 28 * 28
    # Unsubsampled spatial rows are exactly to_matrix(acts, "spatial").
    acts = capture_activations(a, probe, ["relu1"], device="cpu")["relu1"]
    np.testing.assert_array_equal(
        to_representation("relu1", acts, "spatial").matrix, to_matrix(acts, "spatial")
    )


def test_spatial_subsampling_is_seeded_and_announced(lenets, probe):
    a, b = lenets
    kwargs = dict(device="cpu", conv_mode="spatial", max_spatial_samples=500)
    first = compare_layers(a, b, probe, ["relu1"], ["relu1"], ["cka", "rbf_cka"], seed=3, **kwargs)
    again = compare_layers(a, b, probe, ["relu1"], ["relu1"], ["cka", "rbf_cka"], seed=3, **kwargs)
    other = compare_layers(a, b, probe, ["relu1"], ["relu1"], ["cka", "rbf_cka"], seed=4, **kwargs)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["value"], other["value"])
    assert (first["samples"] == 500).all()
    assert first["sampling"].iat[0] == f"500 of {len(probe) * 784} (input, position) rows, seed 3"
    # The same rows for both models: a model against its own copy stays exactly similar.
    same = compare_layers(
        a, copy.deepcopy(a), probe, ["relu1"], ["relu1"], ["cka"], seed=3, **kwargs
    )
    assert same["value"].iat[0] == pytest.approx(1.0, abs=1e-9)


def test_kernel_measures_refuse_unbounded_spatial_rows(lenets, probe):
    with pytest.raises(ValueError, match="max_spatial_samples"):
        compare_layers(
            *lenets, probe, ["relu1"], ["relu1"], ["rbf_cka"], device="cpu", conv_mode="spatial"
        )


def test_layer_selection(lenets):
    lenet = lenets[0]
    assert select_layers(lenet, "relu") == ALL_LAYERS
    assert select_layers(lenet, "all") == layer_names(lenet)
    assert "conv1" in select_layers(lenet, "cut")
    resnet = seeded_model("resnet20_w1", "digits", 0)
    relus = select_layers(resnet, "relu")
    assert relus[0] == "relu" and "layer1.0.relu2" in relus and "layer3.2.relu2" in relus
    assert not any(
        name.endswith("relu1") for name in relus
    )  # inside a block: bypassed by the shortcut
    assert len(relus) == 1 + 9
    assert select_layers(resnet, ["relu"]) == ["relu"]  # a list names layers; a string selects


def test_unknown_layers_name_the_valid_ones(lenets, probe):
    with pytest.raises(LayerError, match="valid layers: .*relu1"):
        compare_layers(*lenets, probe, ["relu9"], ["relu1"], ["cka"], device="cpu")
    with pytest.raises(LayerError, match="relu, cut, all"):
        select_layers(lenets[0], "relus")
    with pytest.raises(LayerError, match="more than once"):
        select_layers(lenets[0], ["relu1", "relu1"])
    with pytest.raises(LayerError, match="no layers chosen"):
        select_layers(lenets[0], [])


def test_bad_arguments_say_what_to_do(lenets, probe):
    with pytest.raises(ValueError, match="conv_mode"):
        compare_layers(*lenets, probe, measures=["cka"], conv_mode="pixels", device="cpu")
    with pytest.raises(ValueError, match="unknown similarity measure 'ckaa'.*valid names"):
        compare_layers(*lenets, probe, measures=["ckaa"], device="cpu")
    with pytest.raises(ValueError, match="does not take"):
        compare_layers(*lenets, probe, measures={"cka": {"threshold": 1}}, device="cpu")
    with pytest.raises(ValueError, match="keep_variance"):
        compare_layers(
            *lenets,
            probe,
            measures=["svcca"],
            measure_params={"svcca": {"keep_variance": 2}},
            device="cpu",
        )
    with pytest.raises(ValueError, match=r"takes inputs of shape \(1, 32, 32\)"):
        compare_layers(*lenets, torch.rand(8, 3, 32, 32), measures=["cka"], device="cpu")
    with pytest.raises(ValueError, match="at least 4 inputs"):
        compare_layers(*lenets, probe[:3], measures=["cka"], device="cpu")


def test_measure_parameters_reach_the_measure(lenets, probe):
    table = compare_layers(
        *lenets, probe, ["relu3"], ["relu4"], {"svcca": {"keep_dims": 2}}, device="cpu"
    )
    acts_a = capture_activations(lenets[0], probe, ["relu3"], device="cpu")["relu3"]
    acts_b = capture_activations(lenets[1], probe, ["relu4"], device="cpu")["relu4"]
    assert table["value"].iat[0] == pytest.approx(
        compute("svcca", acts_a, acts_b, keep_dims=2), rel=1e-9
    )


def test_capture_restores_mode_and_matches_one_batch(lenets, probe):
    model = lenets[0].train()
    batched = capture_activations(model, probe, ["relu2"], batch_size=5, device="cpu")["relu2"]
    assert model.training
    model.eval()
    with torch.no_grad():
        reference = capture(model, probe, ["relu2"])["relu2"]
    torch.testing.assert_close(batched, reference)


def test_cross_architecture_flatten_comparison(probe):
    lenet, mlp = seeded_model("lenet", "digits", 0), seeded_model("mlp", "digits", 0)
    table = compare_layers(lenet, mlp, probe, "relu", "relu", ["cka", "procrustes"], device="cpu")
    assert len(table) == 4 * 2 * 2 and (table["status"] == "ok").all()
    assert table.loc[table["measure"] == "cka", "value"].between(0, 1).all()


# ---------------------------------------------------------------------------------------------
# Checkpoints and the command line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    paths = []
    for seed in (0, 1):
        model = seeded_model("lenet", "digits", seed)
        paths.append(
            save_checkpoint(
                root / f"lenet{seed}.safetensors",
                model,
                {"arch": "lenet", "dataset": "digits", "num_classes": 10, "name": f"lenet-s{seed}"},
            )
        )
    mlp = seeded_model("mlp", "digits", 0)
    paths.append(
        save_checkpoint(
            root / "mlp.safetensors", mlp, {"arch": "mlp", "dataset": "digits", "num_classes": 10}
        )
    )
    return paths


def test_checkpoint_wrapper_uses_the_first_images_of_the_split(checkpoints, digits_file, lenets):
    table = compare_checkpoints_layers(
        checkpoints[0],
        checkpoints[2],
        digits_file,
        {"lenet": ["relu3"], "default": "relu"},
        {"lenet": "cut", "default": "relu"},
        ["cka"],
        n_images=30,
        split="train",
        device="cpu",
    )
    assert list(table["model_a"].unique()) == ["lenet-s0"] and table["model_b"].iat[0].endswith(
        "mlp.safetensors"
    )
    assert list(table["layer_b"]) == ["relu1", "relu2"] and (table["split"] == "train").all()
    direct = compare_layers(
        lenets[0],
        seeded_model("mlp", "digits", 0),
        load_split(digits_file, "train", limit=30).x,
        ["relu3"],
        "relu",
        ["cka"],
        device="cpu",
    )
    np.testing.assert_allclose(table["value"], direct["value"], rtol=1e-12)
    with pytest.raises(ValueError, match="fewer than n_images=5000"):
        compare_checkpoints_layers(
            checkpoints[0], checkpoints[1], digits_file, n_images=5000, device="cpu"
        )


def test_cli_compare_layers_prints_and_writes(checkpoints, digits_file, tmp_path, capsys):
    csv, png = tmp_path / "out.csv", tmp_path / "out.png"
    code = main(
        [
            "compare-layers",
            str(checkpoints[0]),
            str(checkpoints[1]),
            "--data",
            str(digits_file),
            "--layers-a",
            "relu3,relu4",
            "--measures",
            "cka,procrustes",
            "--images",
            "40",
            "--device",
            "cpu",
            "-o",
            str(csv),
            "--heatmap",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "cka (similarity, higher = more alike)" in out
        and "procrustes (distance, lower = more alike)" in out
    )
    assert "A = lenet-s0" in out and "relu3" in out
    table = read_table(csv)
    assert len(table) == 2 * 2 * 2 and set(table["layer_b"]) == {"relu3", "relu4"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_layers(checkpoints, digits_file, capsys):
    code = main(
        [
            "compare-layers",
            str(checkpoints[0]),
            str(checkpoints[1]),
            "--data",
            str(digits_file),
            "--layers-a",
            "fc9",
            "--images",
            "8",
            "--device",
            "cpu",
        ]
    )
    assert code == 1
    assert "unknown layer(s) 'fc9'" in capsys.readouterr().err


def test_cli_lists_measures(capsys):
    assert main(["compare-layers", "a", "b", "--data", "d", "--list-measures"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REGISTRY)


# ---------------------------------------------------------------------------------------------
# Summary, plots, pairs


def _hand_table(layers_a, layers_b, values, measure="cka", higher=True):
    rows = [
        {
            "layer_a": a,
            "layer_b": b,
            "measure": measure,
            "value": values[i][j],
            "higher_is_similar": higher,
            "status": "ok",
            "reason": "",
            "conv_mode": "flatten",
            "samples": 10,
            "model_a": "A",
            "model_b": "B",
        }
        for i, a in enumerate(layers_a)
        for j, b in enumerate(layers_b)
    ]
    return pd.DataFrame(rows)


def test_layer_matching():
    assert matched_layers(["r1", "r2"], ["r1", "r2"]) == (["r1", "r2"], "same_name")
    assert matched_layers(ALL_LAYERS, ["m1", "m2"]) == (["m1", "m1", "m2", "m2"], "relative_depth")
    assert matched_layers(["m1", "m2"], ALL_LAYERS) == (["relu1", "relu4"], "relative_depth")
    assert matched_layers(["only"], ["x", "y", "z"]) == (["z"], "relative_depth")


def test_same_layer_summary_known_answers():
    similarity = _hand_table(["r1", "r2"], ["r1", "r2"], [[0.9, 0.95], [0.3, 0.8]])
    distance = _hand_table(
        ["r1", "r2"], ["r1", "r2"], [[0.2, 0.1], [0.5, 0.6]], measure="procrustes", higher=False
    )
    summary = same_layer_summary({"p": pd.concat([similarity, distance], ignore_index=True)})
    rows = summary.set_index(["measure", "layer_a"])
    assert (
        rows.loc[("cka", "r1"), "value"] == 0.9 and rows.loc[("cka", "r1"), "best_layer_b"] == "r2"
    )
    assert rows.loc[("cka", "r2"), "best_value"] == 0.8
    assert rows.loc[("procrustes", "r1"), "best_layer_b"] == "r2"  # lower distance is better
    assert rows.loc[("procrustes", "r2"), "best_layer_b"] == "r1"
    assert list(rows.loc["cka", "depth"]) == [0.0, 1.0] and (summary["match"] == "same_name").all()
    flagged = similarity.copy()
    flagged.loc[(flagged["layer_a"] == "r1") & (flagged["layer_b"] == "r2"), "status"] = (
        "degenerate"
    )
    rows = same_layer_summary({"p": flagged}).set_index("layer_a")
    assert rows.loc["r1", "best_layer_b"] == "r1"  # a flagged value never counts as the best match


def test_heatmap_and_text_cover_every_status(lenets, probe, tmp_path):
    table = compare_layers(
        *lenets,
        probe,
        ["relu1", "relu4"],
        ["relu1", "relu4"],
        ["cka", "cca", "procrustes", "mse"],
        device="cpu",
    )
    text = format_layer_tables(table)
    assert "deg" in text and "n/a" in text and "distance, lower = more alike" in text
    out = plot_layer_heatmaps(table, tmp_path / "h.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def _config(pairs, **section):
    from modelkin.config import validate_config

    return validate_config(
        {
            "zoo": {
                "datasets": ["digits"],
                "architectures": ["lenet", "mlp"],
                "algorithms": ["standard"],
                "seeds": [0, 1, 2],
            },
            "similarity": {"pairs": pairs, **section},
        }
    )


def test_plan_pairs_expands_shorthands_once():
    independent = plan_pairs(_config(["independent"]))
    assert len(independent) == 2 * 3  # per architecture: 3 seed pairs
    assert independent[0].name == "digits.lenet.standard.i0-d0__digits.lenet.standard.i1-d1"
    assert independent[0].dataset == "digits" and independent[0].layers_a == "relu"
    zoo = plan_pairs(
        _config(
            ["zoo", "independent", ["digits/mlp/standard/i1-d1", "digits/lenet/standard/i0-d0"]]
        )
    )
    assert len(zoo) == 15  # every pair of 6 models; the repeats (either way round) are dropped
    named = plan_pairs(
        _config(
            [
                {
                    "a": "derived/digits/prune/digits/lenet/standard/i0-d0/s0",
                    "b": "digits/lenet/standard/i0-d0",
                    "name": "pruned",
                    "layers_a": ["relu4"],
                }
            ],
            layers={"mlp": "relu", "default": "cut"},
        )
    )
    assert named[0].name == "pruned" and named[0].dataset == "digits"
    assert named[0].layers_a == ["relu4"] and named[0].layers_b == {"mlp": "relu", "default": "cut"}


def test_plan_pairs_rejects_bad_pairs():
    from modelkin.config import ConfigError

    with pytest.raises(ConfigError, match="similarity.pairs.0"):
        _config([["digits/lenet/standard/i0-d0"]])
    with pytest.raises(ConfigError, match="similarity.layers"):
        _config(["independent"], layers="relus")
    with pytest.raises(PairError, match="with itself"):
        plan_pairs(_config([["digits/lenet/standard/i0-d0", "digits/lenet/standard/i0-d0"]]))
    with pytest.raises(PairError, match="both named"):
        plan_pairs(
            _config(
                [
                    {
                        "a": "digits/lenet/standard/i0-d0",
                        "b": "digits/lenet/standard/i1-d1",
                        "name": "x",
                    },
                    {
                        "a": "digits/lenet/standard/i0-d0",
                        "b": "digits/lenet/standard/i2-d2",
                        "name": "x",
                    },
                ]
            )
        )
    with pytest.raises(PairError, match="not summary"):
        plan_pairs(
            _config(
                [
                    {
                        "a": "digits/lenet/standard/i0-d0",
                        "b": "digits/lenet/standard/i1-d1",
                        "name": "summary",
                    }
                ]
            )
        )


def test_schema_measures_are_the_registry():
    from modelkin.config import schema

    section = schema()["properties"]["similarity"]["properties"]
    assert set(section["measures"]["items"]["enum"]) == set(REGISTRY)
    assert set(section["measure_params"]["propertyNames"]["enum"]) == set(REGISTRY)
    assert set(section["measures"]["default"]) <= set(REGISTRY)
