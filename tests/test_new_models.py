"""Verdicts for models outside the null's fit (a user's suspect, ``modelkin compare``): their
statistics are ranked among held-out families' statistics, and that holds the false-positive
rate where ranking them among the fitted pairs' own does not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers import synthetic_families
from modelkin.distances.calibration import CalibrationSettings, _p_value, fit_effects, fit_null
from modelkin.distances.new_models import (
    _leave_one_out_medians,
    held_out_check,
    held_out_statistics,
    judge_member_and_new,
    judge_new,
    member_and_new_statistic,
    new_pair_statistic,
)


def blocky_table(rng, n_families=10, copies=2, *, close_pairs=0.2, block=0.6, noise_sd=0.1):
    """Unrelated models with log d = mu + a_x + a_y + b_FG + e: a fraction ``close_pairs`` of the
    family pairs are close-knit (b_FG = -|N(0, block)|), as unrelated families that happen to be
    alike are on the digits zoo; each family is a model and ``copies`` near-copies."""
    members, families = synthetic_families(rng, n_families, copies, 0.3, 0.05)
    blocks = {
        frozenset(p): -abs(rng.normal(0, block)) * (rng.random() < close_pairs)
        for p in itertools.combinations(range(n_families), 2)
    }
    pairs, distances = [], []
    for a, b in itertools.combinations(members, 2):
        fa, fb = members[a][0], members[b][0]
        if fa != fb:
            pairs.append((a, b))
            log_d = -1.4 + members[a][1] + members[b][1] + blocks[frozenset((fa, fb))]
            distances.append(np.exp(log_d + rng.normal(0, noise_sd)))
    return pairs, np.asarray(distances), families


def test_leave_one_out_medians_are_the_medians_of_the_rest():
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 7, 10):
        values = rng.normal(size=n).round(1)  # ties included
        expected = [np.median(np.delete(values, k)) for k in range(n)]
        assert _leave_one_out_medians(values) == pytest.approx(expected)


def test_held_out_statistics_are_the_statistics_new_models_get():
    """The pools, computed in bulk, are what judging each held-out model one by one gives."""
    rng = np.random.default_rng(1)
    pairs, distances, families = blocky_table(rng, n_families=6, copies=1)
    settings = CalibrationSettings(model="ranked", min_families=4)
    fit = fit_null(pairs, distances, families, settings)
    logs = {frozenset(p): np.log(d) for p, d in zip(pairs, distances, strict=True)}
    pairwise = CalibrationSettings(model="pairwise", min_families=4)
    groups: dict[str, list[str]] = {}
    for model in sorted(families):
        groups.setdefault(families[model], []).append(model)

    def without(left_out):
        kept = [(p, d) for p, d in zip(pairs, distances, strict=True) if not set(p) & left_out]
        return fit_effects([p for p, _ in kept], [d for _, d in kept], families, pairwise)

    member, both = [], []
    for held in groups.values():
        sub = without(set(held))
        for model in held:
            to_fit = {x: logs[frozenset((model, x))] for x in sub.index}
            for x, log_d in to_fit.items():
                rest = {y: v for y, v in to_fit.items() if y != x}
                member.append(member_and_new_statistic(sub, x, log_d, rest)[1])
    for held_a, held_b in itertools.combinations(groups.values(), 2):
        sub = without(set(held_a) | set(held_b))
        for a, b in itertools.product(held_a, held_b):
            to_a = {x: logs[frozenset((a, x))] for x in sub.index}
            to_b = {x: logs[frozenset((b, x))] for x in sub.index}
            both.append(new_pair_statistic(sub, logs[frozenset((a, b))], to_a, to_b)[1])
    assert fit.new_statistics["member"] == pytest.approx(np.sort(member))
    assert fit.new_statistics["both"] == pytest.approx(np.sort(both))
    assert held_out_statistics(fit, ("member",)).keys() == {"member"}


def test_new_models_ranked_among_held_out_statistics_keep_alpha():
    """Close-knit families: a new model's median effect does not absorb its family's closeness to
    another, so ranked among the fitted pairs' statistics it is called related too often; ranked
    among held-out statistics, at about alpha (each family left out of everything in turn)."""
    alpha = 0.05
    in_fit, held_out = [], []
    for seed in range(4):
        pairs, distances, families = blocky_table(np.random.default_rng(seed))
        fit = fit_null(pairs, distances, families, CalibrationSettings(alpha=alpha))
        held_out.append(held_out_check(fit, ("member",))["member"].rate)
        # the same statistics, ranked among the fitted pairs' own (the old p-value)
        called = judged = 0
        for family in sorted(set(families.values())):
            left = {m for m in families if families[m] == family}
            kept = [(p, d) for p, d in zip(pairs, distances, strict=True) if not set(p) & left]
            sub = fit_null([p for p, _ in kept], [d for _, d in kept], families, fit.settings,
                           held_out=())  # fmt: skip
            for model in left:
                to_fit = {
                    x: float(np.log(d))
                    for p, d in zip(pairs, distances, strict=True)
                    if model in p and (x := p[0] if p[1] == model else p[1]) in sub.index
                }
                for x, log_d in to_fit.items():
                    rest = {y: v for y, v in to_fit.items() if y != x}
                    t = member_and_new_statistic(sub, x, log_d, rest)[1]
                    p = _p_value(sub, t, sub.df)
                    called += p < alpha
                    judged += np.isfinite(p)
        in_fit.append(called / judged)
    assert np.mean(in_fit) > 1.25 * alpha, in_fit
    assert abs(np.mean(held_out) - alpha) < 0.012, held_out  # 4 x ~800 verdicts


def test_two_new_models_are_judged_by_the_both_pool_and_a_copy_is_found():
    rng = np.random.default_rng(3)
    pairs, distances, families = blocky_table(rng, n_families=8, copies=1)
    fit = fit_null(pairs, distances, families, CalibrationSettings(alpha=0.05))
    check = held_out_check(fit, ("member", "both"))
    assert check["both"].judged == 8 * 7 // 2 * 4  # every pair of families, 2 x 2 models
    assert check["both"].rate < 0.12 and check["member"].rate < 0.12
    # a suspect and its victim, both outside the fit: the victim typical, the suspect its copy
    victim = {m: float(np.exp(-1.4 + rng.normal(0, 0.1))) for m in families}
    suspect = {m: d * float(np.exp(rng.normal(0, 0.02))) for m, d in victim.items()}
    copy = judge_new(fit, float(np.exp(-1.4 - 1.5)), victim, suspect)
    assert copy.verdict == "related" and copy.p_value < 0.05
    stranger = judge_new(fit, float(np.exp(-1.4 + 0.1)), victim, suspect)
    assert stranger.verdict == "unrelated"
    member = judge_member_and_new(fit, "m0", float(np.exp(-1.4 - 1.5)), suspect)
    assert member.verdict == "related"
