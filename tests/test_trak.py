"""TRAK (modelkin.attribution): a dense reference without projection, agreement with the traker
package, projection properties, LDS on a case with a known answer, files and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from modelkin.attribution import (
    AttributionError,
    GradientProjector,
    TrakSettings,
    ensemble_scores,
    featurize,
    gradients,
    mean_out_to_loss,
    trak_scores,
)
from modelkin.attribution.lds import linear_datamodeling_score, subset_mask
from modelkin.attribution.trak import kernel_inverse


def tiny_mlp(seed: int, inputs: int = 16, hidden: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, classes)
    )


def tiny_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def blobs(n: int, seed: int, shape=(1, 4, 4), classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, *shape, generator=torch.Generator().manual_seed(99))
    x = centres[y] + 0.8 * torch.randn(n, *shape, generator=g)
    return x, y


def _grads_and_q(model, x, y):
    """Per-example gradients of the margin log(p / (1 - p)), scaled by 1/sqrt(#params), and Q."""
    params = list(model.parameters())
    p_count = sum(p.numel() for p in params)
    rows, qs = [], []
    for xi, yi in zip(x.double(), y, strict=True):
        log_p = torch.log_softmax(model(xi[None]), dim=1)[0, yi]
        f = log_p - torch.log1p(-torch.exp(log_p))  # log(p / (1 - p))
        g = torch.autograd.grad(f, params)
        rows.append(torch.cat([t.reshape(-1) for t in g]).numpy())
        qs.append(1.0 - math.exp(float(log_p.detach())))
    return np.stack(rows) / math.sqrt(p_count), np.array(qs)


def dense_reference(
    models, train, targets, ridge: float, rescale_inverse: bool = True
) -> np.ndarray:
    """TRAK written out the slow way: autograd per example, float64 numpy algebra, no projection."""
    total, q_sum = 0.0, 0.0
    for model in models:
        model = model.double().eval()
        phi, q = _grads_and_q(model, *train)
        g_t, _ = _grads_and_q(model, *targets)
        gram = phi.T @ phi
        inverse = np.linalg.inv(gram + ridge * np.trace(gram) / len(gram) * np.eye(len(gram)))
        if rescale_inverse:
            inverse = inverse / np.abs(inverse).mean()
        total = total + phi @ inverse @ g_t.T
        q_sum = q_sum + q
        model.float()
    m = len(models)
    return (total / m) * (q_sum / m)[:, None]


@pytest.mark.parametrize("rescale", [True, False])
def test_identity_projection_equals_dense_computation(rescale):
    # Without projection ΦᵀΦ is singular for any softmax classifier (the margin ignores a common
    # shift of all logits: 7 null directions here), so a ridge is needed.
    train, targets = blobs(240, 0), blobs(30, 1)
    models = [tiny_mlp(s) for s in (0, 1)]
    expected = dense_reference(
        [tiny_mlp(s) for s in (0, 1)], train, targets, 1e-3, rescale_inverse=rescale
    )
    settings = TrakSettings(proj_dim=None, ridge=1e-3, rescale_inverse=rescale, batch_size=37)
    scores = trak_scores(models, train, targets, settings, device="cpu").numpy()
    assert scores.shape == (240, 30)
    np.testing.assert_allclose(scores, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


def test_out_to_loss_weighting_scales_training_rows_and_can_be_switched_off():
    """traker's τ is the unweighted ensemble times the
    mean Q per training row; out_to_loss=False drops Q."""
    train, targets = blobs(120, 10), blobs(15, 11)
    models = [tiny_mlp(s) for s in (0, 1, 2)]
    settings = TrakSettings(proj_dim=None, ridge=1e-3)
    features = [
        featurize(m, train, targets, settings, checkpoint_index=i, device="cpu")
        for i, m in enumerate(models)
    ]
    unweighted = ensemble_scores(features, out_to_loss=False).numpy()
    by_hand = np.mean([(f.train_features @ f.target_grads.T).numpy() for f in features], axis=0)
    np.testing.assert_allclose(unweighted, by_hand, rtol=1e-5, atol=1e-7)
    q = mean_out_to_loss(features).numpy()
    probs = [
        torch.softmax(m(train[0]), 1).gather(1, train[1][:, None]).squeeze(1).detach().numpy()
        for m in models
    ]
    np.testing.assert_allclose(q, 1 - np.mean(probs, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ensemble_scores(features).numpy(), unweighted * q[:, None], rtol=1e-5, atol=1e-8
    )
    expected = dense_reference([tiny_mlp(s) for s in (0, 1, 2)], train, targets, 1e-3) / q[:, None]
    got = trak_scores(
        models,
        train,
        targets,
        TrakSettings(proj_dim=None, ridge=1e-3, out_to_loss=False),
        device="cpu",
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())
    # the features do not depend on the weighting (it is
    # applied when scoring): one features file serves both
    assert (
        "out_to_loss" in settings.result_params() and "out_to_loss" not in settings.feature_params()
    )
    with pytest.raises(ValueError, match="out_to_loss"):
        TrakSettings(out_to_loss="no")


def test_scores_do_not_depend_on_batch_size_or_parameter_grouping():
    train, targets = blobs(100, 2, shape=(1, 8, 8)), blobs(20, 3, shape=(1, 8, 8))
    model = tiny_cnn(0)
    base = featurize(model, train, targets, TrakSettings(proj_dim=64, batch_size=120), device="cpu")
    # a budget of a few rows forces one group per parameter tensor (several passes over the data)
    grouped = featurize(
        model,
        train,
        targets,
        TrakSettings(proj_dim=64, batch_size=30, max_projection_mib=1e-4),
        device="cpu",
    )
    assert grouped.info["parameter_groups"] == len(list(model.parameters()))
    np.testing.assert_allclose(grouped.target_grads, base.target_grads, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        ensemble_scores([grouped]),
        ensemble_scores([base]),
        rtol=1e-3,
        atol=1e-5 * float(ensemble_scores([base]).abs().max()),
    )


@pytest.mark.parametrize("rows", [1, 45, 50])
def test_gradients_projected_a_few_rows_at_a_time_equal_one_projection(monkeypatch, rows):
    """Batches are gathered into a buffer of `rows` examples (at least one batch) before each
    projection: one batch per projection, three (45 rows exactly, or 50 with 5 left empty) and
    a last partial buffer give the same features as one projection of everything."""
    train, targets = blobs(100, 2, shape=(1, 8, 8)), blobs(20, 3, shape=(1, 8, 8))
    model = tiny_cnn(0)
    base = featurize(model, train, targets, TrakSettings(proj_dim=64, batch_size=120), device="cpu")
    monkeypatch.setattr(gradients, "gradient_buffer_rows", lambda width: rows)
    gathered = featurize(
        model, train, targets, TrakSettings(proj_dim=64, batch_size=15), device="cpu"
    )
    np.testing.assert_allclose(gathered.target_grads, base.target_grads, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gathered.out_to_loss, base.out_to_loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gathered.train_features, base.train_features, rtol=1e-3, atol=1e-5)


def test_projection_matrix_is_seeded_per_checkpoint_and_has_the_right_law():
    sizes = [("w", 3000), ("b", 50)]
    cpu = torch.device("cpu")
    m0 = GradientProjector(sizes, 256, "rademacher", 0, 0, cpu).matrix(["w", "b"])
    again = GradientProjector(sizes, 256, "rademacher", 0, 0, cpu).matrix(["w", "b"])
    m1 = GradientProjector(sizes, 256, "rademacher", 0, 1, cpu).matrix(["w", "b"])
    assert torch.equal(m0, again)
    assert set(m0.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(m0.mean())) < 0.01
    # different checkpoints: independent signs (half agree)
    assert 0.45 < float((m0 == m1).float().mean()) < 0.55
    gauss = GradientProjector(sizes, 256, "gaussian", 0, 0, cpu).matrix(["w", "b"])
    assert abs(float(gauss.mean())) < 0.01 and abs(float(gauss.std()) - 1) < 0.01
    # a tensor's rows do not depend on which other tensors share its group
    assert torch.equal(
        GradientProjector(sizes, 256, "rademacher", 0, 0, cpu).matrix(["b"]), m0[3000:]
    )


def test_projection_matrix_does_not_depend_on_the_number_of_threads():
    sizes = [("w", 9000), ("b", 50)]  # three blocks of w, drawn in parallel with 2+ threads
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = GradientProjector(sizes, 64, "gaussian", 0, 0, torch.device("cpu")).matrix(
            ["w", "b"]
        )
        torch.set_num_threads(max(2, threads))
        parallel = GradientProjector(sizes, 64, "gaussian", 0, 0, torch.device("cpu")).matrix(
            ["w", "b"]
        )
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial, parallel)


def test_cpu_projection_is_float32_exact_and_runs_on_onednn_where_torch_has_it():
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(300, 5000, generator=generator)
    matrix = GradientProjector([("w", 5000)], 128, "gaussian", 0, 0, torch.device("cpu")).matrix(
        ["w"]
    )
    exact = grads.double() @ matrix.double()
    projected = gradients.project(grads, matrix, "fp32")
    assert projected.dtype == torch.float32 and projected.shape == (300, 128)
    scale = float(exact.abs().max())
    assert float((projected.double() - exact).abs().max()) < 1e-5 * scale
    assert (gradients._ONEDNN_LINEAR is not None) == torch.backends.mkldnn.is_available()
    bf16 = gradients.project(grads, matrix, "bf16")  # not oneDNN's float32 kernel: bf16 rounding
    assert 1e-4 * scale < float((bf16.double() - exact).abs().max()) < 0.05 * scale


def test_kernel_condition_number_estimate_is_within_one_percent_of_the_spectrum():
    generator = torch.Generator().manual_seed(0)
    phi = torch.randn(400, 96, generator=generator, dtype=torch.float64)
    phi = phi * torch.logspace(0, 3, 96, dtype=torch.float64)  # condition number ~1e6
    gram = phi.T @ phi
    inverse, _, info = kernel_inverse(gram, 400, rescale_inverse=False)
    eigenvalues = torch.linalg.eigvalsh(gram)
    exact = float(eigenvalues[-1] / eigenvalues[0])
    assert info["condition_number"] == pytest.approx(exact, rel=0.01)
    torch.testing.assert_close(
        inverse @ gram, torch.eye(96, dtype=torch.float64), atol=1e-6, rtol=0
    )
    # rank 95: Cholesky may succeed on rounding, the estimate is then huge and the spectrum refuses
    singular = phi[:, :95] @ torch.randn(95, 96, generator=generator, dtype=torch.float64)
    with pytest.raises(AttributionError, match="rank 95 of 96"):
        kernel_inverse(singular.T @ singular, 400)


def test_projection_preserves_inner_products():
    """Johnson-Lindenstrauss: E[(Mᵀg)·(Mᵀh)] = k g·h for ±1 entries."""
    sizes = [("w", 2000)]
    k = 1024
    matrix = GradientProjector(sizes, k, "rademacher", 3, 0, torch.device("cpu")).matrix(["w"])
    g = torch.randn(20, 2000, generator=torch.Generator().manual_seed(0))
    exact = g @ g.T
    sketched = (g @ matrix) @ (g @ matrix).T / k
    assert float(torch.corrcoef(torch.stack([exact.flatten(), sketched.flatten()]))[0, 1]) > 0.98


def test_agrees_with_traker_given_the_same_projection_matrices(tmp_path, monkeypatch):
    """traker 0.3.2, BasicProjector on CPU, float32;
    modelkin fed traker's matrices gives traker's scores."""
    trak = pytest.importorskip("trak")
    from trak.projectors import BasicProjector, ProjectionType

    train, targets = blobs(400, 4, shape=(1, 8, 8)), blobs(40, 5, shape=(1, 8, 8))
    seeds = (0, 1, 2)
    proj_dim = 128  # traker's BasicProjector fails at proj_dim <= 100
    num_params = sum(p.numel() for p in tiny_cnn(0).parameters())

    traker = trak.TRAKer(
        model=tiny_cnn(0),
        task="image_classification",
        train_set_size=len(train[1]),
        save_dir=str(tmp_path / "traker"),
        device="cpu",
        proj_dim=proj_dim,
        use_half_precision=False,
        logging_level=40,
    )
    for model_id, seed in enumerate(seeds):
        traker.load_checkpoint(tiny_cnn(seed).state_dict(), model_id=model_id)
        for start in range(0, 400, 100):
            traker.featurize(
                batch=[train[0][start : start + 100], train[1][start : start + 100]],
                num_samples=100,
            )
    traker.finalize_features()
    for model_id, seed in enumerate(seeds):
        traker.start_scoring_checkpoint(
            exp_name="t", checkpoint=tiny_cnn(seed).state_dict(), model_id=model_id, num_targets=40
        )
        traker.score(batch=list(targets), num_samples=40)
    expected = np.asarray(traker.finalize_scores(exp_name="t"))

    def traker_matrix(self, names):
        projector = BasicProjector(
            grad_dim=num_params,
            proj_dim=proj_dim,
            seed=0,
            proj_type=ProjectionType.normal,
            device="cpu",
            model_id=self.index,
        )
        full = projector.project(
            torch.eye(num_params), model_id=self.index
        )  # rows of M, in parameter order
        assert list(names) == [n for n, _ in self.param_sizes]
        return full

    monkeypatch.setattr(GradientProjector, "matrix", traker_matrix)
    ours = trak_scores(
        [tiny_cnn(s) for s in seeds], train, targets, TrakSettings(proj_dim=proj_dim), device="cpu"
    ).numpy()
    correlation = np.corrcoef(ours.ravel(), expected.ravel())[0, 1]
    assert correlation > 0.999, correlation
    np.testing.assert_allclose(ours, expected, rtol=0.05, atol=0.02 * np.abs(expected).max())


def test_singular_kernel_names_the_fix():
    train, targets = blobs(40, 6), blobs(5, 7)
    with pytest.raises(AttributionError, match="ridge"):
        featurize(
            tiny_mlp(0), train, targets, TrakSettings(proj_dim=None), device="cpu"
        )  # 123 params, 40 examples
    features = featurize(
        tiny_mlp(0), train, targets, TrakSettings(proj_dim=None, ridge=1e-3), device="cpu"
    )
    assert features.info["lambda"] > 0 and np.isfinite(features.train_features.numpy()).all()


def test_bad_inputs_are_refused_with_clear_errors():
    train = blobs(40, 6)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*train), batch_size=8, shuffle=True
    )
    with pytest.raises(AttributionError, match="shuffle=False"):
        featurize(tiny_mlp(0), loader, train, TrakSettings(proj_dim=None, ridge=1e-3), device="cpu")
    with pytest.raises(AttributionError, match="one-shot iterator"):
        featurize(
            tiny_mlp(0), iter([train]), train, TrakSettings(proj_dim=None, ridge=1e-3), device="cpu"
        )
    with pytest.raises(ValueError, match="proj_type"):
        TrakSettings(proj_type="sparse")
    with pytest.raises(ValueError, match="unknown TRAK setting"):
        TrakSettings.from_dict({"projdim": 10})
    with pytest.raises(AttributionError, match="set proj_dim"):
        featurize(nn.Linear(200, 200), train, train, TrakSettings(proj_dim=None), device="cpu")


