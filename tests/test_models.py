import pytest
import torch

from modelkin.datasets import get_dataset_info
from modelkin.models import ARCHITECTURES, build_model, seeded_model
from modelkin.models.layers import (
    LayerError,
    capture,
    is_cut_point,
    layer_names,
    layer_table,
    replaced,
    split,
)

SMALL = ["mlp", "lenet", "tiny10", "tiny10_nobn", "resnet20_w1", "vgg11"]


@pytest.mark.parametrize("arch", SMALL)
@pytest.mark.parametrize("dataset", ["digits", "cifar100"])
def test_architectures_adapt_to_the_dataset(arch, dataset):
    info = get_dataset_info(dataset)
    model = build_model(arch, dataset).eval()
    out = model(torch.rand(2, *info.shape))
    assert out.shape == (2, info.num_classes)


def test_every_architecture_builds_for_cifar10():
    for arch in ARCHITECTURES:
        model = build_model(arch, "cifar10")
        assert layer_names(model), arch


def test_known_parameter_counts():
    # Tiny10 of the stitching papers: about 87k parameters on CIFAR-10; ResNet-20: 0.27M.
    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(build_model("tiny10", "cifar10")) == 86458
    assert count(build_model("resnet20_w1", "cifar10")) == 269722
    assert count(build_model("lenet", "cifar10")) == 62006


def test_layer_names_are_stable_and_explicit():
    assert layer_names(build_model("lenet", "digits")) == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
        "fc1", "relu3", "fc2", "relu4", "fc3",
    ]  # fmt: skip
    names = layer_names(build_model("resnet20_w1", "digits"))
    assert "layer1.0.add" in names and "layer1.0.relu2" in names and names[-1] == "fc"
    assert [n for n in layer_names(build_model("tiny10", "digits")) if n.startswith("conv")] == [
        f"conv{i}" for i in range(1, 9)
    ]


def test_layer_table_shapes():
    table = {row.name: row for row in layer_table(build_model("resnet20_w2", "cifar10"))}
    assert table["layer1.2.relu2"].shape == (32, 32, 32)
    assert table["layer3.0.add"].shape == (128, 8, 8)
    assert table["layer2.0.add"].cut_point and not table["layer2.0.conv1"].cut_point


def test_capture_and_replace_act_on_the_real_tensor():
    model = build_model("lenet", "digits").eval()
    x = torch.rand(3, 1, 32, 32)
    acts = capture(model, x, ["relu3", "fc3"])
    assert torch.allclose(acts["fc3"], acts["logits"])
    with replaced(model, "relu3", lambda t: torch.zeros_like(t)):
        out = model(x)
    assert torch.allclose(out, model.fc3(model.relu4(model.fc2(torch.zeros(3, 120)))))
    with pytest.raises(LayerError, match="valid layers: conv1"):
        capture(model, x, ["conv9"])


@pytest.mark.parametrize(
    "arch,layer", [("resnet20_w1", "layer2.1.relu2"), ("tiny10", "bn4"), ("vgg11", "pool2")]
)
def test_split_at_a_cut_point_reproduces_the_model(arch, layer):
    model = build_model(arch, "digits").eval()
    x = torch.rand(4, 1, 32, 32)
    front, end = split(model, layer)
    assert torch.allclose(front(x), capture(model, x, [layer])[layer])
    assert torch.allclose(end(front(x)), model(x), atol=1e-6)


def test_split_refuses_a_layer_inside_a_residual_block():
    model = build_model("resnet20_w1", "digits")
    assert not is_cut_point(model, "layer1.0.conv2")
    with pytest.raises(LayerError, match="not a cut point.*cut points: conv1"):
        split(model, "layer1.0.conv2")


def test_same_init_seed_same_weights_different_seed_different():
    a, b, c = (seeded_model("lenet", "digits", s) for s in (5, 5, 6))
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), k
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_normalisation_is_inside_and_not_in_the_state_dict():
    model = build_model("lenet", "digits")
    assert not any("input_mean" in k for k in model.state_dict())
    assert model.input_mean.flatten().tolist() == pytest.approx(
        list(get_dataset_info("digits").mean)
    )
