"""Tests for modelkin.measures.

tests/fixtures/cka_golden.npz was generated once with
``np.random.seed(1337); X = np.random.randn(100, 10); Y = np.random.randn(100, 10) + X``
and is loaded, not regenerated, so that a change in numpy's legacy RNG cannot
silently move the golden values (which come from the CKA authors' notebook,
METHODS.md section 3).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from modelkin.measures import (
    INVARIANCES,
    REGISTRY,
    DegenerateCCAWarning,
    MeasureInfo,
    canonical_correlations,
    compute,
    debiased_linear_cka,
    get_measure,
    linear_cka,
    mean_squared_cca,
    mean_squared_error,
    procrustes_distance,
    pwcca,
    rbf_cka,
    reference_cca,
    reference_cka,
    reference_l2,
    svcca,
    to_matrix,
)

FIXTURE = Path(__file__).parent / "fixtures" / "cka_golden.npz"


@pytest.fixture(scope="module")
def golden():
    data = np.load(FIXTURE)
    return data["X"], data["Y"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _orthogonal(p, rng):
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.sign(np.diag(r))


def _related_pair(rng, n=60, p1=8, p2=6):
    """X with a decaying spectrum (so SVCCA's 0.99 cut bites) and a noisy linear image Y."""
    X = rng.standard_normal((n, p1)) @ np.diag(np.geomspace(1.0, 0.02, p1)) @ _orthogonal(p1, rng)
    Y = X @ rng.standard_normal((p1, p2)) + 0.3 * rng.standard_normal((n, p2))
    return X + 2.0, Y - 1.0


def _pair_for(info, rng):
    X, Y = _related_pair(rng)
    if info.requires_same_shape:
        Y = X + 0.5 * rng.standard_normal(X.shape)
    return X, Y


# --- golden values -----------------------------------------------------------------


def test_golden_values(golden):
    X, Y = golden
    assert linear_cka(X, Y) == pytest.approx(0.55761, abs=1e-4)
    assert rbf_cka(X, Y, threshold=0.5) == pytest.approx(0.65483, abs=1e-4)
    assert rbf_cka(X, Y) == pytest.approx(0.65483, abs=1e-4)  # 0.5 is the default
    assert debiased_linear_cka(X, Y) == pytest.approx(0.51346, abs=1e-4)
    assert mean_squared_cca(X, Y) == pytest.approx(0.54540, abs=1e-4)
    assert mean_squared_cca(X, Y, center=False) == pytest.approx(0.54312, abs=1e-4)


def test_golden_values_through_registry_and_reference_aliases(golden):
    X, Y = golden
    assert compute("cka", X, Y) == pytest.approx(0.55761, abs=1e-4)
    assert compute("rbf_cka", X, Y, threshold=0.5) == pytest.approx(0.65483, abs=1e-4)
    assert compute("debiased_cka", X, Y) == pytest.approx(0.51346, abs=1e-4)
    assert compute("cca", X, Y) == pytest.approx(0.54540, abs=1e-4)
    assert compute("cca", X, Y, center=False) == pytest.approx(0.54312, abs=1e-4)
    assert compute("reference_cka", X, Y) == pytest.approx(linear_cka(X, Y), abs=1e-12)
    assert compute("reference_cca", X, Y) == pytest.approx(0.54312, abs=1e-4)
    assert compute("reference_l2", X, Y) == pytest.approx(np.mean((X - Y) ** 2), rel=1e-12)
    assert compute("mse", X, Y) == pytest.approx(np.mean((X - Y) ** 2), rel=1e-12)


def test_torch_tensors_give_the_numpy_answer(golden):
    X, Y = golden
    Xt, Yt = torch.from_numpy(X).float(), torch.from_numpy(Y).float().requires_grad_()
    assert isinstance(linear_cka(Xt, Yt), float)
    assert linear_cka(Xt, Yt) == pytest.approx(linear_cka(X, Y), abs=1e-6)
    assert mean_squared_cca(Xt, Yt) == pytest.approx(mean_squared_cca(X, Y), abs=1e-6)


# --- agreement with textbook formulas on both computational routes -----------------


def _hsic_textbook(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H)


def _unbiased_hsic_textbook(K, L):
    # Song et al. 2012, eq. 5.
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    return (
        np.trace(K @ L)
        + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ K @ L @ one)
    ) / (n * (n - 3))


