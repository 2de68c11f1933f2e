"""ModelDiff (modelkin.modeldiff): residual algebra, PCA directions with correct labels, the
published API, the counterfactual. The planted-patch acceptance case on digits:
test_modeldiff_acceptance.py; the workflow's plan: test_modeldiff_plan.py."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from torch import nn

from modelkin.attribution import TrakSettings
from modelkin.errors import InputError
from modelkin.modeldiff.api import ModelDiff
from modelkin.modeldiff.counterfactual import (
    blur,
    brighten,
    counterfactual_probabilities,
    resolve_counterfactual,
    resolve_patch,
    rotate,
    summarise_counterfactual,
)
from modelkin.modeldiff.directions import (
    ModelDiffError,
    explained_variance,
    precision_at_k,
    residual_pca,
    residual_scores,
)


def planted_scores(seed: int = 0, n_test: int = 80, n_train: int = 200):
    """B: shared structure plus noise. A: the same, plus a block that training examples 0-14
    contribute to test examples 0-19 (something only A does)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n_test, 5)) @ rng.normal(size=(5, n_train))
    b = shared + 0.3 * rng.normal(size=(n_test, n_train))
    a = shared + 0.3 * rng.normal(size=(n_test, n_train))
    a[:20, :15] += 2.5
    return a, b


def test_residuals_match_their_definitions():
    a, b = planted_scores()
    raw = residual_scores(a, b, normalize_rows=False)
    expected = a - ((a * b).sum(1) / (b * b).sum(1))[:, None] * b  # the modeldiff package's formula
    np.testing.assert_allclose(raw, expected, atol=1e-12)
    normalised = residual_scores(a, b)
    a_hat = a / np.linalg.norm(a, axis=1, keepdims=True)
    b_hat = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(
        normalised, a_hat - (a_hat * b_hat).sum(1, keepdims=True) * b_hat, atol=1e-12
    )
    assert np.abs((normalised * b).sum(1)).max() < 1e-10  # nothing of b_x is left in r_x
    # scaling a test example's scores in either algorithm changes nothing after row normalisation
    scale = np.linspace(0.1, 10, len(a))[:, None]
    np.testing.assert_allclose(residual_scores(a * scale, b / scale), normalised, atol=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
def test_a_minus_b_finds_what_only_a_does_and_labels_variances_by_algorithm(normalize):
    a, b = planted_scores()
    ab = residual_pca(a, b, 3, kind="A-minus-B", normalize_rows=normalize)
    assert ab.directions.shape == (3, 200) and ab.projections.shape == (80, 3)
    np.testing.assert_allclose(np.linalg.norm(ab.directions, axis=1), 1, atol=1e-9)
    assert precision_at_k(ab.directions[0], range(15), k=15) == 1.0
    assert set(ab.top_test(0, 20)) == set(
        range(20)
    )  # oriented: the subpopulation projects positively
    assert ab.explained_variance["A"][0] > 5 * ab.explained_variance["B"][0]
    np.testing.assert_allclose(ab.explained_variance["A"], explained_variance(a, ab.directions))
    # B-minus-A: variances still labelled by algorithm (the package calls B's values 'A')
    ba = residual_pca(a, b, 3, kind="B-minus-A", normalize_rows=normalize)
    np.testing.assert_allclose(ba.explained_variance["B"], explained_variance(b, ba.directions))
    np.testing.assert_allclose(ba.explained_variance["A"], explained_variance(a, ba.directions))
    assert ba["variances"] is ba.explained_variance and (ba.first, ba.second) == ("B", "A")
    assert precision_at_k(ba.directions[0], range(15), k=15) < 0.5


def test_agrees_with_the_modeldiff_package_formulas_up_to_sign():
    """An independent transcription of modeldiff/pca.py (residual_pca, unnormalised residuals)."""
    from sklearn.decomposition import PCA

    a, b = planted_scores(1)
    num = (b * a).sum(axis=1)
    proj = (num / (a * a).sum(axis=1))[:, None] * a
    package = PCA(n_components=2).fit(b - proj)  # what the package's get_B_minus_A computes
    ours = residual_pca(a, b, 2, kind="B-minus-A", normalize_rows=False)
    for c in range(2):
        assert abs(abs(float(package.components_[c] @ ours.directions[c])) - 1) < 1e-8


def arch() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.Tanh(), nn.Linear(5, 3))


