"""Method concordance (modelkin.concordance): orientation, rank correlations with known answers,
the join of verdicts, planning from the configuration and its schema defaults, one pair end to
end, and errors that name the fix."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers import REPO, TINY_CONFIG
from modelkin.catalog import ModelCatalog
from modelkin.checkpoint import save_checkpoint
from modelkin.concordance import (
    ConcordanceError,
    concordance_pairs,
    concordance_table,
    join_verdicts,
    method_info,
    orient,
    pair_key,
    plan_concordance,
    plot_concordance,
    rank_correlations,
    read_pair_records,
    relation_means,
    resolve_methods,
    stitch_options,
)
from modelkin.config import validate_config
from modelkin.errors import InputError, MissingFileError

PARENT = "digits/lenet/standard/i0-d0"
OTHER = "digits/lenet/standard/i1-d1"
FINETUNE = f"derived/digits/finetune/{PARENT}/s0"
PRUNE = f"derived/digits/prune/{PARENT}/s0"
COPY = "external/copy"
TRANSFER = f"derived/digits/transfer/{PARENT}/s0"


# ---------------------------------------------------------------------------------------------
# Orientation


def test_orientation_follows_the_registries_metadata():
    zest, cka, stitching = method_info("zest"), method_info("cka"), method_info("stitching")
    assert (zest.higher_is_similar, zest.normalised, zest.raw_column) == (
        False,
        True,
        "zest_cos_normalised",
    )
    assert (
        method_info("gradfield", distance_metric="euclidean").raw_column
        == "gradfield_euclidean_normalised"
    )
    assert cka.higher_is_similar and not cka.normalised
    assert stitching.higher_is_similar and method_info("stitching_ps_inv").kind == "stitching"
    assert not method_info("procrustes").higher_is_similar  # a distance among the measures

    d = np.array([0.0, 0.5, 1.0, 1.5, np.nan])
    # normalised distance: 1 - d/ref (1: identical, 0: as far as independent pairs, < 0 beyond)
    np.testing.assert_array_equal(zest.orient(d), [1.0, 0.5, 0.0, -0.5, np.nan])
    np.testing.assert_array_equal(cka.orient(d), d)  # similarities unchanged
    np.testing.assert_array_equal(method_info("procrustes").orient(d), -d)  # raw distances negated
    np.testing.assert_array_equal(orient([2.0], higher_is_similar=False, normalised=False), [-2.0])


@pytest.mark.parametrize("name", ["zest", "gradfield", "procrustes", "mse"])
def test_oriented_distances_rank_pairs_in_reverse(name):
    rng = np.random.default_rng(0)
    distances = rng.uniform(0, 2, 30)
    oriented = method_info(name).orient(distances)
    assert np.array_equal(np.argsort(oriented), np.argsort(distances)[::-1])
    from scipy.stats import spearmanr

    assert spearmanr(oriented, distances)[0] == pytest.approx(-1.0)


def test_unknown_methods_and_metrics_name_the_valid_ones():
    with pytest.raises(
        ConcordanceError, match="unknown concordance method 'zset'; choose from zest, gradfield"
    ):
        method_info("zset")
    with pytest.raises(ValueError, match="valid: cos, l1, l2, linf"):
        method_info("zest", distance_metric="l3")


def test_methods_default_to_the_built_distance_tables_and_must_be_built():
    assert resolve_methods(None, ["zest", "gradfield"]) == [
        "zest",
        "gradfield",
        "cka",
        "stitching",
        "stitching_ps_inv",
    ]
    assert resolve_methods(None, ["zest"]) == ["zest", "cka", "stitching", "stitching_ps_inv"]
    with pytest.raises(ConcordanceError, match="add gradfield to distances.methods or drop them"):
        resolve_methods(["zest", "gradfield", "cka"], ["zest"])
    with pytest.raises(ConcordanceError, match="at least two methods"):
        resolve_methods(["cka"], ["zest"])


# ---------------------------------------------------------------------------------------------
# Rank correlations and means on hand-made tables


def _frame(**columns):
    n = len(next(iter(columns.values())))
    base = {"model_a": [f"a{i}" for i in range(n)], "model_b": [f"b{i}" for i in range(n)]}
    return pd.DataFrame({**base, **columns})


def _corr(table, a, b, scope="all"):
    row = table[(table.scope == scope) & (table.method_a == a) & (table.method_b == b)]
    assert len(row) == 1
    return row.iloc[0]


def test_rank_correlations_match_hand_computed_values():
    # x vs y: two adjacent swaps. Spearman 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/120 = 0.8;
    # Kendall: 2 discordant of 10 pairs -> (8 - 2)/10 = 0.6. z reverses x: -1 for both.
    frame = _frame(
        x=[1.0, 2, 3, 4, 5],
        y=[2.0, 1, 4, 3, 5],
        z=[50.0, 40, 30, 20, 10],
        w=[np.exp(v) for v in [2.0, 1, 4, 3, 5]],
    )
    table = rank_correlations(frame, ["x", "y", "z", "w"], by_group=False)
    assert len(table) == 6 and set(table.scope) == {"all"}
    xy = _corr(table, "x", "y")
    assert (xy.n_pairs, xy.spearman, xy.kendall) == (5, pytest.approx(0.8), pytest.approx(0.6))
    assert _corr(table, "x", "z").spearman == pytest.approx(-1.0) and _corr(
        table, "x", "z"
    ).kendall == pytest.approx(-1.0)
    # invariant to strictly increasing transformations (exp): the orientation only sets the sign
    assert _corr(table, "x", "w").spearman == pytest.approx(0.8) and _corr(
        table, "y", "w"
    ).spearman == pytest.approx(1.0)
    assert 0 < xy.spearman_p < 1 and 0 < xy.kendall_p < 1


def test_rank_correlations_with_ties_nan_and_constant_columns():
    from scipy.stats import kendalltau, spearmanr

    x, y = [1.0, 2, 2, 3, 4, np.nan], [1.0, 3, 2, 2, 5, 7]
    frame = _frame(x=x, y=y, c=[0.5] * 6)
    table = rank_correlations(frame, ["x", "y", "c"], by_group=False)
    xy = _corr(table, "x", "y")
    assert xy.n_pairs == 5  # the NaN pair is left out
    assert xy.spearman == pytest.approx(spearmanr(x[:5], y[:5])[0])  # average ranks for ties
    assert xy.kendall == pytest.approx(kendalltau(x[:5], y[:5])[0])  # tau-b
    assert math.isnan(_corr(table, "x", "c").spearman)  # a constant verdict ranks nothing


def test_group_scopes_need_enough_pairs_and_means_per_relation():
    frame = _frame(
        relation=[
            "derived-by-finetune",
            "derived-by-prune",
            "derived-by-prune",
            "common-ancestor",
            "independent",
            "independent",
            "independent",
        ],
        group=[
            "derived",
            "derived",
            "derived",
            "siblings",
            "independent",
            "independent",
            "independent",
        ],
        p=[0.9, 0.8, 0.7, 0.85, 0.1, 0.2, 0.3],
        q=[1.0, 0.9, 0.6, 0.95, 0.3, 0.2, 0.1],
    )
    table = rank_correlations(frame, ["p", "q"], min_pairs=3)
    assert list(table.scope) == ["all", "group:derived", "group:independent"]  # siblings: 1 pair
    assert _corr(table, "p", "q", "group:derived").spearman == pytest.approx(1.0)
    assert _corr(table, "p", "q", "group:independent").spearman == pytest.approx(-1.0)
    means = relation_means(frame, ["p", "q"]).set_index(["level", "value"])
    assert means.loc[("group", "derived"), "p_mean"] == pytest.approx(0.8)
    assert means.loc[("group", "derived"), "p_std"] == pytest.approx(0.1)
    assert means.loc[("group", "independent"), "q_mean"] == pytest.approx(0.2)
    assert means.loc[("relation", "derived-by-prune"), "n_pairs"] == 2
    assert means.loc[("relation", "derived-by-prune"), "q_mean"] == pytest.approx(0.75)
    assert math.isnan(means.loc[("group", "siblings"), "p_std"])
    assert list(means.index.get_level_values("value")[:3]) == ["derived", "siblings", "independent"]


def test_missing_method_columns_name_the_fix():
    frame = _frame(x=[1.0, 2, 3])
    with pytest.raises(ConcordanceError, match=r"no column\(s\) y .*including those methods"):
        rank_correlations(frame, ["x", "y"])
    with pytest.raises(ConcordanceError, match="no column"):
        relation_means(frame.assign(group="derived", relation="derived-by-x"), ["x", "cka"])


# ---------------------------------------------------------------------------------------------
# Joining the verdicts


def _meta(name, *, parent=None, derivation=None, seed=0, sha=None):
    return {
        "name": name,
        "arch": "lenet",
        "dataset": "digits",
        "num_classes": 10,
        "algorithm": derivation or "standard",
        "init_seed": seed,
        "data_seed": seed,
        "parent": parent,
        "derivation": derivation,
        "root": PARENT if parent else None,
        "root_algorithm": "standard" if parent else None,
        "classes": None,
        "sha256": sha or name,
    }


METAS = {
    PARENT: _meta(PARENT),
    OTHER: _meta(OTHER, seed=1),
    FINETUNE: _meta(FINETUNE, parent=PARENT, derivation="finetune", seed=11),
    PRUNE: _meta(PRUNE, parent=PARENT, derivation="prune", seed=12),
}
CKA = {
    (PARENT, OTHER): 0.70,
    (PARENT, FINETUNE): 0.99,
    (PARENT, PRUNE): 0.97,
    (OTHER, FINETUNE): 0.72,
    (OTHER, PRUNE): 0.71,
    (FINETUNE, PRUNE): 0.98,
}


def _record(a, b, cka, after=(0.99, 0.98), ps_inv=(0.97, 0.96)):
    return {
        "kind": "modelkin-concordance-pair",
        "model_a": a,
        "model_b": b,
        "layer_a": "relu3",
        "layer_b": "relu3",
        "lineage": {"a": METAS[a], "b": METAS[b]},
        "measures": {
            "cka": {
                "value": cka,
                "higher_is_similar": True,
                "status": "ok",
                "reason": "",
                "samples": 100,
            }
        },
        "stitching": {
            "directions": {
                "a_to_b": {"relative_accuracy": {"after": after[0], "ps_inv": ps_inv[0]}},
                "b_to_a": {"relative_accuracy": {"after": after[1], "ps_inv": ps_inv[1]}},
            },
            "stitching": float(np.mean(after)),
            "stitching_ps_inv": float(np.mean(ps_inv)),
        },
    }


def _distance_table(values):
    # the distance stage's layout: raw cos, cos_normalised = cos / reference (here 0.5), relation
    rows = []
    for (a, b), d in values.items():
        rows.append(
            {"model_a": b, "model_b": a, "relation": "?", "cos": d * 0.5, "cos_normalised": d}
        )
    return pd.DataFrame(rows)


ZEST = {
    (PARENT, OTHER): 1.0,
    (PARENT, FINETUNE): 0.05,
    (PARENT, PRUNE): 0.08,
    (OTHER, FINETUNE): 0.95,
    (OTHER, PRUNE): 1.1,
    (FINETUNE, PRUNE): 0.04,
}


def test_join_orients_every_method_and_derives_relations_from_lineage(caplog):
    records = [_record(a, b, CKA[(a, b)]) for a, b in CKA]
    zest = _distance_table(ZEST)  # listed the other way round: pairs are unordered
    frame = join_verdicts(
        records, {"zest": zest}, ["zest", "cka", "stitching", "stitching_ps_inv"]
    ).set_index(["model_a", "model_b"])
    assert len(frame) == 6
    row = frame.loc[(PARENT, FINETUNE)]
    assert (row.relation, row.group) == ("derived-by-finetune", "derived")
    assert (
        frame.loc[(FINETUNE, PRUNE)].group == "siblings"
        and frame.loc[(PARENT, OTHER)].group == "independent"
    )
    assert frame.loc[(OTHER, FINETUNE)].relation == "independent"
    assert row.zest_cos_normalised == 0.05 and row.zest_cos == pytest.approx(0.025)
    assert row.zest == pytest.approx(0.95)
    assert frame.loc[(OTHER, PRUNE)].zest == pytest.approx(-0.1)
    assert row.cka == row.cka_value == 0.99
    assert (
        row.stitching == pytest.approx(0.985)
        and row.stitching_a_to_b == 0.99
        and row.stitching_b_to_a == 0.98
    )
    assert row.stitching_ps_inv == pytest.approx(0.965)
    assert (
        "6 pair(s) have another relation in the zest table" in caplog.text
    )  # the hand-made table says "?"

    correlations = rank_correlations(frame.reset_index(), ["zest", "cka"], by_group=False)
    from scipy.stats import spearmanr

    keys = list(CKA)
    expected = spearmanr([1 - ZEST[k] for k in keys], [CKA[k] for k in keys])[0]
    assert _corr(correlations, "zest", "cka").spearman == pytest.approx(expected)


def test_join_errors_name_the_missing_input():
    records = [_record(a, b, CKA[(a, b)]) for a, b in CKA]
    with pytest.raises(
        ConcordanceError, match=r"needs results/distances/gradfield.csv; build it with `snakemake"
    ):
        join_verdicts(records, {}, ["gradfield", "cka"])
    broken = _distance_table(ZEST).drop(columns="cos_normalised")
    with pytest.raises(ConcordanceError, match=r"lacks column\(s\) cos_normalised.*rebuild it"):
        join_verdicts(records, {"zest": broken}, ["zest", "cka"])
    partial = _distance_table({k: v for k, v in ZEST.items() if k != (PARENT, PRUNE)})
    with pytest.raises(ConcordanceError, match="is not in results/distances/zest.csv.*rebuild it"):
        join_verdicts(records, {"zest": partial}, ["zest", "cka"])
    with pytest.raises(ConcordanceError, match="has no cca value .*re-run its concordance_pairs"):
        join_verdicts(records, {}, ["cca", "cka"])
    no_stitch = [{**r, "stitching": None} for r in records]
    with pytest.raises(ConcordanceError, match="no stitching results"):
        join_verdicts(no_stitch, {}, ["stitching", "cka"])
    with pytest.raises(ConcordanceError, match="no pair records"):
        join_verdicts([], {}, ["zest", "cka"])


def test_table_files_and_plot(tmp_path):
    from modelkin.io import write_json

    folder = tmp_path / "jobs" / "0"
    for a, b in CKA:
        write_json(folder / f"{pair_key(a, b)}.json", _record(a, b, CKA[(a, b)]))
    zest_csv = tmp_path / "zest.csv"
    _distance_table(ZEST).to_csv(zest_csv, index=False)
    out = {k: tmp_path / f"{k}.csv" for k in ("pairs", "correlations", "relations")}
    keys = [pair_key(a, b) for a, b in CKA]
    frame, correlations, means = concordance_table(
        [folder],
        {"zest": zest_csv},
        ["zest", "cka", "stitching"],
        pairs_csv=out["pairs"],
        correlations_csv=out["correlations"],
        relations_csv=out["relations"],
        expected_pairs=keys,
    )
    assert list(frame.group) == [
        "derived",
        "derived",
        "siblings",
        "independent",
        "independent",
        "independent",
    ]
    assert (
        pd.read_csv(out["correlations"]).shape[0] == len(correlations) == 3 + 3
    )  # all, independent (derived: 2 pairs)
    assert pd.read_csv(out["pairs"])["zest"].tolist() == pytest.approx(frame["zest"].tolist())
    png = plot_concordance(out["pairs"], tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConcordanceError, match="do not match the planned pairs.*forcerun"):
        read_pair_records([folder], keys[:-1])
    with pytest.raises(MissingFileError, match="zest2.csv does not exist; build it"):
        concordance_table(
            [folder],
            {"zest": tmp_path / "zest2.csv"},
            ["zest", "cka"],
            pairs_csv=out["pairs"],
            correlations_csv=out["correlations"],
            relations_csv=out["relations"],
        )


# ---------------------------------------------------------------------------------------------
# Planning from the configuration


def _tiny():
    return validate_config(yaml.safe_load(TINY_CONFIG.read_text()))


COMPARED = [PARENT, OTHER, FINETUNE, PRUNE, TRANSFER]


def _plan(config, compared):
    return plan_concordance(config, ModelCatalog(config), compared)


def test_family_plan_of_the_tiny_config_leaves_out_the_transfer():
    plan = _plan(_tiny(), COMPARED)
    assert plan.parent == PARENT and plan.dataset == "digits"
    assert set(plan.models) == {PARENT, OTHER, FINETUNE, PRUNE}
    assert len(plan.pairs) == 6 and pair_key(PARENT, OTHER) in plan.pairs
    signature_methods = tuple(_tiny()["distances"]["methods"])
    assert plan.methods == (*signature_methods, "cka", "stitching", "stitching_ps_inv")
    assert plan.distance_methods == list(signature_methods)  # the tables the table rule reads
    chunks = plan.chunks
    assert len(chunks) == 2 and sorted(itertools.chain(*chunks)) == sorted(plan.pairs)
    for i, chunk in enumerate(chunks):
        assert {m for k in chunk for m in plan.pairs[k]} == set(plan.chunk_models(i))


def test_default_config_plans_one_family_of_ten_models():
    from modelkin.config import load_config

    config = load_config(REPO / "config.yaml")
    zoo = [f"digits/lenet/standard/i{s}-d{s}" for s in range(4)]
    compared = zoo + list(ModelCatalog(config).derived)
    plan = _plan(config, compared)
    derived = [m for m in plan.models if m.startswith("derived/")]
    assert len(plan.models) == 10 and len(plan.pairs) == 45 and set(zoo) <= set(plan.models)
    assert all(f"/{PARENT}/" in m for m in derived) and not any("/transfer/" in m for m in derived)


def test_plan_switches_and_errors():
    config = _tiny()
    off = copy.deepcopy(config)
    off["concordance"]["enabled"] = False
    assert _plan(off, COMPARED) is None
    no_parent = copy.deepcopy(config)
    no_parent["derived"]["parents"] = []
    assert _plan(no_parent, [PARENT, OTHER]) is None  # auto: nothing to compare
    no_parent["concordance"]["enabled"] = True
    with pytest.raises(ConcordanceError, match="set concordance.parent or derived.parents"):
        _plan(no_parent, [PARENT, OTHER])
    listed = copy.deepcopy(config)
    listed["concordance"]["models"] = [PARENT, OTHER, TRANSFER]
    with pytest.raises(ConcordanceError, match="transfers to another task.*remove them"):
        _plan(listed, COMPARED)
    listed["concordance"]["models"] = [PARENT, OTHER, "digits/lenet/madry/i0-d0"]
    with pytest.raises(
        ConcordanceError, match="not in the distance tables; add them to distances.extra_models"
    ):
        _plan(listed, COMPARED)
    listed["concordance"]["models"] = [PARENT, OTHER, FINETUNE]
    assert len(_plan(listed, COMPARED).pairs) == 3
    every = copy.deepcopy(config)
    every["concordance"]["models"] = "all"
    assert set(_plan(every, COMPARED + ["digits/lenet/madry/i0-d0"]).models) == {
        PARENT,
        OTHER,
        FINETUNE,
        PRUNE,
        "digits/lenet/madry/i0-d0",
    }
    stray = copy.deepcopy(config)
    stray["concordance"]["parent"] = "digits/lenet/madry/i1-d1"
    with pytest.raises(ConcordanceError, match="not among the models of the distance tables"):
        _plan(stray, COMPARED)


def test_stitch_options_layer_preset_keys_and_options():
    opts = stitch_options({"preset": "paper", "epochs": 2, "options": {"l1": 0.1}})
    assert (opts["init"], opts["target_type"], opts["epochs"], opts["l1"]) == (
        "ps_inv",
        "soft_2",
        2,
        0.1,
    )
    assert opts["robust_eval"] is False and opts["measures"] == ["cka"]
    assert stitch_options({"preset": None})["init"] == "random"
    with pytest.raises(ValueError, match="unknown stitching option"):
        stitch_options({"options": {"epoch": 2}})


def test_settings_of_an_empty_config_are_the_schema_defaults():
    """One source per setting: what the plan gives the pair jobs of a config that sets nothing
    but a parent is what the schema declares, and so are the library's defaults."""
    from modelkin.concordance import chunk_job, schema_defaults
    from modelkin.config import schema

    section = schema()["properties"]["concordance"]["properties"]
    declared = {k: v["default"] for k, v in section["stitch"]["properties"].items()}
    empty = validate_config({})
    assert _plan(empty, ModelCatalog(empty).zoo_of()) is None  # no parent: nothing to compare
    config = validate_config({"concordance": {"parent": PARENT}})
    catalog = ModelCatalog(config)
    plan = plan_concordance(config, catalog, catalog.zoo_of())
    job = chunk_job(config, plan, 0)
    for key in ("layer", "images", "split"):
        assert job[key] == section[key]["default"], key
    assert plan.jobs == section["jobs"]["default"]
    for key, value in declared.items():
        if key != "options":  # merged into the options themselves
            assert job["stitch"][key] == value, key
    assert job["stitch"] == stitch_options() == stitch_options(declared)
    assert schema_defaults()["stitch"] == declared