@pytest.mark.parametrize("shape", [(40, 5, 7), (12, 30, 25)], ids=["features", "gram"])
def test_linear_and_debiased_cka_match_textbook_on_both_routes(shape):
    n, p1, p2 = shape
    rng = _rng(1)
    X = rng.standard_normal((n, p1))
    Y = X[:, : min(p1, p2)] @ rng.standard_normal((min(p1, p2), p2)) + rng.standard_normal((n, p2))
    K, L = X @ X.T, Y @ Y.T
    biased = _hsic_textbook(K, L) / np.sqrt(_hsic_textbook(K, K) * _hsic_textbook(L, L))
    unbiased = _unbiased_hsic_textbook(K, L) / np.sqrt(
        _unbiased_hsic_textbook(K, K) * _unbiased_hsic_textbook(L, L)
    )
    assert linear_cka(X, Y) == pytest.approx(biased, abs=1e-10)
    assert debiased_linear_cka(X, Y) == pytest.approx(unbiased, abs=1e-10)


def test_reference_cka_flattens_conv_activations():
    rng = _rng(2)
    A, B = rng.standard_normal((10, 3, 4, 4)), rng.standard_normal((10, 2, 4, 4))
    expected = linear_cka(to_matrix(A, "flatten"), to_matrix(B, "flatten"))
    assert reference_cka(A, B) == pytest.approx(expected, abs=1e-12)
    assert reference_cca(A[:, :, :1, :1], B[:, :, :1, :1]) == pytest.approx(
        mean_squared_cca(A[:, :, 0, 0], B[:, :, 0, 0], center=False), abs=1e-12
    )
    assert reference_l2(A, A + 1.0) == pytest.approx(1.0)


# --- invariances: every claimed one holds, every unclaimed one visibly fails --------


def _transform(kind, X, rng):
    p = X.shape[1]
    if kind == "permutation":
        return X[:, rng.permutation(p)]
    if kind == "orthogonal":
        return X @ _orthogonal(p, rng)
    if kind == "isotropic_scaling":
        return 3.7 * X
    if kind == "translation":
        return X + rng.standard_normal(p) * 5.0
    if kind == "invertible_linear":
        return X @ (rng.standard_normal((p, p)) + 0.5 * np.eye(p))
    raise AssertionError(kind)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_invariances(name):
    info = REGISTRY[name]
    rng = _rng(3)
    X, Y = _pair_for(info, rng)
    base = info.function(X, Y)
    for kind in INVARIANCES:
        # An invariance must hold for a transform of either argument alone.
        moved = [
            info.function(_transform(kind, X, rng), Y),
            info.function(X, _transform(kind, Y, rng)),
        ]
        if kind in info.invariances:
            assert moved == pytest.approx([base, base], abs=1e-8), (
                f"{name} should be invariant to {kind}"
            )
        else:
            assert max(abs(m - base) for m in moved) > 1e-6, (
                f"{name} is declared not invariant to {kind} but is"
            )


def test_cka_orthogonal_and_isotropic_scaling(golden):
    X, Y = golden
    rng = _rng(4)
    Q1, Q2 = _orthogonal(10, rng), _orthogonal(10, rng)
    for f in (linear_cka, rbf_cka, debiased_linear_cka):
        assert f(X @ Q1, 0.01 * Y @ Q2) == pytest.approx(f(X, Y), abs=1e-10)


