"""Signature distances: known answers, alignment,
symmetry, triangle inequality, references, tables."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from modelkin.distances import (
    InsufficientReference,
    InsufficientReferenceWarning,
    Setting,
    Side,
    Verdict,
    reference_distance,
)
from modelkin.distances.calibration import Judgement
from modelkin.signatures import METHODS, get_distance, get_method
from modelkin.signatures.gradfield.distance import (
    all_field_distances,
    gradfield_pairwise,
    per_step_statistics,
)
from modelkin.signatures.zest.distance import align_classes, greedy_assignment, zest_distance

REGISTRY = {d.name: d for m in METHODS.values() for d in m.distances}


def distances_for(method):
    return get_method(method).distances


def pairwise_distances(method, signatures):
    return get_method(method).pairwise(signatures)


ZEST_METRICS = ("cos", "l1", "l2", "linf")


def random_signature(rng, rows=40, classes=10):
    return rng.normal(size=(rows, classes))


# ---------------------------------------------------------------------------------------------
# Greedy class alignment (METHODS.md section 1)


def test_greedy_assignment_takes_global_minima_in_order():
    cost = np.array([[1.0, 5.0, 0.5], [0.2, 3.0, 4.0]])
    # 0.2 at (1, 0) first; then row 0 keeps columns 1 and 2 -> 0.5 at (0, 2)
    assert greedy_assignment(cost).tolist() == [2, 0]


def test_greedy_assignment_is_greedy_not_optimal():
    # The optimal assignment (0->1, 1->0) costs 4; greedy
    # takes the global minimum 1 first and pays 101.
    cost = np.array([[1.0, 2.0], [2.0, 100.0]])
    assert greedy_assignment(cost).tolist() == [0, 1]


def test_greedy_assignment_needs_rows_le_columns():
    with pytest.raises(ValueError, match="no more rows than columns"):
        greedy_assignment(np.zeros((3, 2)))


@pytest.mark.parametrize("metric", ZEST_METRICS)
def test_permuted_classes_have_distance_zero_after_alignment(metric):
    rng = np.random.default_rng(0)
    a = random_signature(rng)
    permutation = rng.permutation(10)
    b = a[:, permutation]
    assert zest_distance(a, b, metric) == pytest.approx(0.0, abs=1e-12)
    assert zest_distance(a, b, metric, align=False) > 0.1
    a_aligned, b_aligned = align_classes(a, b, metric)
    np.testing.assert_array_equal(a_aligned, b_aligned)


@pytest.mark.parametrize("metric", ZEST_METRICS)
def test_different_class_counts_align_the_larger_models_columns(metric):
    rng = np.random.default_rng(1)
    large = random_signature(rng, classes=10)
    chosen = [7, 2, 9, 0, 4]
    small = large[:, chosen]
    for first, second in ((small, large), (large, small)):
        assert zest_distance(first, second, metric) == pytest.approx(0.0, abs=1e-12)
    a_aligned, b_aligned = align_classes(small, large, metric)
    assert a_aligned.shape == b_aligned.shape == (40, 5)
    np.testing.assert_array_equal(b_aligned, small)


def test_zest_known_answers():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0]])
    # Alignment keeps the identity here; flattened a = (1, 0, 0, 2), b = (2, 0, 0, 1).
    assert zest_distance(a, b, "cos") == pytest.approx(1 - 4 / 5)
    assert zest_distance(a, b, "l1") == pytest.approx(2.0)
    assert zest_distance(a, b, "l2") == pytest.approx(math.sqrt(2.0))
    assert zest_distance(a, b, "linf") == pytest.approx(1.0)


def test_zest_cos_ignores_scale_and_zero_vector_counts_as_orthogonal():
    rng = np.random.default_rng(2)
    a = random_signature(rng)
    assert zest_distance(a, 3.5 * a, "cos") == pytest.approx(0.0, abs=1e-12)
    assert zest_distance(a, -a, "cos", align=False) == pytest.approx(2.0)
    # Aligned, each column of -a is matched to the column of a it is least opposed to: well below 2.
    assert zest_distance(a, -a, "cos") < 1.5
    assert zest_distance(a, np.zeros_like(a), "cos") == 1.0


def test_zest_rejects_signatures_from_different_probes():
    with pytest.raises(ValueError, match="same probe"):
        zest_distance(np.zeros((5, 10)), np.zeros((6, 10)))
    with pytest.raises(ValueError, match="unknown Zest metric"):
        zest_distance(np.zeros((5, 10)), np.zeros((5, 10)), "l3")


@pytest.mark.parametrize("metric", ZEST_METRICS)
def test_zest_distances_are_symmetric(metric):
    rng = np.random.default_rng(3)
    for classes_a, classes_b in ((10, 10), (5, 10), (10, 7)):
        a = random_signature(rng, classes=classes_a)
        b = random_signature(rng, classes=classes_b)
        assert zest_distance(a, b, metric) == pytest.approx(zest_distance(b, a, metric), rel=1e-12)


def _triangle_violations(distance, trios) -> int:
    count = 0
    for trio in trios:
        for x, y, z in itertools.permutations(trio):
            count += distance(x, z) > distance(x, y) + distance(y, z) + 1e-9
    return count


def _zest_trios(rng, n):
    # Near-copies, noisy copies and a class-permuted copy, so that pairs need different alignments.
    for _ in range(n):
        base = random_signature(rng, rows=12, classes=6)
        trio = [base + rng.normal(scale=s, size=base.shape) for s in rng.uniform(0.05, 2.0, size=3)]
        trio[int(rng.integers(3))] = trio[0][:, rng.permutation(6)]
        yield trio


@pytest.mark.parametrize("metric", ["l1", "l2", "linf"])
def test_zest_lp_norms_are_metrics_for_a_fixed_class_order(metric):
    trios = list(_zest_trios(np.random.default_rng(4), 50))
    assert _triangle_violations(lambda a, b: zest_distance(a, b, metric, align=False), trios) == 0


def test_greedy_alignment_can_break_the_triangle_inequality():
    # Why the registry does not call the aligned Zest lp distances metrics.
    trios = list(_zest_trios(np.random.default_rng(4), 50))
    assert _triangle_violations(get_distance("zest", "linf"), trios) > 0
    assert not any(d.is_metric for d in distances_for("zest"))


@pytest.mark.parametrize("name", [n for n, d in REGISTRY.items() if d.is_metric])
def test_triangle_inequality_for_metrics(name):
    info = REGISTRY[name]
    rng = np.random.default_rng(4)
    trios = []
    for _ in range(30):
        base = rng.normal(size=(3, 4, 16))
        trios.append(
            [base + rng.normal(scale=s, size=base.shape) for s in rng.uniform(0.05, 2.0, size=3)]
        )
    assert _triangle_violations(info, trios) == 0


def test_registry_declares_the_expected_metrics():
    assert sorted(n for n, d in REGISTRY.items() if d.is_metric) == [
        "gradfield/euclidean",
        "gradfield/zscore",
        "outputs/disagreement",
        "weights/l2",
    ]


# ---------------------------------------------------------------------------------------------
# Gradient-field distances


def test_gradfield_known_answers():
    rng = np.random.default_rng(5)
    field = rng.normal(size=(4, 6, 20))
    same = all_field_distances(field, field)
    assert same["cos"] == pytest.approx(0.0, abs=1e-12)
    assert same["euclidean"] == pytest.approx(0.0, abs=1e-9)
    assert same["zscore"] == pytest.approx(0.0, abs=1e-6)
    assert all_field_distances(field, -field)["cos"] == pytest.approx(2.0)
    scaled = all_field_distances(field, 3.0 * field + 1.0)
    assert scaled["zscore"] == pytest.approx(0.0, abs=1e-6)  # blind to scale and offset
    assert all_field_distances(field, 3.0 * field)["cos"] == pytest.approx(0.0, abs=1e-12)
    expected = (2.0 * np.linalg.norm(field, axis=2)).mean()
    assert all_field_distances(field, 3.0 * field)["euclidean"] == pytest.approx(expected)
    e1 = np.zeros((1, 2, 3))
    e1[..., 0] = 1.0
    e2 = np.zeros((1, 2, 3))
    e2[..., 1] = 1.0
    assert all_field_distances(e1, e2)["cos"] == pytest.approx(1.0)


def test_gradfield_max_over_steps_then_mean():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(2, 3, 10))
    b = a.copy()
    b[0, 1] = -a[0, 1]  # point 0, step 1 opposite: 1 - cos = 2; everything else identical
    values = all_field_distances(a, b)
    assert values["cos"] == pytest.approx(2.0 / 6)
    assert values["cos_max_step"] == pytest.approx(2.0 / 2)


def test_zscore_equals_sqrt_two_one_minus_pearson():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(3, 2, 50))
    b = a + rng.normal(size=a.shape)
    r = np.array([[np.corrcoef(a[i, k], b[i, k])[0, 1] for k in range(2)] for i in range(3)])
    assert per_step_statistics(a, b)["zscore_rms"] == pytest.approx(np.sqrt(2 * (1 - r)), rel=1e-9)


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_pairwise_matrices_match_the_pair_functions(method):
    rng = np.random.default_rng(9)
    if method == "zest":
        signatures = [random_signature(rng, rows=15, classes=c) for c in (10, 10, 5, 10)]
    else:
        base = rng.normal(size=(9, 4, 12)).astype(np.float32)
        signatures = [
            base + rng.normal(scale=s, size=base.shape).astype(np.float32)
            for s in (0.1, 0.5, 1.0, 3.0)
        ]
        signatures.append(np.zeros_like(base))  # a dead model's field: cos 0 to everything
    matrices = pairwise_distances(method, signatures)
    if method == "gradfield":  # chunking over points changes nothing
        for metric, matrix in gradfield_pairwise(signatures, chunk_points=2).items():
            np.testing.assert_allclose(matrix, matrices[metric], rtol=1e-10, atol=1e-12)
    for info in distances_for(method):
        matrix = matrices[info.metric]
        assert np.allclose(matrix, matrix.T)
        assert np.all(np.diag(matrix) == 0)
        for i, j in itertools.combinations(range(len(signatures)), 2):
            assert matrix[i, j] == pytest.approx(
                info(signatures[i], signatures[j]), rel=1e-7, abs=1e-9
            ), info.name


def test_gradfield_pairwise_rejects_mixed_shapes():
    with pytest.raises(ValueError, match="same shape"):
        gradfield_pairwise([np.zeros((2, 3, 4)), np.zeros((2, 3, 5))])


# ---------------------------------------------------------------------------------------------
# Registry metadata


def test_registry_metadata():
    assert {d.method for d in REGISTRY.values()} == set(METHODS)
    assert list(METHODS)[:2] == ["zest", "gradfield"]
    for info in REGISTRY.values():
        assert info.higher_is_similar is False
        assert info.symmetric
        assert info.range[0] == 0.0 and info.range[1] > 0
    assert [d.metric for d in distances_for("zest")][0] == "cos"
    assert {d.metric for d in distances_for("zest")} == set(ZEST_METRICS)
    assert {d.metric for d in distances_for("gradfield")} == {
        "cos",
        "euclidean",
        "cos_max_step",
        "zscore",
    }
    assert get_distance("zest/l2") is get_distance("zest", "l2")
    assert (
        not get_distance("zest", "cos").is_metric
        and get_distance("gradfield", "euclidean").is_metric
    )
    with pytest.raises(ValueError, match="valid: cos, l1, l2, linf"):
        get_distance("zest", "euclidean")
    with pytest.raises(ValueError, match="unknown signature method 'cka'"):
        get_method("cka")


def random_signature_of(method: str, rng) -> np.ndarray:
    """A random array of the shape and kind each method's signatures have."""
    from modelkin.signatures.baselines.fingerprint import correlation_matrix
    from modelkin.signatures.baselines.outputs import softmax

    if method == "gradfield":
        return rng.normal(size=(3, 4, 10))
    if method == "weights":
        return rng.normal(size=50)
    if method == "outputs":
        return softmax(rng.normal(size=(20, 10)))
    if method == "output_correlation":
        return correlation_matrix(rng.normal(size=(12, 10)))
    return rng.normal(size=(20, 10))


