"""Calibrated verdicts: how surprising is a pair's distance for two models that share nothing?

A verdict "related" is a claim with an error rate. For each setting (data set, class sets, and
each side's architecture and training algorithm) the *null* is the distances of every pair of
unrelated models in it: pairs with no shared lineage and no shared seed, whatever else they are
(zoo seeds, but also the derived models of other parents). Pairs under test are compared with
it; a pair is *related* when its distance is smaller than unrelated pairs' at false-positive
rate ``alpha``.

Unrelated distances are far from exchangeable: on the digits zoo, log Zest distances of
unrelated pairs spread with sd 0.36, but about 87% of that variance is each model's own
typicality (some models are close to everything). So the null is a two-way model of the log
distance of unrelated models x and y,

    log d(x, y) = mu + a_x + a_y + e_xy,    e ~ N(0, s^2),

fitted by least squares on the setting's unrelated pairs (``model="pairwise"``). A pair (a, b)
under test is judged against the distance expected *for these two models*: t = (log d(a, b) -
mu - a_a - a_b) / (s sqrt(1 + h)), with h the pair's leverage, and p = P(T <= t) for a Student t
with the fit's degrees of freedom. An unrelated pair's own distance is left out of the fit that
judges it (its deleted, studentised residual), so the false-positive rate is measured honestly.
Pairs of one family (a parent's derived models) are near-duplicates of each other's pairs, so
the degrees of freedom count families, not pairs: df = F(F - 1)/2 - F for F families, capped by
the pairs.

``model="ranked"`` (the default) keeps the pairwise model's statistic t but reads its p-value off
the setting's own unrelated pairs instead of the Student t: p = (1 + #{unrelated pairs whose
deleted t is at most t}) / (1 + n), each unrelated pair's own t left out. On the digits zoo the
unrelated pairs' t have the Student t's spread but not its shape (skewness -0.4 to -1.3: some
unrelated models form close-knit groups that additive effects cannot express), so the t-tail
called 1.8-2.5% of them related at alpha 0.01; ranked, about alpha. Below the smallest unrelated
t the ranks run out, and the p-value continues with the t-tail's shape, ``P(T <= t) /
P(T <= t_min) / (1 + n)``, so that a fine-tuned copy far beyond every unrelated pair still gets
the small p-value that the family trees' ``alpha`` of 0.0001 needs.

Models outside the fit (a user's suspect, ``modelkin compare``) are judged by
:mod:`.new_models`: their statistic is ranked among held-out families' statistics, made the way
theirs is, not among the fitted pairs' own.

``model="lognormal"`` ignores model effects (one normal of log d per setting, Student-t
predictive); ``model="empirical"`` counts: p = (1 + #{unrelated pairs at most as far}) / (1 + n),
whose smallest value is 1 / (1 + n). Both are there to check the pairwise model against; the
docs report all three on the default run.

Pure numpy/scipy; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

MODELS = ("ranked", "pairwise", "lognormal", "empirical")
PAIRWISE_MODELS = ("ranked", "pairwise")  # the two that fit model effects
VERDICTS = ("related", "unrelated", "not enough independent models")
NOT_ENOUGH = VERDICTS[2]


@dataclass(frozen=True)
class CalibrationSettings:
    """How verdicts are made (the ``distances.calibration`` config section)."""

    alpha: float = 0.01
    model: str = "ranked"
    min_families: int = 5  # independent families a setting's null must span
    min_partners: int = 3  # unrelated partners a model needs for its own effect

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.model not in MODELS:
            raise InputError(f"calibration model must be one of {', '.join(MODELS)}")
        if self.min_families < 3 or self.min_partners < 1:
            raise InputError("min_families must be at least 3 and min_partners at least 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> CalibrationSettings:
        return cls(**dict(values or {}))


@dataclass
class Judgement:
    """One pair's calibrated verdict."""

    log_distance: float
    expected: float  # the null's expected log distance for this pair
    statistic: float  # t (pairwise, lognormal) or NaN (empirical)
    p_value: float
    verdict: str
    reference_pairs: int  # unrelated pairs the judgement rests on
    reference_families: int
    df: float

    @property
    def ratio(self) -> float:
        """distance / the null's expected distance for this pair (1 = as far as unrelated)."""
        return float(math.exp(self.log_distance - self.expected))