def test_cca_and_full_svcca_invariant_to_invertible_linear_maps(golden):
    X, Y = golden
    rng = _rng(5)
    A, B = rng.standard_normal((10, 10)), rng.standard_normal((10, 10))
    assert mean_squared_cca(X @ A, Y @ B) == pytest.approx(mean_squared_cca(X, Y), abs=1e-10)
    assert mean_squared_cca(X @ A, Y @ B, center=False) == pytest.approx(
        mean_squared_cca(X, Y, center=False), abs=1e-10
    )
    for params in ({"keep_dims": 10}, {"keep_variance": 1.0}):
        assert svcca(X @ A, Y @ B, **params) == pytest.approx(svcca(X, Y, **params), abs=1e-10)
    # With every dimension kept SVCCA is the mean canonical correlation.
    assert svcca(X, Y, keep_dims=10) == pytest.approx(
        np.mean(canonical_correlations(X, Y)), abs=1e-12
    )


# --- Procrustes ---------------------------------------------------------------------


def test_procrustes_zero_for_rotated_copy():
    rng = _rng(6)
    X = rng.standard_normal((50, 7))
    assert procrustes_distance(X, X @ _orthogonal(7, rng)) < 1e-12
    # ... also translated and rescaled, and embedded in a wider space.
    Y = 4.0 * np.hstack([X, np.zeros((50, 3))]) @ _orthogonal(10, rng) + 2.0
    assert procrustes_distance(X, Y) < 1e-12
    assert procrustes_distance(Y, X) < 1e-12


def test_procrustes_matches_nuclear_norm_formula_and_bounds():
    rng = _rng(7)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 9))
    Xn = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0))
    Yn = (Y - Y.mean(0)) / np.linalg.norm(Y - Y.mean(0))
    nuclear = np.linalg.svd(Xn.T @ Yn, compute_uv=False).sum()
    d = procrustes_distance(X, Y)
    assert d == pytest.approx(np.sqrt(2.0 - 2.0 * nuclear), abs=1e-10)
    assert 0.0 <= d <= np.sqrt(2.0)
    # p > n goes through an SVD reduction; the distance must not change.
    W = rng.standard_normal((12, 40))
    Wn = (W - W.mean(0)) / np.linalg.norm(W - W.mean(0))
    Zn = Xn[:12] - Xn[:12].mean(0)
    Zn /= np.linalg.norm(Zn)
    nuc = np.linalg.svd(Wn.T @ np.hstack([Zn, np.zeros((12, 35))]), compute_uv=False).sum()
    assert procrustes_distance(W, X[:12]) == pytest.approx(np.sqrt(2.0 - 2.0 * nuc), abs=1e-10)


def test_procrustes_triangle_inequality():
    rng = _rng(8)
    for trial in range(20):
        n = 15 + trial
        base = rng.standard_normal((n, 6))
        mats = [
            base @ rng.standard_normal((6, p)) + s * rng.standard_normal((n, p))
            for p, s in ((4, 0.1), (6, 1.0), (9, 3.0))
        ]
        for a, b, c in itertools.permutations(mats):
            assert (
                procrustes_distance(a, c)
                <= procrustes_distance(a, b) + procrustes_distance(b, c) + 1e-12
            )


# --- registry metadata --------------------------------------------------------------