def test_values_stay_in_the_declared_range():
    rng = np.random.default_rng(10)
    for info in REGISTRY.values():
        for _ in range(5):
            a, b = random_signature_of(info.method, rng), random_signature_of(info.method, rng)
            value = info(a, b)
            assert info.range[0] <= value <= info.range[1], info.name
            assert info(a, a) == pytest.approx(0.0, abs=1e-9), info.name


# ---------------------------------------------------------------------------------------------
# References and normalisation


def test_reference_mean_spread_and_normalised_distance():
    ref = reference_distance(
        [1.0, 2.0, 3.0, 4.0, 5.0], metric="cos", setting="s", families=6, min_families=5
    )
    assert (ref.mean, ref.n, ref.families, ref.sufficient) == (3.0, 5, 6, True)
    assert ref.std == pytest.approx(math.sqrt(2.5))
    judgement = Judgement(math.log(1.5), 0.0, -3.0, 0.001, "related", 5, 6, 9.0)
    close = Verdict.of("cos", 1.5, ref, judgement, alpha=0.01, model="pairwise")
    assert close.normalised == pytest.approx(0.5) and close.verdict == "related"
    assert "p = 0.001" in close.describe() and "6 families" in close.describe()


def test_insufficient_reference_errors_with_the_fix_or_gives_no_verdict():
    with pytest.raises(
        InsufficientReference, match="3 independent families.*fewer than the 5"
    ) as info:
        reference_distance([1.0, 2.0], metric="cos", setting="x:a/b~a/b", families=3,
                           on_insufficient="error")  # fmt: skip
    message = str(info.value)
    assert "distances.reference_models" in message and "x:a/b~a/b" in message
    with pytest.warns(InsufficientReferenceWarning, match="2 independent families"):
        ref = reference_distance([1.0, 3.0], metric="l2", setting="s", families=2)
    assert (ref.mean, ref.n, ref.sufficient) == (2.0, 2, False)
    judgement = Judgement(0.0, 0.0, -9.0, 1e-9, "related", 2, 2, 1.0)
    verdict = Verdict.of("l2", 0.1, ref, judgement, alpha=0.01, model="pairwise")
    assert verdict.verdict == "not enough independent models"  # never a guess
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsufficientReferenceWarning)
        empty = reference_distance([], metric="l2", setting="s", families=0)
    assert empty.n == 0 and math.isnan(empty.mean)
    with pytest.raises(ValueError, match="on_insufficient"):
        reference_distance([1.0], metric="l2", setting="s", families=1, on_insufficient="ignore")


