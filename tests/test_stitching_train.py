"""Training the stitching layer: losses, CKA regulariser,
cached front, adversaries, options, tasks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from modelkin.data import Split, load_split
from modelkin.datasets import get_dataset_info
from modelkin.measures import linear_cka
from modelkin.models import seeded_model
from modelkin.stitching import (
    PRESETS,
    StitchOptions,
    Task,
    build_stitched,
    initialise,
    linear_cka_torch,
    parse_task,
    soft_cross_entropy,
    target_loss,
    train_stitcher,
)
from modelkin.stitching.evaluate import classification_metrics, robust_metrics

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Losses: values by hand


def _softmax(v):
    e = [math.exp(a) for a in v]
    return [a / sum(e) for a in e]


def _soft_ce(s, t, temperature=1.0):
    p = _softmax([a / temperature for a in t])
    log_q = [math.log(q) for q in _softmax([a / temperature for a in s])]
    return -sum(pi * lq for pi, lq in zip(p, log_q, strict=True))


S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
T1 = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
T2 = [[0.0, 3.0, -1.0], [2.0, -2.0, 0.5]]
Y = [1, 2]


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_soft_target_losses_equal_hand_computed_values(temperature):
    s, t1, t2, y = torch.tensor(S), torch.tensor(T1), torch.tensor(T2), torch.tensor(Y)
    mean = lambda f: sum(f(i) for i in range(2)) / 2  # noqa: E731
    expected = {
        "hard": mean(lambda i: -math.log(_softmax(S[i])[Y[i]])),
        "soft_1": mean(lambda i: _soft_ce(S[i], T1[i], temperature)),
        "soft_2": mean(lambda i: _soft_ce(S[i], T2[i], temperature)),
        "soft_12": mean(
            lambda i: (_soft_ce(S[i], T1[i], temperature) + _soft_ce(S[i], T2[i], temperature)) / 2
        ),
        "soft_1_plus_2": mean(
            lambda i: _soft_ce(
                S[i], [(a + b) / 2 for a, b in zip(T1[i], T2[i], strict=True)], temperature
            )
        ),
    }
    for target_type, value in expected.items():
        got = target_loss(s, y, target_type, logits1=t1, logits2=t2, temperature=temperature).item()
        assert got == pytest.approx(value, rel=1e-6), target_type


def test_soft_cross_entropy_is_minimal_at_the_target():
    t = torch.tensor(T2)
    at_target = soft_cross_entropy(t, t).item()
    assert at_target < soft_cross_entropy(torch.tensor(S), t).item()
    entropy = -(torch.softmax(t, 1) * torch.log_softmax(t, 1)).sum(1).mean().item()
    assert at_target == pytest.approx(entropy, rel=1e-6)


@pytest.mark.parametrize("n, p1, p2", [(200, 5, 7), (20, 50, 30)])  # feature route and Gram route
def test_torch_cka_agrees_with_the_measures_package(n, p1, p2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, p1, generator=g, dtype=torch.float64)
    y = torch.randn(n, p2, generator=g, dtype=torch.float64) + x[:, :1] * 2
    value = linear_cka_torch(x, y.requires_grad_())
    assert value.item() == pytest.approx(linear_cka(x.numpy(), y.detach().numpy()), rel=1e-9)
    value.backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert linear_cka_torch(x, 3 * x + 1).item() == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def train_split(digits_file) -> Split:
    return load_split(digits_file, "train", limit=96)


def _donors(arch="lenet"):
    return seeded_model(arch, "digits", 0).eval(), seeded_model(arch, "digits", 1).eval()


@pytest.mark.parametrize(
    "layer, arch, extra",
    [
        ("relu2", "lenet", {"target_type": "soft_12", "cka_reg": 0.5, "l1": 0.01}),
        ("relu3", "lenet", {"target_type": "hard"}),
        (
            "layer1.0.relu1",
            "resnet20_w1",
            {"target_type": "soft_2"},
        ),  # not a cut point: model 2 runs in full
    ],
)
def test_cached_front_training_equals_hook_based_training(train_split, layer, arch, extra):
    options = StitchOptions.from_dict({"epochs": 1, "batch_size": 32, "lr": 0.01, **extra})
    params = []
    for cache, execution in ((True, "auto"), (False, "hooks")):
        model1, model2 = _donors(arch)
        stitched = build_stitched(model1, layer, model2, layer, execution=execution)
        initialise(stitched.stitch, "random", generator=torch.Generator().manual_seed(7))
        log = train_stitcher(stitched, train_split, options, device=CPU, cache=cache)
        assert log.cached_front is cache and log.steps == 3
        params.append([p.detach().clone() for p in stitched.stitch.parameters()])
        if cache:
            cached_loss = log.step_loss
        else:
            np.testing.assert_allclose(log.step_loss, cached_loss, rtol=1e-5)
    for a, b in zip(*params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_training_reduces_the_loss_and_only_moves_t(train_split):
    model1, model2 = _donors()
    before = copy.deepcopy(model2.state_dict())
    stitched = build_stitched(model1, "relu3", model2, "relu3")
    options = StitchOptions.from_dict(
        {"epochs": 4, "batch_size": 16, "lr": 0.01, "target_type": "soft_2"}
    )
    log = train_stitcher(stitched, train_split, options, device=CPU)
    assert log.epochs[-1]["loss"] < log.epochs[0]["loss"]
    assert [e["lr"] for e in log.epochs][-1] == pytest.approx(0.01 * 0.01)  # /10 at 1/3 and 2/3
    for key, value in model2.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_positive_cka_regulariser_pushes_cka_down(train_split):
    results = {}
    for weight in (0.0, 5.0):
        model1, model2 = _donors()
        stitched = build_stitched(model1, "relu3", model2, "relu3")
        initialise(stitched.stitch, "random", generator=torch.Generator().manual_seed(0))
        options = StitchOptions.from_dict(
            {"epochs": 3, "batch_size": 32, "lr": 0.01, "cka_reg": weight}
        )
        train_stitcher(stitched, train_split, options, device=CPU)
        with torch.no_grad():
            x = train_split.x
            results[weight] = linear_cka_torch(
                stitched.genuine_activation(x), stitched.stitch(stitched.front(x))
            ).item()
    assert results[5.0] < results[0.0] - 0.05


def test_donor_train_mode_updates_batch_norm_statistics(train_split):
    model1, model2 = _donors("tiny10")
    running = model2.bn5.running_mean.clone()
    options = StitchOptions.from_dict({"epochs": 1, "batch_size": 48, "train_bn": True})
    stitched = build_stitched(model1, "relu3", model2, "relu3", donor_train_mode=True)
    log = train_stitcher(stitched, train_split, options, device=CPU)
    assert not log.cached_front and not torch.equal(model2.bn5.running_mean, running)
    frozen1, frozen2 = _donors("tiny10")
    running = frozen2.bn5.running_mean.clone()
    train_stitcher(
        build_stitched(frozen1, "relu3", frozen2, "relu3"),
        train_split,
        options.__class__(epochs=1, batch_size=48),
        device=CPU,
    )
    assert torch.equal(frozen2.bn5.running_mean, running)


@pytest.mark.parametrize("adversary", ["madry", "trades"])
def test_adversarial_stitching_trains(train_split, adversary):
    model1, model2 = _donors()
    stitched = build_stitched(model1, "relu3", model2, "relu3")
    options = StitchOptions.from_dict(
        {
            "epochs": 1,
            "batch_size": 32,
            "adversary": adversary,
            "attack_steps": 2,
            "attack_ratio": 0.5,
        }
    )
    log = train_stitcher(stitched, train_split, options, device=CPU)
    assert not log.cached_front and log.steps == 3 and all(math.isfinite(v) for v in log.step_loss)
    assert ("trades_kl" in log.epochs[0]) == (adversary == "trades")
    with pytest.raises(ValueError, match="fixed front"):
        train_stitcher(
            stitched,
            train_split,
            StitchOptions.from_dict({**options.to_dict(), "cache_front": True}),
            device=CPU,
        )


def test_robust_accuracy_is_at_most_clean_accuracy(digits_file):
    test = load_split(digits_file, "test", limit=64)
    model1, model2 = _donors()
    stitched = build_stitched(model1, "relu2", model2, "relu2")
    clean = classification_metrics(stitched, test, device=CPU)["accuracy"]
    robust = robust_metrics(
        stitched, test, epsilon=0.1, step_size=None, steps=5, max_images=None, device=CPU
    )
    assert (
        robust["robust_accuracy"] <= clean
        and robust["robust_epsilon"] == 0.1
        and robust["robust_images"] == 64
    )
    unattacked = robust_metrics(
        stitched, test, epsilon=0.0, step_size=None, steps=5, max_images=None, device=CPU
    )
    assert unattacked["robust_accuracy"] == pytest.approx(clean)


# ---------------------------------------------------------------------------------------------
# Options and tasks


def test_presets_and_precedence():
    assert StitchOptions.from_dict({"preset": "paper"}).init == "ps_inv"
    assert StitchOptions.from_dict({"preset": "paper"}).target_type == "soft_2"
    mixed = StitchOptions.from_dict({"preset": "paper", "init": "eye"})
    assert (mixed.init, mixed.target_type, mixed.preset) == ("eye", "soft_2", "paper")
    default = StitchOptions()
    assert (
        default.init,
        default.target_type,
        default.optimizer,
        default.lr,
        default.epochs,
        default.batch_size,
    ) == (
        "random",
        "hard",
        "adam",
        1e-3,
        30,
        128,
    )
    assert set(PRESETS) == {"paper", "cli-default"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"init": "pinv"}, "init must be one of"),
        ({"target_type": "soft"}, "target_type"),
        ({"low_rank": 2, "mask": "semi-match"}, "cannot be combined"),
        ({"preset": "nope"}, "unknown stitching preset"),
        ({"learning_rate": 1}, "unknown stitching option"),
    ],
)
def test_bad_options_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        StitchOptions.from_dict(values)


def test_schema_lists_exactly_the_options():
    from modelkin.config import schema

    documented = set(schema()["properties"]["stitching"]["$defs"]["options"]["properties"])
    fields = set(StitchOptions().to_dict()) - {"preset"}
    assert documented == fields


def test_task_transforms(digits_file):
    split = load_split(digits_file, "test", limit=20)
    inverted = parse_task("digits:invert").apply(split)
    torch.testing.assert_close(inverted.x, 1 - split.x)
    assert torch.equal(inverted.y, split.y)
    transposed = parse_task("digits:transpose").apply(split)
    torch.testing.assert_close(transposed.x, split.x.transpose(-1, -2))
    task = Task("relabelled", "digits", ("permute_labels",), seed=3)
    relabelled = task.apply(split)
    perm = task.label_permutation()
    assert sorted(perm.tolist()) == list(range(10)) and torch.equal(relabelled.y, perm[split.y])
    assert torch.equal(relabelled.x, split.x) and split.x.max() <= 1
    named = parse_task("inv", {"inv": {"dataset": "digits", "transforms": ["invert"]}})
    assert (named.name, named.dataset, named.transforms) == ("inv", "digits", ("invert",))
    with pytest.raises(ValueError, match="unknown task"):
        parse_task("digitz")
    with pytest.raises(ValueError, match="unknown transform"):
        parse_task("digits:rotate")
    assert get_dataset_info("digits").num_classes == named.num_classes