def test_registry_entries_are_well_formed():
    assert {"cka", "rbf_cka", "debiased_cka", "cca", "svcca", "pwcca", "procrustes", "mse"} <= set(
        REGISTRY
    )
    for name, info in REGISTRY.items():
        assert isinstance(info, MeasureInfo) and info.name == name and callable(info.function)
        assert set(info.invariances) <= set(INVARIANCES)
        assert info.range[0] < info.range[1]
        assert info.description
    assert REGISTRY["rbf_cka"].params == {"threshold": 0.5}
    assert REGISTRY["svcca"].params == {"keep_variance": 0.99, "keep_dims": None}
    assert REGISTRY["procrustes"].is_metric


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_direction_range_and_identity(name):
    info = REGISTRY[name]
    rng = _rng(9)
    X = rng.standard_normal((80, 6))
    Z = rng.standard_normal((80, 6))  # independent of X
    same, other = compute(name, X, X), compute(name, X, Z)
    lo, hi = info.range
    assert lo - 1e-12 <= other <= hi + 1e-12 and lo - 1e-12 <= same <= hi + 1e-12
    if info.higher_is_similar:
        assert same > other
        assert same == pytest.approx(hi, abs=1e-10)
    else:
        assert same < other
        assert same == pytest.approx(lo, abs=1e-10)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_symmetry_as_declared(name):
    info = REGISTRY[name]
    X, Y = _pair_for(info, _rng(10))
    if info.symmetric:
        assert compute(name, X, Y) == pytest.approx(compute(name, Y, X), abs=1e-10)
    else:
        Y = Y[:, :4] @ np.ones((4, X.shape[1])) + _rng(11).standard_normal(X.shape)  # equal widths
        assert compute(name, X, Y) != pytest.approx(compute(name, Y, X), abs=1e-6)


def test_svcca_and_pwcca_identical_inputs():
    X = _rng(12).standard_normal((50, 8))
    assert svcca(X, X) == pytest.approx(1.0, abs=1e-12)
    assert svcca(X, X, keep_dims=3) == pytest.approx(1.0, abs=1e-12)
    assert pwcca(X, X) == pytest.approx(1.0, abs=1e-12)
    assert pwcca(X, X @ _orthogonal(8, _rng(13))) == pytest.approx(1.0, abs=1e-12)


def test_svcca_keep_variance_truncates():
    rng = _rng(14)
    # Each side: three latent directions of equal variance carry all but ~1e-8
    # of it, so keep_variance=0.99 keeps exactly three on both sides.
    latent = rng.standard_normal((200, 3))
    X = latent @ _orthogonal(10, rng)[:3] + 1e-4 * rng.standard_normal((200, 10))
    mixed = np.linalg.qr(latent @ rng.standard_normal((3, 3)) + rng.standard_normal((200, 3)))[0]
    Y = mixed @ _orthogonal(10, rng)[:3] + 1e-6 * rng.standard_normal((200, 10))
    assert svcca(X, Y, keep_variance=0.99) == pytest.approx(
        svcca(X, Y, keep_variance=1.0, keep_dims=3), abs=1e-12
    )
    assert svcca(X, Y, keep_variance=0.99) != pytest.approx(
        svcca(X, Y, keep_variance=1.0), abs=1e-6
    )


# --- ill-conditioned inputs and errors ----------------------------------------------


def _ill_conditioned(rng, n=40):
    X = rng.standard_normal((n, 6))
    X = np.hstack(
        [X, X[:, :2] + X[:, 2:4], np.full((n, 1), 1e8), np.full((n, 1), -3.0), X[:, :1]]
    )  # rank 6
    Y = np.hstack(
        [X[:, :3] @ rng.standard_normal((3, 5)), np.zeros((n, 2))]
    )  # rank 3, dead channels
    return X, Y


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_rank_deficient_and_constant_channels_are_finite(name):
    X, Y = _ill_conditioned(_rng(15))
    if REGISTRY[name].requires_same_shape:
        Y = np.hstack([Y, Y[:, :4]])
    value = compute(name, X, Y)
    assert np.isfinite(value)
    lo, hi = REGISTRY[name].range
    assert lo - 1e-10 <= value <= hi + 1e-10


def test_rank_deficiency_drops_null_directions():
    X, Y = _ill_conditioned(_rng(16))
    rho = canonical_correlations(X, Y)
    assert rho.shape == (3,)  # min(rank X = 6, rank Y = 3)
    assert np.all(np.diff(rho) <= 1e-12)
    assert np.allclose(rho, 1.0)  # Y lies inside X's column space
    assert mean_squared_cca(X, Y) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("f", [mean_squared_cca, svcca, pwcca])
