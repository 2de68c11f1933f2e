"""Verdicts for models outside a null's fit: a user's suspect, a folder's checkpoints.

A model of the fit has its effect a_x estimated jointly with everyone's; a model outside it gets
its effect from the median of log d - mu - a_x over its distances to the fit's models (robust to
a relative among them). The two statistics differ in kind: a new model's family may be close to
one other family of the fit, which the joint fit absorbs for its own members but a median does
not. Ranked among the fitted pairs' own statistics, a new unrelated model was called related at
5.2% (Zest) and 4.4% (ModelGiF) at alpha 0.01 on the default run; ranked as below, at 1.9% and
0.9% (measured by :func:`held_out_check`, docs/model-distance.md).

So the ``ranked`` null ranks a new model's statistic among **held-out statistics**, made the way
a new model's is made: each family of the null in turn is left out, the null refitted on the rest,
and the family's members judged as new models against each remaining model (pool ``member``: one
side in the fit, as a question's victim, :func:`judge_member_and_new`); and each two families in
turn are left out and their members judged against each other (pool ``both``: two new models, as
``modelkin compare``, :func:`judge_new`). Under the null the families are exchangeable, so an
unrelated new model's statistic is one more draw of the pool's kind, and its rank is a p-value.
:func:`held_out_check` measures the realised rate: each family left out of everything (also of
the pools) and judged against the rest.

Pure numpy; no torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .calibration import (
    PAIRWISE_MODELS,
    CalibrationSettings,
    Judgement,
    NullFit,
    _p_value,
    _verdict,
    fit_effects,
    judge,
)

POOLS = ("member", "both")


def effect_of_new_model(fit: NullFit, log_distances: Mapping[str, float]) -> tuple[float, int]:
    """A model outside the fit: its effect from its log distances to the fit's models (the median
    of log d - mu - a_x, robust to a relative among them), and how many it rests on."""
    values = [
        log_d - fit.mu - fit.effects[x]
        for x, log_d in log_distances.items()
        if x in fit.effects and np.isfinite(log_d)
    ]
    return (float(np.median(values)) if values else float("nan")), len(values)


def _member_and_new_t(fit: NullFit, members, log_d, effect, n_new) -> tuple[np.ndarray, ...]:
    """(expected, t) for pairs of fit members (names) and new models (their effects and how many
    distances those rest on), as arrays; NaN where either side rests on too little."""
    least = fit.settings.min_partners
    log_d, effect, n_new = (np.asarray(x, dtype=np.float64) for x in (log_d, effect, n_new))
    known = np.array([m in fit.index for m in members], dtype=bool)
    usable = known & np.array([fit.partners(m) >= least for m in members]) & (n_new >= least)
    if not np.isfinite(fit.sigma) or fit.sigma <= 0 or fit.inverse_gram is None:
        usable[:] = False
    columns = np.array([1 + fit.index.get(m, -1) for m in members], dtype=int)
    own = np.array([fit.effects.get(m, np.nan) for m in members], dtype=np.float64)
    expected = fit.mu + own + effect
    inverse = fit.inverse_gram if fit.inverse_gram is not None else np.zeros((1, 1))
    # the leverage of the row (1, e_member): the intercept's and the member's block of (X'X)^+
    leverage = inverse[0, 0] + 2.0 * inverse[0, columns] + inverse[columns, columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (log_d - expected) / (fit.sigma * np.sqrt(1.0 + leverage + 1.0 / n_new))
    nan = np.full(len(members), np.nan)
    return np.where(usable, expected, nan), np.where(usable, t, nan)


def member_and_new_statistic(
    fit: NullFit, member: str, log_d: float, log_new: Mapping[str, float]
) -> tuple[float, float]:
    """(expected log distance, t) of a model of the fit and a new model whose log distances to the
    fit's models other than ``member`` are ``log_new``; NaN where either rests on too little."""
    effect, n_new = effect_of_new_model(fit, log_new)
    expected, t = _member_and_new_t(fit, [member], [log_d], [effect], [n_new])
    return float(expected[0]), float(t[0])


def _new_pair_t(fit: NullFit, log_d, effect_a, n_a, effect_b, n_b) -> tuple[np.ndarray, ...]:
    """(expected, t) for pairs of new models (their effects and how many distances each rests
    on), as arrays; NaN where either rests on too little."""
    log_d, effect_a, n_a, effect_b, n_b = (
        np.asarray(x, dtype=np.float64) for x in (log_d, effect_a, n_a, effect_b, n_b)
    )
    usable = np.minimum(n_a, n_b) >= fit.settings.min_partners
    if not np.isfinite(fit.sigma) or fit.sigma <= 0:
        usable[:] = False
    expected = fit.mu + effect_a + effect_b
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (log_d - expected) / (fit.sigma * np.sqrt(1.0 + 1.0 / n_a + 1.0 / n_b))
    return np.where(usable, expected, np.nan), np.where(usable, t, np.nan)