def loader(x, y, batch_size: int = 8):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


@pytest.fixture(scope="module")
def published():
    """150 random 4x4 images (the first 30: test examples, the next 90: training examples, the
    last 30: more test examples) and two random checkpoints per algorithm."""
    torch.manual_seed(0)
    x = torch.randn(150, 1, 4, 4)
    y = (x[:, 0, 0, 0] > 0).long() + (x[:, 0, 3, 3] > 0).long()
    ckpts = {k: [] for k in "AB"}
    for k, seeds in (("A", (0, 1)), ("B", (2, 3))):
        for s in seeds:
            torch.manual_seed(s)
            ckpts[k].append(arch().state_dict())
    return {"x": x, "y": y, "train": loader(x[30:120], y[30:120], 16), "ckpts": ckpts}


def model_diff(published) -> ModelDiff:
    ckpts = published["ckpts"]
    return ModelDiff(
        arch(),
        arch(),
        ckpts["A"],
        ckpts["B"],
        published["train"],
        trak={"proj_dim": None, "ridge": 1e-3},
        device="cpu",
    )


def test_published_api_on_cpu(published):
    x, y, train, ckpts = published["x"], published["y"], published["train"], published["ckpts"]
    val = loader(x[:30], y[:30])
    md = model_diff(published)
    assert (
        md.trak.out_to_loss is False
    )  # ModelDiff's default: unweighted TRAK scores (docs/modeldiff.md)
    ab = md.get_A_minus_B(val, num_pca_comps=2)
    ba = md.get_B_minus_A(val, num_pca_comps=2)
    assert ab.kind == "A-minus-B" and ba.kind == "B-minus-A"
    assert ab["directions"].shape == (2, 90) and ab["projections"].shape == (30, 2)
    scores_a, scores_b = md.attribute(val, "A"), md.attribute(val, "B")
    assert scores_a.shape == (30, 90)
    from_scores = ModelDiff().get_B_minus_A_from_scores(scores_a, scores_b, 2)
    np.testing.assert_allclose(from_scores.directions, ba.directions, atol=1e-10)
    weighted = ModelDiff(
        arch(),
        arch(),
        ckpts["A"],
        ckpts["B"],
        train,
        trak=TrakSettings(proj_dim=None, ridge=1e-3),
        device="cpu",
    )
    assert (
        weighted.trak.out_to_loss is True
    )  # a TrakSettings is taken as given (traker's weighting by default)
    with pytest.raises(InputError, match="both modelA and modelB"):
        ModelDiff(arch(), None, ckpts["A"], [], train)
    with pytest.raises(InputError, match="same test and training examples"):
        residual_pca(scores_a, scores_b[:, :50], 2)
    with pytest.raises(KeyError, match="keys: directions"):
        ab["variance"]
    with pytest.raises(InputError, match="keys: directions"):
        ab["variance"]


def test_two_loaders_never_get_each_others_scores(published):
    """Scores belong to a loader's examples, not to the loader object: a loader made after another
    was freed (CPython may give it the freed one's id()) still gets its own scores."""
    x, y = published["x"], published["y"]
    md = model_diff(published)
    first, second = loader(x[:30], y[:30]), loader(x[120:], y[120:])
    scores_first = md.attribute(first, "A")
    scores_second = md.attribute(second, "A")
    assert scores_first.shape == scores_second.shape == (30, 90)
    assert not np.allclose(scores_first, scores_second)

    freed = id(first)
    del first
    gc.collect()
    # Look for a loader at the freed one's id(), which the old cache was keyed on; every
    # candidate stays alive, so the last one is either at that id or at a new one.
    candidates = [loader(x[120:], y[120:])]
    while id(candidates[-1]) != freed and len(candidates) < 2000:
        candidates.append(loader(x[120:], y[120:]))
    later = candidates[-1]  # the same examples as `second`
    np.testing.assert_allclose(md.attribute(later, "A"), scores_second, atol=1e-6)
    # both directions of one comparison see the loader they are given
    ab = md.get_A_minus_B(later, 2)
    np.testing.assert_allclose(ab.scores["A"], scores_second, atol=1e-6)