def test_setting_is_unordered_and_round_trips_with_class_sets():
    one = Setting.of("digits", Side("mlp", "standard"), Side("lenet", "madry", (5, 6)))
    other = Setting.of("digits", Side("lenet", "madry", (5, 6)), Side("mlp", "standard"))
    assert one == other and one.key == "digits:lenet/madry[5,6]~mlp/standard"
    assert Setting.from_key(one.key) == one
    assert Setting.of("d", Side("a", "b"), Side("a", "b", (5,))) != Setting.of(
        "d", Side("a", "b"), Side("a", "b")
    )
    with pytest.raises(ValueError, match="not a setting key"):
        Setting.from_key("digits-lenet")


# ---------------------------------------------------------------------------------------------
# Distance tables on synthetic signatures with known structure


def _model(tmp_path, name, **meta):
    """A tiny checkpoint whose metadata says what the
    table needs (its weights do not matter here)."""
    import torch

    from modelkin.checkpoint import save_checkpoint
    from modelkin.models import seeded_model

    path = tmp_path / "models" / f"{name.replace('/', '_')}.safetensors"
    seed = meta.get("init_seed", 0) % 1000
    model = seeded_model("mlp", "digits", seed)
    with torch.no_grad():  # distinct files even for equal seeds: a sha256 identifies a model
        model.fc1.bias.add_(len(name) * 1e-3 + hash(name) % 97 * 1e-5)
    save_checkpoint(
        path, model, {"name": name, "arch": "mlp", "dataset": "digits", "num_classes": 10, **meta}
    )
    return path