def test_user_facing_errors_are_input_errors():
    assert issubclass(ConcordanceError, InputError)
    config = _tiny()
    config["concordance"]["parent"] = "digits/lenet/standard/i9-d9"
    with pytest.raises(InputError, match="concordance.parent: .* not a zoo model .*zoo.seeds"):
        _plan(config, COMPARED)
    with pytest.raises(ConcordanceError, match="concordance.stitch: unknown stitching option"):
        stitch_options({"options": {"epoch": 2}})
    with pytest.raises(ConcordanceError, match="unknown stitching preset 'papr'"):
        stitch_options({"preset": "papr"})


# ---------------------------------------------------------------------------------------------
# One pair end to end


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, digits_file):
    from modelkin.data import load_split
    from modelkin.models import seeded_model
    from modelkin.train import TrainRecipe, fit

    root = tmp_path_factory.mktemp("concordance-models")
    paths = {}
    for seed in (0, 1):
        model = seeded_model("lenet", "digits", seed)
        recipe = TrainRecipe(optimizer="adam", lr=3e-3, epochs=1, batch_size=32, train_limit=256)
        fit(model, load_split(digits_file, "train"), recipe, data_seed=seed, device="cpu")
        name = f"digits/lenet/standard/i{seed}-d{seed}"
        meta = {
            "arch": "lenet",
            "dataset": "digits",
            "num_classes": 10,
            "algorithm": "standard",
            "name": name,
            "init_seed": seed,
            "data_seed": seed,
        }
        paths[name] = save_checkpoint(root / f"m{seed}.safetensors", model, meta)
        if seed == 0:  # the same weights under another name (another file hash): a perfect copy
            paths[COPY] = save_checkpoint(
                root / "copy.safetensors",
                model,
                {**meta, "name": COPY, "init_seed": 7, "data_seed": 7},
            )
    five = seeded_model("lenet", "digits", 3, num_classes=5)
    paths["five"] = save_checkpoint(
        root / "five.safetensors",
        five,
        {"arch": "lenet", "dataset": "digits", "num_classes": 5, "classes": [5, 6, 7, 8, 9]},
    )
    return paths