def test_counterfactual_rows_measure_the_change_in_target_probability():
    class CornerDetector(nn.Module):
        """Class 1 logit = 10 x pixel (0, 0); class 0 constant."""

        def __init__(self, gain):
            super().__init__()
            self.gain = gain

        def forward(self, x):
            return torch.stack([torch.full((len(x),), 2.0), self.gain * x[:, 0, 0, 0]], dim=1)

    images = torch.zeros(10, 1, 4, 4)

    def patch(x):
        x = x.clone()
        x[:, :, 0, 0] = 1.0
        return x

    rows = counterfactual_probabilities(
        {
            "blind": [("b0", CornerDetector(0.0))],
            "sees": [("s0", CornerDetector(10.0)), ("s1", CornerDetector(4.0))],
        },
        images,
        patch,
        target_class=1,
        device="cpu",
    )
    by_name = {r["checkpoint"]: r for r in rows}
    p0 = 1 / (1 + np.exp(2.0))
    assert by_name["b0"]["delta_p_target"] == pytest.approx(0.0, abs=1e-7)
    assert by_name["s0"]["p_target_before"] == pytest.approx(p0, rel=1e-5)
    assert by_name["s0"]["p_target_after"] == pytest.approx(1 / (1 + np.exp(2.0 - 10.0)), rel=1e-5)
    assert (
        by_name["s0"]["predicted_target_after"] == 1.0
        and by_name["s1"]["predicted_target_before"] == 0.0
    )
    summary = {r["role"]: r for r in summarise_counterfactual(rows, {"blind": "A", "sees": "B"})}
    assert (
        summary["B"]["n_checkpoints"] == 2
        and summary["B"]["delta_p_target"] > 0.5 > summary["A"]["delta_p_target"]
    )


def test_counterfactual_patch_comes_from_the_config_else_b_else_a():
    a = {"planted_patch": {"target_class": 1, "size": 2, "color": [0.5], "position": [1, 1]}}
    b = {"planted_patch": {"target_class": 3, "size": 4, "color": [1.0], "position": [0, 0]}}
    assert resolve_patch(None, a, b).target_class == 3
    assert resolve_patch(None, a, {}).position == (1, 1)  # lists from YAML become tuples
    assert resolve_patch({"target_class": 7}, a, b).target_class == 7
    with pytest.raises(ModelDiffError, match="modeldiff.counterfactual.patch"):
        resolve_patch(None, {}, {})
    with pytest.raises(InputError, match="no setting 'colour'"):
        resolve_patch({"target_class": 1, "colour": [1.0]}, {}, {})


# ---------------------------------------------------------------------------------------------
# Counterfactual transformations other than a planted patch


def test_counterfactual_settings_choose_the_transformation_and_its_class():
    planted = {"planted_patch": {"target_class": 3, "size": 4, "color": [1.0], "position": [0, 0]}}
    default = resolve_counterfactual(None, {}, planted)
    assert default.transform == "patch" and default.target_class == 3
    bright = resolve_counterfactual({"transform": "brightness"}, {}, planted)
    assert bright.target_class == 3 and bright.params == {"brightness": 0.3}
    tilted = resolve_counterfactual(
        {"transform": "rotation", "target_class": 7, "rotation_degrees": 90}, {}, {}
    )
    x = torch.rand(2, 1, 6, 6)
    assert tilted.target_class == 7 and torch.allclose(tilted.apply(x), torch.rot90(x, 1, (2, 3)))
    with pytest.raises(ModelDiffError, match="set modeldiff.counterfactual.target_class"):
        resolve_counterfactual({"transform": "blur"}, {}, {})
    with pytest.raises(ModelDiffError, match="no setting"):
        resolve_counterfactual({"transform": "blur", "sigma": 2}, {}, {})