def new_pair_statistic(
    fit: NullFit, log_d: float, log_a: Mapping[str, float], log_b: Mapping[str, float]
) -> tuple[float, float]:
    """(expected log distance, t) of two models outside the fit, from their log distances to the
    fit's models; NaN where either rests on too little."""
    effect_a, n_a = effect_of_new_model(fit, log_a)
    effect_b, n_b = effect_of_new_model(fit, log_b)
    expected, t = _new_pair_t(fit, [log_d], [effect_a], [n_a], [effect_b], [n_b])
    return float(expected[0]), float(t[0])


def _logs(distances: Mapping[str, float], leave_out: str | None = None) -> dict[str, float]:
    return {x: math.log(d) for x, d in distances.items() if d > 0 and x != leave_out}


def judge_new(
    fit: NullFit,
    distance: float,
    distances_a: Mapping[str, float],
    distances_b: Mapping[str, float],
) -> Judgement:
    """The verdict for two models that are not in the fit (e.g. a user's suspect and their own
    model), from their distances to the fit's models; ``ranked`` reads the p-value off the
    ``both`` pool, ``pairwise`` off the Student t; the other models use the null as a whole."""
    if fit.settings.model not in PAIRWISE_MODELS:
        return judge(fit, "", "", distance)
    log_d = math.log(distance) if distance > 0 else -math.inf
    expected, t = new_pair_statistic(fit, log_d, _logs(distances_a), _logs(distances_b))
    p = _p_value(fit, t, fit.df, pool="both")
    return _verdict(fit, log_d, expected, t, p, fit.n_pairs, fit.n_families, fit.df)


def judge_member_and_new(
    fit: NullFit, member: str, distance: float, distances_new: Mapping[str, float]
) -> Judgement:
    """The verdict for a model of the fit (``member``, e.g. a victim whose unrelated pairs are in
    the null) and a model outside it (a suspect), whose own effect comes from its distances to
    the fit's models other than ``member``; ``ranked`` reads the p-value off the ``member`` pool
    (the other null models judge the distance against the null as a whole)."""
    if fit.settings.model not in PAIRWISE_MODELS:
        return judge(fit, "", "", distance)
    log_d = math.log(distance) if distance > 0 else -math.inf
    expected, t = member_and_new_statistic(fit, member, log_d, _logs(distances_new, member))
    p = _p_value(fit, t, fit.df, pool="member")
    return _verdict(fit, log_d, expected, t, p, fit.n_pairs, fit.n_families, fit.df)


# ---------------------------------------------------------------------------------------------
# Held-out statistics and the held-out check


def _by_family(fit: NullFit) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for model in sorted({m for pair in fit.pairs for m in pair}):
        members.setdefault(fit.families[model], []).append(model)
    return members


