"""The stitched network and its affine layer: known
answers, shapes, errors (modelkin.stitching.model/init)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from modelkin.models import seeded_model
from modelkin.stitching import (
    Moments,
    StitchError,
    StitchingLayer,
    build_stitched,
    check_stitchable,
    common_stitch_points,
    initialise,
    make_mask,
    solve_affine,
    stitch_geometry,
)
from modelkin.stitching.init import accumulate_moments, random_permutation_mask, semi_match_mask


def images(n=8, seed=0):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def identical_pair(arch="lenet", seed=3):
    model = seeded_model(arch, "digits", seed).eval()
    return model, copy.deepcopy(model)


# ---------------------------------------------------------------------------------------------
# Known answer: eye init between identical donors is the donor itself


@pytest.mark.parametrize(
    "arch, layer",
    [
        ("lenet", "relu1"),
        ("lenet", "pool2"),
        ("lenet", "relu3"),
        ("mlp", "relu2"),
        ("resnet20_w1", "layer1.0.relu1"),
    ],
)
def test_eye_between_identical_donors_is_exactly_model2(arch, layer):
    model1, model2 = identical_pair(arch)
    stitched = build_stitched(model1, layer, model2, layer)
    initialise(stitched.stitch, "eye", generator=torch.Generator().manual_seed(0))
    x = images()
    with torch.no_grad():
        expected = model2(x)
        got = stitched(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # layer1.0.relu1 sits inside a residual block:
    # model 2 runs in full with its activation replaced.
    assert stitched.end_is_split == (arch != "resnet20_w1")


def test_hooks_execution_and_flatten_give_the_same_network():
    model1, model2 = identical_pair()
    x = images()
    outputs = []
    for kwargs in ({}, {"execution": "hooks"}, {"flatten": True}):
        stitched = build_stitched(model1, "relu2", model2, "relu2", **kwargs)
        initialise(stitched.stitch, "eye", generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            outputs.append(stitched(x))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], rtol=0, atol=1e-5)


def test_perm_init_is_a_permutation_and_ones_zeros_is_ones():
    model1, model2 = identical_pair()
    stitched = build_stitched(model1, "relu2", model2, "relu2")
    initialise(stitched.stitch, "perm", generator=torch.Generator().manual_seed(1))
    w = stitched.stitch.weight
    assert torch.equal(w.sum(0), torch.ones(16)) and torch.equal(w.sum(1), torch.ones(16))
    assert set(w.unique().tolist()) == {0.0, 1.0} and not torch.equal(w, torch.eye(16))
    initialise(stitched.stitch, "ones-zeros", generator=torch.Generator())
    assert torch.equal(stitched.stitch.weight, torch.ones(16, 16)) and torch.equal(
        stitched.stitch.bias, torch.zeros(16)
    )


def test_donors_are_frozen_and_follow_their_mode():
    model1, model2 = identical_pair("tiny10")
    stitched = build_stitched(model1, "relu3", model2, "relu3")
    assert stitched.trainable_parameters() == list(stitched.stitch.parameters())
    assert all(not p.requires_grad for p in model1.parameters())
    stitched.train()
    assert stitched.stitch.training and not model1.training and not model2.bn4.training
    bn = build_stitched(model1, "relu3", model2, "relu3", donor_train_mode=True)
    bn.train()
    assert model1.training and model2.bn4.training
    bn.eval()
    assert not model2.bn4.training


# ---------------------------------------------------------------------------------------------
# Geometry and errors


def test_resize_interpolates_the_front_to_the_end_size():
    model1, model2 = identical_pair()
    stitched = build_stitched(
        model1, "relu1", model2, "relu2", resize="area"
    )  # (6,28,28) -> (16,10,10)
    g = stitched.stitch.geometry
    assert (g.kind, g.resize, g.in_features, g.out_features) == ("conv", "area", 6, 16)
    x = images()
    a1 = model1.relu1(model1.conv1((x - model1.input_mean) / model1.input_std))
    t = stitched.stitch(a1)
    assert t.shape == (8, 16, 10, 10)
    # T's rows are the resized front's pixels: the conv equals the affine map applied to samples().
    rows = stitched.stitch.samples(a1) @ stitched.stitch.weight.T + stitched.stitch.bias
    torch.testing.assert_close(stitched.stitch.target_samples(t), rows, rtol=1e-5, atol=1e-5)
    assert stitched(x).shape == (8, 10)


def test_flatten_maps_feature_maps_onto_flat_layers():
    lenet, mlp = seeded_model("lenet", "digits", 0).eval(), seeded_model("mlp", "digits", 0).eval()
    with pytest.raises(StitchError, match="flatten=True"):
        check_stitchable(lenet, "pool2", mlp, "relu1")
    stitched = build_stitched(lenet, "pool2", mlp, "relu1", flatten=True)
    assert (stitched.stitch.in_features, stitched.stitch.out_features) == (400, 256)
    assert stitched(images()).shape == (8, 10)


def test_unknown_layer_lists_valid_layers_with_shapes():
    model1, model2 = identical_pair()
    with pytest.raises(StitchError) as err:
        build_stitched(model1, "relu9", model2, "relu2")
    assert (
        "relu9" in str(err.value)
        and "relu2 (16, 10, 10)" in str(err.value)
        and "fc3 (10,)" in str(err.value)
    )


def test_square_inits_refuse_non_square_layers():
    model1, model2 = identical_pair()
    stitched = build_stitched(model1, "relu1", model2, "relu2")
    with pytest.raises(StitchError, match="6 -> 16"):
        initialise(stitched.stitch, "eye", generator=torch.Generator())


def test_common_stitch_points_of_lenet_and_mlp():
    lenet, mlp = seeded_model("lenet", "digits", 0), seeded_model("mlp", "digits", 0)
    points = common_stitch_points(lenet, mlp)
    # Same names, both cut points, both flat: flatten
    # (400 vs 1024 features) and the linear/ReLU layers.
    assert ("flatten", "flatten") in points and ("relu1", "relu1") not in points
    assert all(a == b for a, b in points)


# ---------------------------------------------------------------------------------------------
# Least squares


def test_least_squares_recovers_a_planted_affine_map_exactly():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    moments = Moments(7, 5)
    for _ in range(
        4
    ):  # several batches, far from the origin: the shifted moments keep their precision
        x = 100.0 + torch.randn(300, 7, generator=g, dtype=torch.float64)
        moments.update(x, x @ w.T + b)
    solution = solve_affine(moments, ridge=0.0)
    torch.testing.assert_close(solution.weight, w, rtol=0, atol=1e-8)
    torch.testing.assert_close(solution.bias, b, rtol=0, atol=1e-6)
    assert solution.samples == 1200


def test_least_squares_refuses_moments_beyond_memory():
    with pytest.raises(StitchError, match="GiB of float64 moments"):
        Moments(64 * 32 * 32, 64 * 32 * 32)  # a flattened 64x32x32 feature map: 32 GiB


def test_least_squares_over_pixels_of_a_conv_stitch():
    geometry = stitch_geometry((4, 6, 6), (3, 6, 6))
    layer = StitchingLayer(geometry)
    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    batches = []
    for _ in range(3):
        a1 = torch.randn(10, 4, 6, 6, generator=g)
        a2 = torch.nn.functional.conv2d(a1, w[:, :, None, None], b)
        batches.append((a1, a2))
    solution = solve_affine(accumulate_moments(batches, layer))
    assert solution.samples == 3 * 10 * 36  # every pixel of every image is a sample
    torch.testing.assert_close(solution.weight.float(), w, rtol=0, atol=1e-4)
    torch.testing.assert_close(solution.bias.float(), b, rtol=0, atol=1e-4)


def test_least_squares_agrees_with_numpy_on_noisy_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 6)) * [1, 2, 3, 4, 5, 0.1] + 3.0
    y = rng.normal(size=(500, 4)) + x[:, :4] ** 2 * 0.1
    design = np.hstack([x, np.ones((500, 1))])
    reference, *_ = np.linalg.lstsq(design, y, rcond=None)
    moments = Moments(6, 4)
    for rows in np.array_split(np.arange(500), 7):
        moments.update(torch.from_numpy(x[rows]), torch.from_numpy(y[rows]))
    solution = solve_affine(moments, ridge=0.0)
    np.testing.assert_allclose(solution.weight.numpy().T, reference[:6], atol=1e-8)
    np.testing.assert_allclose(solution.bias.numpy(), reference[6], atol=1e-8)


def test_masked_least_squares_solves_each_row_on_its_support():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 5)), rng.normal(size=(400, 3))
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.float32)
    moments = Moments(5, 3)
    moments.update(torch.from_numpy(x), torch.from_numpy(y))
    solution = solve_affine(moments, ridge=0.0, mask=mask)
    for j in range(3):
        support = np.flatnonzero(mask[j].numpy())
        ref, *_ = np.linalg.lstsq(
            np.hstack([x[:, support], np.ones((400, 1))]), y[:, j], rcond=None
        )
        np.testing.assert_allclose(solution.weight[j, support].numpy(), ref[:-1], atol=1e-8)
        np.testing.assert_allclose(solution.bias[j].item(), ref[-1], atol=1e-8)
        assert np.all(solution.weight[j].numpy()[mask[j].numpy() == 0] == 0)


def test_reduced_rank_solution_is_the_best_rank_r_fit():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8))
    y = x @ rng.normal(size=(8, 6)) + 0.3 * rng.normal(size=(600, 6))
    moments = Moments(8, 6)
    moments.update(torch.from_numpy(x), torch.from_numpy(y))
    full = solve_affine(moments, ridge=0.0)
    rrr = solve_affine(moments, ridge=0.0, low_rank=2)
    assert torch.linalg.matrix_rank(rrr.weight).item() == 2

    def error(sol):
        pred = x @ sol.weight.numpy().T + sol.bias.numpy()
        return ((pred - y) ** 2).sum()

    # Closed form (numpy): project the least-squares fit
    # onto the top-2 right singular vectors of its outputs.
    xc, yc = x - x.mean(0), y - y.mean(0)
    w_ls = np.linalg.lstsq(xc, yc, rcond=None)[0]
    _, _, vt = np.linalg.svd(xc @ w_ls, full_matrices=False)
    np.testing.assert_allclose(rrr.weight.numpy().T, w_ls @ vt[:2].T @ vt[:2], atol=1e-8)
    # Better than truncating W itself to rank 2, worse than full rank.
    u, s, vh = np.linalg.svd(full.weight.numpy())
    truncated = type(full)(torch.from_numpy((u[:, :2] * s[:2]) @ vh[:2]), full.bias, full.samples)
    truncated.bias = torch.from_numpy(y.mean(0) - truncated.weight.numpy() @ x.mean(0))
    assert error(full) <= error(rrr) <= error(truncated) + 1e-9


def test_low_rank_layer_never_exceeds_its_rank():
    layer = StitchingLayer(stitch_geometry((12,), (10,)), low_rank=3)
    assert torch.linalg.matrix_rank(layer.weight.detach()).item() == 3
    assert torch.equal(layer.bias.detach(), torch.zeros(10))
    w1 = layer.w1.detach()
    torch.testing.assert_close(w1.T @ w1, torch.eye(3), rtol=0, atol=1e-5)  # orthogonal init
    layer.set_affine(torch.randn(10, 12), torch.zeros(10))  # a full-rank target is truncated
    assert torch.linalg.matrix_rank(layer.weight.detach()).item() == 3
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        layer(torch.randn(16, 12)).square().sum().backward()
        optimizer.step()
    assert torch.linalg.matrix_rank(layer.weight.detach()).item() <= 3
    with pytest.raises(StitchError, match="low_rank"):
        StitchingLayer(stitch_geometry((12,), (10,)), low_rank=11)


# ---------------------------------------------------------------------------------------------
# Masks


def test_semi_match_finds_the_planted_channel_matching():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2000, 6, generator=g, dtype=torch.float64)
    source = torch.tensor([4, 0, 0, 5, 2])  # not a bijection: input 0 feeds two outputs
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    y = x[:, source] * sign * 3 + 0.1 * torch.randn(2000, 5, generator=g, dtype=torch.float64)
    moments = Moments(6, 5, with_yy=True)
    moments.update(x, y)
    corr = moments.correlations()
    np.testing.assert_allclose(
        corr.numpy(), np.corrcoef(x.T.numpy(), y.T.numpy())[:6, 6:], atol=1e-10
    )
    absolute = semi_match_mask(corr, absolute=True)
    assert torch.equal(absolute.argmax(1), source) and torch.equal(absolute.sum(1), torch.ones(5))
    signed = semi_match_mask(corr)
    positive = sign > 0
    assert torch.equal(signed.argmax(1)[positive], source[positive])
    assert not torch.equal(signed.argmax(1)[~positive], source[~positive])


@pytest.mark.parametrize("q, p", [(6, 6), (4, 9), (9, 4)])
def test_random_permutation_mask_spreads_outputs_over_inputs(q, p):
    mask = random_permutation_mask(q, p, torch.Generator().manual_seed(0))
    assert torch.equal(mask.sum(1), torch.ones(q))
    uses = mask.sum(0)
    assert uses.max() - uses.min() <= 1 and uses.sum() == q
    if q == p:
        assert torch.equal(uses, torch.ones(p))


def test_mask_restricts_the_trained_weight():
    layer = StitchingLayer(stitch_geometry((4,), (4,)))
    mask = make_mask(
        "random-permutation", layer, moments=None, generator=torch.Generator().manual_seed(0)
    )
    layer.set_mask(mask)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(8, 4)).square().sum().backward()
        optimizer.step()
    assert torch.all(layer.weight.detach()[mask == 0] == 0)
    with pytest.raises(ValueError, match="correlations"):
        make_mask("semi-match", layer, moments=None, generator=torch.Generator())