def test_brightness_blur_and_rotation_do_what_they_say():
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(brighten(x, 0.0), x)
    assert torch.equal(brighten(x, 1.0), torch.ones_like(x))
    assert torch.allclose(brighten(x, -0.2), (x - 0.2).clamp(min=0))
    flat = torch.full((2, 1, 10, 10), 0.4)
    assert torch.allclose(blur(flat, 1.5), flat, atol=1e-6)  # reflected borders: no dark frame
    blurred = blur(x, 1.0)
    assert blurred.shape == x.shape and blurred.std() < 0.6 * x.std()
    assert torch.allclose(blurred.mean(), x.mean(), atol=0.01)
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    spread = blur(point, 1.0)[0, 0]
    assert spread[4, 4] == spread.max() and torch.allclose(spread, spread.T, atol=1e-7)
    assert torch.allclose(spread.sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(rotate(x, 0.0), x, atol=1e-6)
    assert torch.allclose(rotate(x, 90.0), torch.rot90(x, 1, (2, 3)), atol=1e-6)
    assert torch.allclose(rotate(x, -90.0), torch.rot90(x, -1, (2, 3)), atol=1e-6)
    assert rotate(x, 45.0)[:, :, 0, 0].abs().max() == 0  # corners leave the frame


def test_a_model_trained_on_brightened_images_of_one_class_responds_to_brightness(digits_file):
    """Known answer: class 3's training images brightened by 0.3 for one model and not for the
    other; brightening the test images of the other classes raises P(3) for the first only."""
    from modelkin.data import Split, load_split
    from modelkin.models import seeded_model
    from modelkin.train import TrainRecipe, fit

    train = load_split(digits_file, "train", limit=400)
    x = train.x.clone()
    x[train.y == 3] = brighten(x[train.y == 3], 0.3)
    recipe = TrainRecipe(optimizer="adam", lr=0.003, epochs=2, batch_size=32)
    models = {}
    for name, images in (("clean", train.x), ("bright", x)):
        model = seeded_model("mlp", "digits", 0)
        fit(model, Split(images, train.y, train.info), recipe, data_seed=0, device="cpu")
        models[name] = [(name, model.eval())]
    test = load_split(digits_file, "test")
    others = test.x[test.y != 3]
    chosen = resolve_counterfactual({"transform": "brightness", "target_class": 3}, {}, {})
    rows = {
        r["algorithm"]: r
        for r in counterfactual_probabilities(
            models, others, chosen.apply, chosen.target_class, device="cpu"
        )
    }
    assert rows["bright"]["p_target_before"] < 0.1 and rows["clean"]["p_target_before"] < 0.1
    assert rows["bright"]["delta_p_target"] > 0.5
    assert rows["clean"]["delta_p_target"] < 0.2


def test_a_checkpoint_without_recipe_is_attributed_to_the_whole_train_split_if_external(
    digits_file, tmp_path
):
    """The user's own checkpoints (modeldiff.models_a/models_b) record no modelkin recipe: their
    training data is the data set's whole train split. Others without one are refused."""
    from modelkin.attribution.jobs import featurize_checkpoint_file, read_features
    from modelkin.attribution.settings import AttributionError
    from modelkin.checkpoint import save_checkpoint
    from modelkin.data import load_split
    from modelkin.models import build_model

    torch.manual_seed(0)
    path = save_checkpoint(
        tmp_path / "yours.safetensors",
        build_model("lenet", "digits"),
        {"arch": "lenet", "dataset": "digits", "num_classes": 10, "name": "external/yours"},
    )
    job = {"settings": {"proj_dim": 16}, "checkpoint_index": 0, "n_targets": 8, "device": "cpu"}
    with pytest.raises(AttributionError, match="modeldiff.models_a"):
        featurize_checkpoint_file(tmp_path / "no.h5", checkpoint=path, prepared=digits_file, **job)
    out = featurize_checkpoint_file(
        tmp_path / "yes.h5", checkpoint=path, prepared=digits_file, external=True, **job
    )
    features, stored = read_features(out)
    assert features.train_features.shape == (len(load_split(digits_file, "train")), 16)
    assert stored.attrs["data"]["train_limit"] is None
    assert stored.attrs["data"]["planted_patch"] is None