@dataclass
class NullFit:
    """The null of one setting: its unrelated pairs and, for ``pairwise``, the fitted model."""

    settings: CalibrationSettings
    pairs: list[tuple[str, str]]
    log_distances: np.ndarray
    families: dict[str, str]  # model -> family (root) id
    mu: float = float("nan")
    effects: dict[str, float] = field(default_factory=dict)
    sigma: float = float("nan")
    df: float = 0.0
    inverse_gram: np.ndarray | None = None
    index: dict[str, int] = field(default_factory=dict)
    residuals: np.ndarray | None = None
    leverages: np.ndarray | None = None
    deleted: np.ndarray | None = None  # each pair's deleted residual (pairwise models)
    rows: dict[frozenset[str], int] = field(default_factory=dict)
    # ``ranked``: each unrelated pair's deleted t (NaN where either model lacks partners), and
    # the finite ones sorted: what a pair's t is ranked among
    pair_statistics: np.ndarray | None = None
    statistics: np.ndarray | None = None
    # ``ranked``: what a model outside the fit is ranked among (:mod:`.new_models`), sorted: the
    # statistics of held-out families' members judged as new models, against a model of the fit
    # ("member") or against each other ("both")
    new_statistics: dict[str, np.ndarray] = field(default_factory=dict)
    # computed once on first use (the pairs never change)
    _partner_counts: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _n_families: int | None = field(default=None, repr=False, compare=False)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def n_families(self) -> int:
        if self._n_families is None:
            self._n_families = len({self.families[m] for pair in self.pairs for m in pair})
        return self._n_families

    @property
    def sufficient(self) -> bool:
        return self.n_families >= self.settings.min_families and self.df >= 1

    def partners(self, model: str) -> int:
        """How many unrelated families ``model`` has a distance to in the null."""
        if self._partner_counts is None:
            partners: dict[str, set[str]] = {}
            for a, b in self.pairs:
                partners.setdefault(a, set()).add(self.families[b])
                partners.setdefault(b, set()).add(self.families[a])
            self._partner_counts = {m: len(f) for m, f in partners.items()}
        return self._partner_counts.get(model, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "alpha": self.settings.alpha,
            "n_pairs": self.n_pairs,
            "n_families": self.n_families,
            "df": self.df,
            "mu": self.mu,
            "sigma": self.sigma,
            "effects": dict(sorted(self.effects.items())),
            "sufficient": self.sufficient,
            # parallel to the reference's pairs: what lognormal and empirical judge new pairs by
            "log_distances": [float(x) for x in self.log_distances],
            # ranked: the unrelated pairs' own statistics, parallel to the pairs (NaN: not judged)
            **(
                {
                    "pair_statistics": [
                        float(x) if np.isfinite(x) else None for x in self.pair_statistics
                    ]
                }
                if self.pair_statistics is not None
                else {}
            ),
            **(
                {
                    "new_statistics": {
                        pool: [float(x) for x in values]
                        for pool, values in self.new_statistics.items()
                    }
                }
                if self.new_statistics
                else {}
            ),
        }


def family_degrees_of_freedom(n_families: int, n_pairs: int, n_parameters: int) -> float:
    """Residual degrees of freedom, counting families (near-duplicate pairs are not independent)."""
    by_family = n_families * (n_families - 1) / 2 - (n_families if n_parameters > 1 else 1)
    return float(max(0.0, min(by_family, n_pairs - n_parameters)))


def fit_null(
    pairs: Sequence[tuple[str, str]],
    distances: Sequence[float] | np.ndarray,
    families: Mapping[str, str],
    settings: CalibrationSettings,
    *,
    held_out: Sequence[str] = ("member", "both"),
) -> NullFit:
    """Fit the null of one setting on its unrelated pairs (distances > 0).

    ``ranked`` also gets the statistics that models outside the fit are ranked among, for the
    ``held_out`` pools (:func:`.new_models.held_out_statistics`; ``()``: none)."""
    fit = fit_effects(pairs, distances, families, settings)
    if fit.inverse_gram is None:
        return fit
    design = _design(fit.pairs, fit.index)
    fit.residuals = fit.log_distances - design @ np.r_[fit.mu, [fit.effects[m] for m in fit.index]]
    fit.leverages = np.einsum("ij,jk,ik->i", design, fit.inverse_gram, design, optimize=True)
    fit.deleted = _deleted_residuals(fit)
    if settings.model == "ranked":
        set_statistics(fit, _deleted_statistics(fit))
        if held_out:
            # new_models judges outside models by refitting this module's null without them
            from .new_models import held_out_statistics

            fit.new_statistics = held_out_statistics(fit, held_out)
    return fit