def _collection(tmp_path, n_zoo=4, probe_seed=0):
    """n_zoo independent zoo models with random signatures; a fine-tuned copy of zoo 0 (parent +
    small noise), a pruned copy of that (grandchild) and a second derivation of zoo 0 (sibling)."""
    from modelkin.checkpoint import load_checkpoint
    from modelkin.distances.tables import Member
    from modelkin.signatures import Computed, read_probe, write_probe, write_signature

    rng = np.random.default_rng(probe_seed)
    probe = write_probe(
        tmp_path / f"probe{probe_seed}.h5",
        {"images": rng.normal(size=(2, 1, 4, 4))},
        kind="zest",
        params={"seed": probe_seed},
    )
    members, data = [], {}
    zoo = [f"digits/mlp/standard/i{s}-d{s}" for s in range(n_zoo)]
    for s, name in enumerate(zoo):
        data[name] = rng.normal(size=(30, 10))
        members.append(
            (name, _model(tmp_path, name, algorithm="standard", init_seed=s, data_seed=s))
        )
    derived = {
        f"derived/digits/finetune/{zoo[0]}/s0": ("finetune", zoo[0], 0.05),
        f"derived/digits/prune/derived/digits/finetune/{zoo[0]}/s0/s0": (
            "prune",
            f"derived/digits/finetune/{zoo[0]}/s0",
            0.05,
        ),
        f"derived/digits/finetune/{zoo[1]}/s0": ("finetune", zoo[1], 0.05),
        f"derived/digits/extract_probs/{zoo[0]}/s0": ("extract_probs", zoo[0], 0.3),
    }
    for name, (kind, parent, noise) in derived.items():
        data[name] = data[parent] + rng.normal(scale=noise, size=(30, 10))
        members.append(
            (
                name,
                _model(
                    tmp_path,
                    name,
                    algorithm=kind,
                    derivation=kind,
                    parent=parent,
                    root_algorithm="standard",
                    init_seed=10_000 + len(name),
                    data_seed=20_000 + len(name),
                ),
            )
        )
    out = []
    for name, ckpt in members:
        sig = write_signature(
            tmp_path / "sigs" / f"{name.replace('/', '_')}_{probe_seed}.h5",
            Computed(data[name].astype(np.float32), {"outputs": "logits"}),
            method=get_method("zest"),
            checkpoint=load_checkpoint(ckpt),
            probe=read_probe(probe),
            name=name,
        )
        out.append(Member.from_signature(name, sig))
    return out