def test_cca_with_fewer_samples_than_features_warns_but_is_finite(f):
    rng = _rng(17)
    X, Y = rng.standard_normal((10, 30)), rng.standard_normal((10, 20))
    with pytest.warns(DegenerateCCAWarning, match="by construction"):
        value = f(X, Y) if f is not svcca else f(X, Y, keep_variance=1.0)
    assert np.isfinite(value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(svcca(X, Y, keep_dims=3))  # reduction removes the problem


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_mismatched_samples_names_both_shapes(name):
    X, Y = np.ones((10, 4)), np.ones((9, 4))
    with pytest.raises(ValueError, match=r"\(10, 4\).*\(9, 4\)"):
        compute(name, X, Y)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"mse", "reference_l2"}))
def test_constant_representation_raises(name):
    # Uncentred CCA legitimately sees a constant as the intercept direction;
    # only an all-zero representation has nothing to correlate.
    X = np.zeros((20, 3)) if name == "reference_cca" else np.full((20, 3), 2.5)
    Y = _rng(18).standard_normal((20, 3))
    with pytest.raises(ValueError, match="constant|zero|identical"):
        compute(name, X, Y)
    with pytest.raises(ValueError, match="constant|zero|identical"):
        compute(name, Y, X)


def test_nan_and_wrong_rank_inputs_raise():
    X = _rng(19).standard_normal((10, 3))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(bad, X)
    with pytest.raises(ValueError, match="to_matrix"):
        linear_cka(np.zeros((10, 3, 2, 2)), X)
    with pytest.raises(ValueError, match="same shape"):
        mean_squared_error(X, X[:, :2])
    with pytest.raises(ValueError, match="at least 4"):
        debiased_linear_cka(X[:3], X[:3])
    with pytest.raises(ValueError, match="median"):
        rbf_cka(np.vstack([np.zeros((8, 3)), X[:2]]), X)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("rbf_cka", {"threshold": 0.0}, "threshold"),
        ("rbf_cka", {"threshold": -1.0}, "threshold"),
        ("rbf_cka", {"threshold": float("nan")}, "threshold"),
        ("svcca", {"keep_variance": 0.0}, "keep_variance"),
        ("svcca", {"keep_variance": 1.5}, "keep_variance"),
        ("svcca", {"keep_dims": 0}, "keep_dims"),
        ("svcca", {"keep_dims": 2.5}, "keep_dims"),
        ("svcca", {"keep_dims": True}, "keep_dims"),
        ("cka", {"threshold": 0.5}, "does not take"),
    ],
)
def test_bad_parameters_raise(name, params, match):
    X = _rng(20).standard_normal((20, 4))
    with pytest.raises(ValueError, match=match):
        compute(name, X, X, **params)


def test_unknown_measure_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*cka.*procrustes"):
        get_measure("ckaa")


# --- to_matrix ----------------------------------------------------------------------


def test_to_matrix_modes():
    acts = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    flat = to_matrix(acts, "flatten")
    assert flat.shape == (2, 60) and flat.dtype == np.float64
    assert np.array_equal(flat[1], acts[1].ravel())
    spatial = to_matrix(torch.from_numpy(acts), "spatial")
    assert spatial.shape == (2 * 4 * 5, 3)
    assert np.array_equal(spatial[1 * 20 + 2 * 5 + 3], acts[1, :, 2, 3])
    assert np.array_equal(to_matrix(acts[:, :, 0, 0]), acts[:, :, 0, 0])


def test_to_matrix_requires_explicit_mode_for_conv_activations():
    acts = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match="mode='flatten'.*mode='spatial'"):
        to_matrix(acts)
    with pytest.raises(ValueError, match="mode must be one of"):
        to_matrix(acts, "channels")


@pytest.mark.parametrize(
    "name", sorted(n for n, m in REGISTRY.items() if "isotropic_scaling" in m.invariances)
)
def test_extreme_scales_do_not_overflow(name):
    X, Y = _related_pair(_rng(21))
    assert compute(name, 1e200 * X, 1e-200 * Y) == pytest.approx(compute(name, X, Y), abs=1e-8)