def fit_effects(
    pairs: Sequence[tuple[str, str]],
    distances: Sequence[float] | np.ndarray,
    families: Mapping[str, str],
    settings: CalibrationSettings,
) -> NullFit:
    """The null's model alone (mu, effects, sigma, df; for the pairwise models also (X'X)^+),
    without the unrelated pairs' own statistics: what models outside the fit are judged by."""
    values = np.asarray(distances, dtype=np.float64)
    keep = np.isfinite(values) & (values > 0)
    pairs = [p for p, k in zip(pairs, keep, strict=True) if k]
    logs = np.log(values[keep])
    fit = NullFit(settings, list(pairs), logs, dict(families))
    fit.rows = {frozenset(pair): row for row, pair in enumerate(fit.pairs)}
    if not len(logs):
        return fit
    if settings.model not in PAIRWISE_MODELS:
        fit.mu = float(logs.mean())
        fit.sigma = float(logs.std(ddof=1)) if len(logs) > 1 else float("nan")
        fit.df = family_degrees_of_freedom(fit.n_families, len(logs), 1)
        return fit
    models = sorted({m for pair in pairs for m in pair})
    fit.index = {m: i for i, m in enumerate(models)}
    design = _design(pairs, fit.index)
    inverse, rank = _pseudo_inverse(design.T @ design)
    coef = inverse @ (design.T @ logs)
    residuals = logs - design @ coef
    fit.df = family_degrees_of_freedom(fit.n_families, len(logs), rank)
    fit.mu = float(coef[0])
    fit.effects = {m: float(coef[1 + i]) for m, i in fit.index.items()}
    dof = max(len(logs) - rank, 1)
    fit.sigma = float(np.sqrt((residuals**2).sum() / dof))
    fit.inverse_gram = inverse
    return fit