def test_distance_table_relations_references_and_verdicts(tmp_path):
    import pandas as pd

    from modelkin.distances.relatedness import relatedness_table
    from modelkin.distances.tables import distance_table, write_distance_table

    members = _collection(tmp_path, n_zoo=6)
    table = distance_table("zest", members, calibration={"min_families": 5})
    rows = {(r["model_a"], r["model_b"]): r for r in table.rows}
    assert len(rows) == 10 * 9 // 2
    zoo0, zoo1 = "digits/mlp/standard/i0-d0", "digits/mlp/standard/i1-d1"
    child = f"derived/digits/finetune/{zoo0}/s0"
    grandchild = f"derived/digits/prune/{child}/s0"

    def row(a, b):
        return rows.get((a, b)) or rows[(b, a)]

    assert (
        row(zoo0, child)["relation"] == "derived-by-finetune"
        and row(zoo0, child)["ancestor"] == zoo0
    )
    assert row(zoo0, grandchild)["relation"] == "derived-by-finetune+prune"
    assert row(child, grandchild)["relation"] == "derived-by-prune"
    assert row(child, f"derived/digits/extract_probs/{zoo0}/s0")["relation"] == "common-ancestor"
    assert row(zoo0, zoo1)["relation"] == "independent" and row(zoo0, zoo1)["reference_pair"]
    # every unrelated pair is part of the reference, derived models of other parents included
    assert row(child, zoo1)["relation"] == "independent" and row(child, zoo1)["reference_pair"]
    setting = "digits:mlp/standard~mlp/standard"
    assert set(table.references) == {setting}
    ref = table.references[setting]["cos"]
    unrelated = [r for r in table.rows if r["reference_pair"]]
    assert ref.n == len(unrelated) and ref.families == 6 and ref.sufficient
    assert ref.mean == pytest.approx(np.mean([r["cos"] for r in unrelated]))
    fine = row(zoo0, child)
    assert fine["cos_normalised"] < 0.1 and fine["cos_verdict"] == "related"
    assert fine["cos_p_value"] < 1e-3 and fine["cos_reference_families"] == 6
    # an unrelated pair is judged with its own distance left out of its reference
    assert row(zoo0, zoo1)["cos_reference_n"] == ref.n - 1
    write_distance_table(table, tmp_path / "zest.csv", tmp_path / "zest_reference.json")
    frame = pd.read_csv(tmp_path / "zest.csv")
    assert {
        "cos",
        "cos_normalised",
        "cos_p_value",
        "cos_verdict",
        "cos_reference_mean",
        "cos_reference_n",
        "cos_reference_families",
        "l1",
        "linf",
        "relation",
        "setting",
    } <= set(frame.columns)
    relatedness = relatedness_table(
        tmp_path / "zest.csv",
        tmp_path / "rel.csv",
        alpha=0.01,
        reference=tmp_path / "zest_reference.json",
    )
    finetune = relatedness[
        (relatedness["derivation"] == "finetune") & (relatedness["metric"] == "cos")
    ].iloc[0]
    # the headline's verdicts on held-out unrelated models, from the reference file
    # (two families held out of 6 leave 4, too few for a verdict: measured as not measurable)
    checks = table.held_out[setting]
    assert checks["member"].judged > 0 and checks["both"].judged == 0
    assert finetune["fpr_held_out_member"] == pytest.approx(checks["member"].rate)
    assert np.isnan(finetune["fpr_held_out_both"])
    assert relatedness.loc[relatedness["metric"] == "l1", "fpr_held_out_both"].isna().all()
    # positives: zoo0-child, zoo1-its child; negatives: independent pairs that involve zoo0 or zoo1
    assert finetune["n_positive"] == 2 and finetune["auc"] == 1.0
    assert finetune["auc_normalised"] == 1.0 and finetune["auc_calibrated"] == 1.0
    assert finetune["tpr_at_alpha"] == 1.0 and finetune["tpr_at_fpr_1pc"] == 1.0
    assert finetune["alpha"] == 0.01 and 0 <= finetune["fpr_at_alpha"] <= 0.05
    assert finetune["n_negative"] == sum(
        1
        for r in table.rows
        if r["relation"] == "independent" and {zoo0, zoo1} & {r["model_a"], r["model_b"]}
    )
    assert set(relatedness["derivation"]) == {
        "finetune",
        "finetune+prune",
        "prune",
        "extract_probs",
    }


