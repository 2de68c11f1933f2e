"""Calibrated verdicts on synthetic distances whose truth is known: the false-positive rate is the
configured alpha, clear positives are found, too little reference says so."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers import synthetic_families
from modelkin.distances.calibration import NOT_ENOUGH, CalibrationSettings, fit_null, judge


def unrelated_table(
    rng, n_models, *, mu=-1.4, effect_sd=0.3, noise_sd=0.1, duplicates=0, skewed=False
):
    """Pairs of unrelated models with log d = mu + a_x + a_y + e; each family has 1 + duplicates
    near-copies (a parent and its derived models) that share the family's effect. ``skewed``: e
    has a long lower tail (a centred, negated gamma with shape 1: skewness -2), as unrelated
    models that happen to be alike give."""
    members, families = synthetic_families(rng, n_models, duplicates, effect_sd, 0.02)
    pairs, distances = [], []
    for a, b in itertools.combinations(members, 2):
        if members[a][0] == members[b][0]:
            continue  # same family: related, not in the null
        pairs.append((a, b))
        noise = -(rng.gamma(1.0) - 1.0) * noise_sd if skewed else rng.normal(0, noise_sd)
        distances.append(np.exp(mu + members[a][1] + members[b][1] + noise))
    return pairs, np.asarray(distances), families, members


@pytest.mark.parametrize("model", ["ranked", "pairwise", "lognormal"])
def test_false_positive_rate_is_alpha_on_unrelated_pairs(model):
    rng = np.random.default_rng(0)
    alpha = 0.05
    settings = CalibrationSettings(alpha=alpha, model=model)
    called, total = 0, 0
    for _ in range(30):
        pairs, distances, families, _ = unrelated_table(rng, 12)
        fit = fit_null(pairs, distances, families, settings)
        for (a, b), d in zip(pairs, distances, strict=True):
            called += judge(fit, a, b, d).verdict == "related"
            total += 1
    rate = called / total
    assert abs(rate - alpha) < 0.015, rate  # 30 x 66 pairs: binomial sd ~ 0.005


def test_model_effects_sharpen_the_verdict_for_a_copy_of_a_typical_model():
    """A suspect whose distance is ordinary for the null as a whole but small for these two
    models (both far from everything else) is found."""
    rng = np.random.default_rng(1)
    pairs, distances, families, members = unrelated_table(rng, 14)
    a = "m0"
    families["suspect"] = "m0"  # a derived copy of m0: its family
    # the suspect is unrelated to every other family, with m0's typicality
    for other in members:
        if families[other] != "m0":
            pairs.append(("suspect", other))
            expected = -1.4 + members["m0"][1] + members[other][1]
            distances = np.append(distances, np.exp(expected + rng.normal(0, 0.1)))
    close = float(np.exp(-1.4 + members[a][1] + members[a][1] - 0.6))
    pairwise = fit_null(pairs, distances, families, CalibrationSettings(model="pairwise"))
    judgement = judge(pairwise, "suspect", a, close)
    assert judgement.verdict == "related" and judgement.p_value < 1e-3
    assert judgement.ratio == pytest.approx(np.exp(-0.6), rel=0.2)


def test_too_few_families_is_said_not_guessed():
    rng = np.random.default_rng(2)
    pairs, distances, families, _ = unrelated_table(rng, 4, duplicates=3)
    fit = fit_null(pairs, distances, families, CalibrationSettings(min_families=5))
    assert not fit.sufficient
    judgement = judge(fit, pairs[0][0], pairs[0][1], distances[0] / 100)
    assert judgement.verdict == NOT_ENOUGH
    # near-duplicate pairs do not count as independent evidence
    assert fit.df <= 4 * 3 / 2


def test_empirical_p_values_count_and_cannot_go_below_one_over_n_plus_one():
    rng = np.random.default_rng(3)
    pairs, distances, families, _ = unrelated_table(rng, 8)
    fit = fit_null(pairs, distances, families, CalibrationSettings(model="empirical"))
    far = judge(fit, "x", "y", distances.max() * 2)
    near = judge(fit, "x", "y", distances.min() / 2)
    assert far.p_value == pytest.approx(1.0)
    assert near.p_value == pytest.approx(1 / (len(distances) + 1))


def false_positive_rate(model, alpha, rng, repeats, **table):
    settings = CalibrationSettings(alpha=alpha, model=model)
    called, total = 0, 0
    for _ in range(repeats):
        pairs, distances, families, _ = unrelated_table(rng, 12, **table)
        fit = fit_null(pairs, distances, families, settings)
        for (a, b), d in zip(pairs, distances, strict=True):
            called += judge(fit, a, b, d).verdict == "related"
            total += 1
    return called / total


def test_a_skewed_null_misleads_the_t_tail_but_not_the_ranks():
    """Unrelated pairs with a long lower tail: the Student t calls more than alpha of them
    related; their own ranks hold alpha (each pair left out of its own)."""
    alpha = 0.02
    t_tail = false_positive_rate("pairwise", alpha, np.random.default_rng(5), 30, skewed=True)
    ranked = false_positive_rate("ranked", alpha, np.random.default_rng(5), 30, skewed=True)
    assert t_tail > 1.5 * alpha, t_tail
    assert abs(ranked - alpha) < 0.008, ranked  # 30 x 66 pairs: binomial sd ~ 0.003


def test_ranked_p_values_count_and_continue_the_t_tail_below_every_unrelated_pair():
    from modelkin.distances.calibration import _t_cdf

    rng = np.random.default_rng(6)
    pairs, distances, families, _ = unrelated_table(rng, 10, duplicates=1)
    ranked = fit_null(pairs, distances, families, CalibrationSettings(model="ranked"))
    pairwise = fit_null(pairs, distances, families, CalibrationSettings(model="pairwise"))
    statistics = ranked.statistics
    n = len(statistics)
    assert n == len(pairs) and np.all(np.diff(statistics) >= 0)
    # an unrelated pair of the null is ranked among the others: its own statistic left out
    a, b = pairs[0]
    own = judge(ranked, a, b, distances[0])
    others = np.delete(statistics, np.searchsorted(statistics, own.statistic))
    at_most = int((others <= own.statistic).sum())
    assert at_most == 0 or own.p_value == pytest.approx((1 + at_most) / n)
    # a parent and its copy (one family, not in the null): pairwise's t, ranked among all n
    for d in (0.2, 0.15, 0.1):
        fresh = judge(ranked, "m0", "m0.d0", d)
        assert fresh.statistic == pytest.approx(judge(pairwise, "m0", "m0.d0", d).statistic)
        k = int((statistics <= fresh.statistic).sum())
        assert k == 0 or fresh.p_value == pytest.approx((1 + k) / (1 + n))
    # beyond every unrelated pair: below 1 / (1 + n), shaped like the t-tail, and monotone
    far = [judge(ranked, "m0", "m0.d0", 1e-3 * f) for f in (4.0, 2.0, 1.0)]
    assert all(j.statistic < statistics[0] for j in far)
    assert 1 / (1 + n) > far[0].p_value > far[1].p_value > far[2].p_value > 0
    expected = _t_cdf(far[2].statistic, ranked.df) / _t_cdf(statistics[0], ranked.df) / (1 + n)
    assert far[2].p_value == pytest.approx(expected)
    assert far[2].verdict == "related"


@pytest.mark.parametrize("model", ["ranked", "pairwise", "lognormal", "empirical"])
def test_a_null_read_back_from_the_reference_file_judges_new_pairs_as_the_fit_does(model, tmp_path):
    """``modelkin distance --reference`` rebuilds the null from the JSON; every model must give
    the verdict the in-memory fit gives (lognormal and empirical need the stored distances)."""
    import json

    from modelkin.distances.new_models import judge_new
    from modelkin.distances.verdicts import REFERENCE_KIND, ReferenceFile

    rng = np.random.default_rng(3)
    pairs, distances, families, _ = unrelated_table(rng, 8)
    settings = CalibrationSettings(model=model, min_families=4, min_partners=2)
    fit = fit_null(pairs, distances, families, settings)
    document = {
        "kind": REFERENCE_KIND,
        "method": "zest",
        "calibration": {"model": model, "min_families": 4, "min_partners": 2},
        "references": {"s": {"cos": {"null": fit.to_dict(), "pairs": [list(p) for p in pairs]}}},
        "models": {m: {"family": f} for m, f in families.items()},
    }
    path = tmp_path / "zest_reference.json"
    path.write_text(json.dumps(document))
    restored = ReferenceFile(path, "zest", json.loads(path.read_text())).null("s", "cos")
    partners_a = {m: float(np.exp(-1.4 + rng.normal(0, 0.1))) for m in families}
    partners_b = {m: float(np.exp(-1.4 + rng.normal(0, 0.1))) for m in families}
    for d in (0.05, 0.24, 0.6):
        expected = judge_new(fit, d, partners_a, partners_b)
        got = judge_new(restored, d, partners_a, partners_b)
        assert got.verdict == expected.verdict
        assert got.p_value == pytest.approx(expected.p_value, nan_ok=True)