def _deleted_residuals(fit: NullFit) -> np.ndarray:
    """Each unrelated pair's deleted (externally studentised) residual: its residual in the fit
    without its own distance, over that fit's scale (NaN where that scale is 0)."""
    assert fit.residuals is not None and fit.leverages is not None
    h = np.minimum(fit.leverages, 1.0 - 1e-12)
    e = fit.residuals
    rank_dof = max(fit.n_pairs - int(round(fit.leverages.sum())), 2)
    sse = float((e**2).sum())
    s_deleted = np.sqrt(np.maximum(sse - e * e / (1.0 - h), 0.0) / (rank_dof - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s_deleted > 0, e / (s_deleted * np.sqrt(1.0 - h)), np.nan)


def _deleted_statistics(fit: NullFit) -> np.ndarray:
    """The deleted residuals that :func:`judge` gives the unrelated pairs; NaN where either model
    has fewer than ``min_partners`` unrelated families (such a pair gets no verdict)."""
    assert fit.deleted is not None
    least = fit.settings.min_partners
    enough = np.array(
        [min(fit.partners(a), fit.partners(b)) >= least for a, b in fit.pairs], dtype=bool
    )
    return np.where(enough, fit.deleted, np.nan)


def set_statistics(fit: NullFit, pair_statistics: Sequence[float | None] | np.ndarray) -> None:
    """Give a ``ranked`` null its unrelated pairs' statistics (from the fit or a reference file)."""
    values = np.asarray([np.nan if x is None else x for x in pair_statistics], dtype=np.float64)
    fit.pair_statistics = values
    fit.statistics = np.sort(values[np.isfinite(values)])


def _p_value(
    fit: NullFit, t: float, df: float, own: int | None = None, pool: str | None = None
) -> float:
    """P(T <= t): the Student t's (``pairwise``), or ``t`` ranked (``ranked``) among the unrelated
    pairs' statistics without the pair's own, or among the ``pool`` of held-out statistics for
    models outside the fit; the t-tail's shape below the smallest."""
    if fit.settings.model != "ranked":
        return _t_cdf(t, df)
    statistics = fit.statistics if pool is None else fit.new_statistics.get(pool)
    if statistics is None or np.isnan(t):
        return float("nan")
    own_value = None if own is None or fit.pair_statistics is None else fit.pair_statistics[own]
    if own_value is not None and np.isfinite(own_value):
        position = int(np.searchsorted(statistics, own_value))
        statistics = np.delete(statistics, position)
    n = len(statistics)
    if n == 0:
        return float("nan")
    at_most = int(np.searchsorted(statistics, t, side="right"))
    if at_most:
        return (1.0 + at_most) / (1.0 + n)
    smallest = _t_cdf(float(statistics[0]), df)
    if not np.isfinite(smallest) or smallest <= 0:
        return float("nan")
    return min(1.0, _t_cdf(t, df) / smallest) / (1.0 + n)


def _pseudo_inverse(gram: np.ndarray) -> tuple[np.ndarray, int]:
    """(X'X)^+ and the rank of X'X, from one eigendecomposition (the cut-off of
    ``np.linalg.matrix_rank``: singular values within max(M, N) * eps of the largest are 0)."""
    values, vectors = np.linalg.eigh(gram)
    magnitude = np.abs(values)
    keep = magnitude > magnitude.max() * max(gram.shape) * np.finfo(gram.dtype).eps
    inverse = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return inverse, int(keep.sum())


def _design(pairs: Sequence[tuple[str, str]], index: Mapping[str, int]) -> np.ndarray:
    """Rows (1, e_x + e_y): an intercept and one effect per model (a sum-to-anything basis;
    the pseudo-inverse picks the minimum-norm coefficients, predictions are unique)."""
    design = np.zeros((len(pairs), 1 + len(index)))
    design[:, 0] = 1.0
    rows = np.arange(len(pairs))
    design[rows, [1 + index[a] for a, _ in pairs]] += 1.0
    design[rows, [1 + index[b] for _, b in pairs]] += 1.0
    return design


def judge(fit: NullFit, a: str, b: str, distance: float) -> Judgement:
    """The calibrated verdict of the pair (a, b) at ``distance`` against the setting's null.

    An unrelated pair that is itself in the null is judged by its deleted residual (its own
    distance left out of the fit).
    """
    settings = fit.settings
    log_d = math.log(distance) if distance > 0 else -math.inf
    if not np.isfinite(distance):
        return Judgement(float("nan"), float("nan"), float("nan"), float("nan"), NOT_ENOUGH,
                         fit.n_pairs, fit.n_families, fit.df)  # fmt: skip
    own = _row_of(fit, a, b)
    families = fit.n_families
    if settings.model == "empirical":
        logs = np.delete(fit.log_distances, own) if own is not None else fit.log_distances
        n = len(logs)
        p = (1.0 + float((logs <= log_d).sum())) / (1.0 + n) if n else float("nan")
        expected = float(np.median(logs)) if n else float("nan")
        return _verdict(fit, log_d, expected, float("nan"), p, n, families, float(n))
    if settings.model == "lognormal":
        logs = np.delete(fit.log_distances, own) if own is not None else fit.log_distances
        n = len(logs)
        if n < 2:
            return _verdict(fit, log_d, float("nan"), float("nan"), float("nan"), n, families, 0)
        mean, sd = float(logs.mean()), float(logs.std(ddof=1))
        df = family_degrees_of_freedom(families, n, 1)
        t = (log_d - mean) / (sd * math.sqrt(1.0 + 1.0 / max(df + 1, 1)))
        return _verdict(fit, log_d, mean, t, _t_cdf(t, df), n, families, df)
    return _judge_pairwise(fit, a, b, log_d, own)


def _judge_pairwise(fit: NullFit, a: str, b: str, log_d: float, own: int | None) -> Judgement:
    settings = fit.settings
    families = fit.n_families
    n = fit.n_pairs - (1 if own is not None else 0)
    too_little = any(m not in fit.index or fit.partners(m) < settings.min_partners for m in (a, b))
    # a null whose residuals are all 0 (as few pairs as parameters) has no spread to judge by
    if too_little or not np.isfinite(fit.sigma) or fit.sigma <= 0:
        return _verdict(fit, log_d, float("nan"), float("nan"), float("nan"), n, families, fit.df)
    assert fit.inverse_gram is not None and fit.residuals is not None
    x0 = np.zeros(1 + len(fit.index))
    x0[0] = 1.0
    x0[1 + fit.index[a]] += 1.0
    x0[1 + fit.index[b]] += 1.0
    expected = float(x0 @ np.concatenate([[fit.mu], [fit.effects[m] for m in fit.index]]))
    leverage = float(x0 @ fit.inverse_gram @ x0)
    df = fit.df
    if own is None:
        t = (log_d - expected) / (fit.sigma * math.sqrt(1.0 + leverage))
    else:
        # Deleted (externally studentised) residual: the fit without this pair.
        assert fit.leverages is not None and fit.deleted is not None
        h = min(float(fit.leverages[own]), 1.0 - 1e-12)
        expected = log_d - float(fit.residuals[own]) / (1.0 - h)
        t = float(fit.deleted[own])
        df = max(df - 1.0, 0.0)
    return _verdict(fit, log_d, expected, t, _p_value(fit, t, df, own), n, families, df)


def _row_of(fit: NullFit, a: str, b: str) -> int | None:
    return fit.rows.get(frozenset((a, b)))


def _t_cdf(t: float, df: float) -> float:
    from scipy import stats

    if not np.isfinite(t) or df < 1:
        return float("nan") if not np.isneginf(t) else 0.0
    return float(stats.t.cdf(t, df))


def _verdict(fit, log_d, expected, statistic, p, n, families, df) -> Judgement:
    settings = fit.settings
    enough = families >= settings.min_families and df >= 1 and np.isfinite(p)
    if not enough:
        verdict = NOT_ENOUGH
    else:
        verdict = "related" if p < settings.alpha else "unrelated"
    return Judgement(float(log_d), float(expected), float(statistic), float(p), verdict, int(n),
                     int(families), float(df))  # fmt: skip