def test_pairs_end_to_end_known_answers(tmp_path, checkpoints, digits_file):
    from modelkin.checkpoint import load_checkpoint
    from modelkin.data import load_split
    from modelkin.models.layers import capture
    from modelkin.stitching import load_result

    pairs = [[pair_key(PARENT, COPY), PARENT, COPY], [pair_key(PARENT, OTHER), PARENT, OTHER]]
    stitch = stitch_options({"epochs": 1, "train_limit": 128, "measure_images": 16})
    records = concordance_pairs(
        checkpoints,
        digits_file,
        tmp_path / "job",
        pairs=pairs,
        layer="relu3",
        measures=["cka"],
        stitch=stitch,
        images=64,
        device="cpu",
    )
    same, other = records
    # a model and its copy: CKA 1, least-squares stitching reproduces the model exactly
    # (relative accuracy 1)
    assert same["measures"]["cka"]["value"] == pytest.approx(1.0, abs=1e-9)
    assert same["stitching"]["stitching_ps_inv"] == pytest.approx(1.0, abs=1e-9)
    # CKA as an independent numpy computation (Kornblith et al., centred):
    # ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
    probe = load_split(digits_file, "test", limit=64).x
    acts = []
    for name in (PARENT, OTHER):
        with torch.no_grad():
            x = (
                capture(load_checkpoint(checkpoints[name]).model.eval(), probe, ["relu3"])["relu3"]
                .double()
                .numpy()
            )
        acts.append(x - x.mean(0))
    X, Y = acts
    expected = np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    assert other["measures"]["cka"]["value"] == pytest.approx(expected, rel=1e-9)
    assert other["measures"]["cka"]["samples"] == 64 and other["lineage"]["b"]["name"] == OTHER
    # the stitching verdict is the mean of the two directions, each as its stitching result says
    directions = other["stitching"]["directions"]
    for d in ("a_to_b", "b_to_a"):
        payload, _ = load_result(
            tmp_path / "job" / "stitching" / pair_key(PARENT, OTHER) / f"{d}.json",
            with_tensors=False,
        )
        assert payload["relative_accuracy"] == directions[d]["relative_accuracy"]
        assert payload["options"]["init"] == "ps_inv" and payload["options"]["epochs"] == 1
    assert payload["model1"]["name"] == OTHER  # b_to_a: model 1 is B
    assert other["stitching"]["stitching"] == pytest.approx(
        (
            directions["a_to_b"]["relative_accuracy"]["after"]
            + directions["b_to_a"]["relative_accuracy"]["after"]
        )
        / 2
    )
    assert sorted(p.name for p in (tmp_path / "job").glob("*.json")) == sorted(
        f"{k}.json" for k, _, _ in pairs
    )


def test_pairs_of_different_tasks_are_refused(tmp_path, checkpoints, digits_file):
    with pytest.raises(
        ConcordanceError, match="different tasks.*remove one of them from concordance.models"
    ):
        concordance_pairs(
            checkpoints,
            digits_file,
            tmp_path / "job",
            pairs=[["k", PARENT, "five"]],
            measures=["cka"],
            device="cpu",
        )
    with pytest.raises(ConcordanceError, match="no checkpoint given for nowhere"):
        concordance_pairs(
            checkpoints, digits_file, tmp_path / "job", pairs=[["k", PARENT, "nowhere"]]
        )
