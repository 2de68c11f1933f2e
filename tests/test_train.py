import pytest
import torch

from modelkin.attacks import pgd_attack, trades_attack
from modelkin.checkpoint import load_checkpoint
from modelkin.data import load_split
from modelkin.evaluate import evaluate_model
from modelkin.models import seeded_model
from modelkin.train import TrainRecipe, fit, make_scheduler, train_checkpoint

QUICK = {"optimizer": "adam", "lr": 0.003, "epochs": 2, "batch_size": 16, "train_limit": 400}


@pytest.fixture(scope="module")
def trained(digits_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "mlp.safetensors"
    return train_checkpoint(
        out,
        prepared=digits_file,
        arch="mlp",
        algorithm="standard",
        recipe={**QUICK, "epochs": 4},
        init_seed=0,
        data_seed=0,
        device="cpu",
    )


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seeds_give_bit_identical_models_and_other_seeds_differ(digits_file):
    train = load_split(digits_file, "train", limit=200)
    recipe = TrainRecipe(**{**QUICK, "epochs": 1})
    runs = {}
    for init, data in [(0, 0), (0, 0), (1, 0), (0, 1)]:
        model = seeded_model("lenet", "digits", init)
        fit(model, train, recipe, data_seed=data, device="cpu")
        runs.setdefault((init, data), []).append(_weights(model))
    assert torch.equal(runs[(0, 0)][0], runs[(0, 0)][1])
    assert not torch.equal(runs[(0, 0)][0], runs[(1, 0)][0])  # weight-initialisation noise alone
    assert not torch.equal(runs[(0, 0)][0], runs[(0, 1)][0])  # batch-order noise alone


def test_thirds_schedule_divides_by_ten_twice():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, "thirds", epochs=3, steps_per_epoch=10)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (
        lrs[0] == 1.0
        and lrs[9] == 1.0
        and lrs[10] == pytest.approx(0.1)
        and lrs[29] == pytest.approx(0.01)
    )


def test_checkpoint_records_metadata_and_reaches_good_accuracy(trained, digits_file):
    ckpt = load_checkpoint(trained)
    meta = ckpt.meta
    assert meta["arch"] == "mlp" and meta["dataset"] == "digits" and meta["algorithm"] == "standard"
    assert meta["init_seed"] == 0 and meta["data_seed"] == 0 and meta["epochs"] == 4
    assert meta["recipe"]["optimizer"] == "adam" and meta["modelkin_version"]
    assert len(meta["history"]) == 4
    assert "accuracy" not in meta  # training does not evaluate: the evaluate stage does, once
    test = load_split(digits_file, "test")
    assert evaluate_model(ckpt.model, test, steps=0, device="cpu")["accuracy"] > 0.85


def test_pgd_lowers_accuracy_and_respects_the_budget(trained, digits_file):
    model = load_checkpoint(trained).model
    test = load_split(digits_file, "test", limit=200)
    clean = evaluate_model(model, test, steps=0, device="cpu")["accuracy"]
    robust = evaluate_model(model, test, epsilon=0.1, steps=10, device="cpu")["robust_accuracy"]
    assert robust < clean - 0.2
    x_adv = pgd_attack(model, test.x[:16], test.y[:16], epsilon=0.05, step_size=0.01, steps=5)
    assert (
        (x_adv - test.x[:16]).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    )
    x_tr = trades_attack(model, test.x[:16], epsilon=0.05, step_size=0.01, steps=5)
    assert (x_tr - test.x[:16]).abs().max() <= 0.05 + 1e-6
    assert model.training is False and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("adversary", ["madry", "trades"])
def test_adversarial_training_improves_robustness(digits_file, adversary):
    train = load_split(digits_file, "train", limit=400)
    test = load_split(digits_file, "test", limit=200)
    results = {}
    for kind in ("none", adversary):
        recipe = TrainRecipe(
            **{**QUICK, "epochs": 3}, adversary=kind, epsilon=0.1, attack_steps=3, attack_ratio=1.0
        )
        model = seeded_model("mlp", "digits", 0)
        fit(model, train, recipe, data_seed=0, device="cpu")
        results[kind] = evaluate_model(model, test, epsilon=0.1, steps=10, device="cpu")[
            "robust_accuracy"
        ]
    assert results[adversary] > results["none"] + 0.1


def test_killed_run_resumes_to_the_same_model(digits_file, tmp_path):
    train = load_split(digits_file, "train", limit=200)
    recipe = TrainRecipe(**{**QUICK, "epochs": 3})
    reference = seeded_model("lenet", "digits", 0)
    fit(reference, train, recipe, data_seed=0, device="cpu")

    resume = tmp_path / "state.pt"
    interrupted = seeded_model("lenet", "digits", 0)

    class Killed(Exception):
        pass

    import modelkin.train as train_module

    original = train_module._save_resume
    calls = []

    def save_then_maybe_die(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise Killed

    train_module._save_resume = save_then_maybe_die
    try:
        with pytest.raises(Killed):
            fit(interrupted, train, recipe, data_seed=0, device="cpu", resume_path=resume)
    finally:
        train_module._save_resume = original
    assert resume.exists()
    restarted = seeded_model("lenet", "digits", 0)
    fit(restarted, train, recipe, data_seed=0, device="cpu", resume_path=resume)
    assert torch.equal(_weights(restarted), _weights(reference))
    assert not resume.exists()


def test_resume_state_of_other_settings_is_ignored(digits_file, tmp_path):
    train = load_split(digits_file, "train", limit=100)
    resume = tmp_path / "state.pt"
    resume.write_bytes(b"not a torch file")
    model = seeded_model("mlp", "digits", 0)
    fit(
        model,
        train,
        TrainRecipe(**{**QUICK, "epochs": 1}),
        data_seed=0,
        device="cpu",
        resume_path=resume,
    )
    reference = seeded_model("mlp", "digits", 0)
    fit(reference, train, TrainRecipe(**{**QUICK, "epochs": 1}), data_seed=0, device="cpu")
    assert torch.equal(_weights(model), _weights(reference))


def test_recipe_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainRecipe.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="adversary must be one of"):
        TrainRecipe(adversary="fgsm")