def _rows_without(fit: NullFit, left_out: set[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    rows = [i for i, (a, b) in enumerate(fit.pairs) if a not in left_out and b not in left_out]
    return [fit.pairs[i] for i in rows], np.exp(fit.log_distances[rows])


def _effects_without(fit: NullFit, left_out: set[str], settings: CalibrationSettings) -> NullFit:
    """The null's model refitted without ``left_out``'s pairs."""
    return fit_effects(*_rows_without(fit, left_out), fit.families, settings)


def _null_without(fit: NullFit, left_out: set[str], pools: Sequence[str]) -> NullFit:
    """The null refitted without ``left_out``'s pairs, with its own held-out ``pools``."""
    sub = fit_effects(*_rows_without(fit, left_out), fit.families, fit.settings)
    sub.new_statistics = held_out_statistics(sub, pools)
    return sub


def _log_distances_of(fit: NullFit) -> dict[str, dict[str, float]]:
    """Each model's log distances to its unrelated partners in the null."""
    out: dict[str, dict[str, float]] = {}
    for (a, b), log_d in zip(fit.pairs, fit.log_distances, strict=True):
        out.setdefault(a, {})[b] = float(log_d)
        out.setdefault(b, {})[a] = float(log_d)
    return out


def _offsets(sub: NullFit, model: str, logs) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A held-out model's partners in ``sub``, its log distances to them, and log d - mu - a_x
    (what its effect is the median of)."""
    partners = [x for x in logs.get(model, {}) if x in sub.index]
    log_d = np.array([logs[model][x] for x in partners], dtype=np.float64)
    offsets = log_d - sub.mu - np.array([sub.effects[x] for x in partners], dtype=np.float64)
    return partners, log_d, offsets


def _leave_one_out_medians(values: np.ndarray) -> np.ndarray:
    """The median of ``values`` without each one in turn (as ``np.median`` of the rest)."""
    n = len(values)
    if n < 2:
        return np.full(n, np.nan)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    position = np.empty(n, dtype=int)
    position[order] = np.arange(n)

    def kth_of_rest(k: int) -> np.ndarray:  # the k-th smallest once each value is removed
        return np.where(k < position, ranked[k], ranked[min(k + 1, n - 1)])

    m = n - 1
    if m % 2:
        return kth_of_rest(m // 2)
    return 0.5 * (kth_of_rest(m // 2 - 1) + kth_of_rest(m // 2))


def _member_statistics(sub: NullFit, held: Sequence[str], logs) -> list[float]:
    """Each held-out model judged as new against each model of ``sub`` (its effect from its
    distances to the others, as :func:`judge_member_and_new`)."""
    out: list[float] = []
    for model in held:
        partners, log_d, offsets = _offsets(sub, model, logs)
        if not partners:
            continue
        effects = _leave_one_out_medians(offsets)
        n_new = np.full(len(partners), len(partners) - 1)
        out.extend(_member_and_new_t(sub, partners, log_d, effects, n_new)[1])
    return out


def _pair_statistics(sub: NullFit, held_a: Sequence[str], held_b: Sequence[str], logs):
    """Each model of one held-out family judged as new against each of the other's."""
    effects = {}
    for model in (*held_a, *held_b):
        offsets = _offsets(sub, model, logs)[2]
        effects[model] = (float(np.median(offsets)) if len(offsets) else np.nan, len(offsets))
    pairs = [(a, b) for a in held_a for b in held_b if b in logs.get(a, {})]
    if not pairs:
        return []
    columns = zip(*[(logs[a][b], *effects[a], *effects[b]) for a, b in pairs], strict=True)
    return list(_new_pair_t(sub, *(np.asarray(c) for c in columns))[1])


def held_out_statistics(fit: NullFit, pools: Sequence[str] = POOLS) -> dict[str, np.ndarray]:
    """Per pool, the sorted finite statistics of held-out families' members judged as new models
    (module docstring); a null of fewer than 3 families has none."""
    unknown = set(pools) - set(POOLS)
    if unknown:
        raise ValueError(f"unknown held-out pools {sorted(unknown)}; known: {POOLS}")
    pairwise = replace(fit.settings, model="pairwise")
    families = _by_family(fit)
    logs = _log_distances_of(fit)
    found: dict[str, list[float]] = {pool: [] for pool in pools}
    if len(families) >= 3 and "member" in pools:
        for held in families.values():
            sub = _effects_without(fit, set(held), pairwise)
            found["member"].extend(_member_statistics(sub, held, logs))
    if len(families) >= 4 and "both" in pools:
        for held_a, held_b in itertools.combinations(families.values(), 2):
            sub = _effects_without(fit, set(held_a) | set(held_b), pairwise)
            found["both"].extend(_pair_statistics(sub, held_a, held_b, logs))
    out = {}
    for pool, values in found.items():
        array = np.asarray(values, dtype=np.float64)
        out[pool] = np.sort(array[np.isfinite(array)])
    return out


@dataclass(frozen=True)
class HeldOutCheck:
    """Unrelated models of the null judged as new models, their family left out of the fit and of
    the held-out pools: how often the verdict is ``related`` (the realised false-positive rate
    for models outside the fit)."""

    pool: str
    false_positives: int
    judged: int

    @property
    def rate(self) -> float:
        return self.false_positives / self.judged if self.judged else float("nan")

    def to_dict(self) -> dict[str, float | int | str]:
        return {"pool": self.pool, "false_positives": self.false_positives, "judged": self.judged}


def held_out_check(fit: NullFit, pools: Sequence[str] = ("member",)) -> dict[str, HeldOutCheck]:
    """The realised false-positive rate of :func:`judge_member_and_new` (``member``: each family
    left out in turn, its members judged against each remaining model) and of :func:`judge_new`
    (``both``: each two families left out, judged against each other), at the fit's alpha."""
    families = _by_family(fit)
    logs = _log_distances_of(fit)
    counts = {pool: [0, 0] for pool in pools}

    def count(pool: str, judgement: Judgement) -> None:
        if judgement.verdict in ("related", "unrelated"):
            counts[pool][0] += judgement.verdict == "related"
            counts[pool][1] += 1

    if "member" in pools:
        for held in families.values():
            sub = _null_without(fit, set(held), ("member",))
            for model in held:
                to_fit = {x: math.exp(v) for x, v in logs.get(model, {}).items() if x in sub.index}
                for member, d in to_fit.items():
                    count("member", judge_member_and_new(sub, member, d, to_fit))
    if "both" in pools:
        for held_a, held_b in itertools.combinations(families.values(), 2):
            sub = _null_without(fit, set(held_a) | set(held_b), ("both",))
            for a in held_a:
                to_fit_a = {x: math.exp(v) for x, v in logs.get(a, {}).items() if x in sub.index}
                for b in held_b:
                    if b in logs.get(a, {}):
                        to_fit_b = {x: math.exp(v) for x, v in logs[b].items() if x in sub.index}
                        count("both", judge_new(sub, math.exp(logs[a][b]), to_fit_a, to_fit_b))
    return {pool: HeldOutCheck(pool, *counts[pool]) for pool in pools}