def test_relatedness_auc_follows_the_distance_direction(tmp_path):
    import pandas as pd

    from modelkin.distances.relatedness import relatedness_table

    rows = []
    for i, (relation, value) in enumerate(
        [
            ("derived-by-finetune", 0.1),
            ("derived-by-finetune", 0.5),
            ("independent", 0.3),
            ("independent", 0.9),
            ("independent", 1.2),
        ]
    ):
        rows.append(
            {
                "model_a": "P",
                "model_b": f"M{i}",
                "relation": relation,
                "ancestor": "P" if "derived" in relation else "",
                **{
                    f"{metric}{suffix}": value
                    for metric in ("cos", "l1", "l2", "linf")
                    for suffix in ("", "_normalised", "_p_value")
                },
                **{f"{m}_verdict": "unrelated" for m in ("cos", "l1", "l2", "linf")},
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "zest.csv", index=False)
    table = relatedness_table(tmp_path / "zest.csv")
    # pairs (pos, neg) ordered correctly: 0.1 beats all 3; 0.5 beats 0.9 and 1.2 -> 5 of 6
    assert table.loc[table["metric"] == "cos", "auc"].item() == pytest.approx(5 / 6)


def test_insufficient_reference_in_a_table_errors_or_warns(tmp_path):
    from modelkin.distances.tables import distance_table

    members = _collection(tmp_path, n_zoo=3)  # 3 independent families < 5
    with pytest.raises(InsufficientReference, match="3 independent families"):
        distance_table("zest", members, on_insufficient_reference="error")
    with pytest.warns(InsufficientReferenceWarning):
        table = distance_table("zest", members, on_insufficient_reference="warn")
    assert all(r["cos_verdict"] == "not enough independent models" for r in table.rows)


def test_signatures_from_different_probes_are_not_compared(tmp_path):
    from modelkin.distances import signature_distances
    from modelkin.signatures import SignatureMismatch

    first = _collection(tmp_path, n_zoo=2, probe_seed=0)
    second = _collection(tmp_path, n_zoo=2, probe_seed=1)
    with pytest.raises(SignatureMismatch, match="different probes"):
        signature_distances(first[0].read(), second[1].read())
    values = signature_distances(first[0].read(), first[1].read())
    assert list(values) == ["cos", "l1", "l2", "linf"]
    assert signature_distances(first[0].read(), first[1].read(), ["l2"]) == {
        "l2": pytest.approx(values["l2"])
    }