def test_data_loader_and_tensors_give_the_same_scores():
    train, targets = blobs(64, 8), blobs(16, 9)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*train), batch_size=10, shuffle=False
    )
    settings = TrakSettings(proj_dim=None, ridge=1e-3)
    a = trak_scores([tiny_mlp(0)], loader, targets, settings, device="cpu")
    b = trak_scores([tiny_mlp(0)], train, targets, settings, device="cpu")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_lds_of_an_exactly_linear_datamodel_is_one_and_of_noise_is_zero():
    rng = np.random.default_rng(0)
    n_train, n_targets, n_subsets = 50, 8, 40
    scores = rng.normal(size=(n_train, n_targets))
    masks = np.stack([subset_mask(n_train, 0.5, 0, s) for s in range(n_subsets)])
    assert (masks.sum(axis=1) == 25).all()
    exact = masks @ scores
    assert linear_datamodeling_score(scores, masks, 3 * exact + 1).lds == pytest.approx(1.0)
    assert linear_datamodeling_score(scores, masks, -exact).lds == pytest.approx(-1.0)
    noise = np.stack([rng.normal(size=(n_subsets, n_targets)) for _ in range(50)])
    assert abs(np.mean([linear_datamodeling_score(scores, masks, z).lds for z in noise])) < 0.05
    with pytest.raises(ValueError, match="shapes do not fit"):
        linear_datamodeling_score(scores, masks[:, :10], exact)
