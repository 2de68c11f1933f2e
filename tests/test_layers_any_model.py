"""Layers of any model: torchvision models and a wrapper with ``layer_root`` (CPU, 32 px)."""

import copy
import json
import logging

import pytest
import torch
from torch import nn
from torchvision.models import get_model
from torchvision.models.vision_transformer import VisionTransformer

from modelkin.checkpoint import save_checkpoint
from modelkin.cli import main
from modelkin.models import build_model, seeded_model
from modelkin.models.layers import (
    LayerError,
    activation,
    capture,
    end_plan,
    input_shape,
    layer_module,
    layer_names,
    layer_table,
    replaced,
    split,
    traceable,
)
from modelkin.stitching.model import StitchedModel, StitchingLayer, stitch_geometry

SHAPE = (3, 32, 32)
MLP = "encoder.layers.encoder_layer_1.mlp"


class Wrapper(nn.Module):
    """A stand-in for an external model: resizes (only when needed) and normalises, then calls
    ``net``. The shape test is control flow on a traced value, so torch.fx cannot trace it."""

    layer_root = "net"

    def __init__(self, net: nn.Module, in_shape=SHAPE):
        super().__init__()
        self.net = net
        self.in_shape = tuple(in_shape)
        self.register_buffer("input_mean", torch.full((in_shape[0], 1, 1), 0.5))
        self.register_buffer("input_std", torch.full((in_shape[0], 1, 1), 0.25))

    def forward(self, x):
        if x.shape[-2:] != self.in_shape[1:]:
            x = nn.functional.interpolate(x, size=self.in_shape[1:], mode="bilinear")
        return self.net((x - self.input_mean) / self.input_std)


def _torchvision(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = get_model(name, weights=None, num_classes=10).eval()
    model.in_shape = SHAPE
    return model


@pytest.fixture(scope="module")
def resnet18():
    return _torchvision("resnet18")


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    net = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=10,
    )  # fmt: skip
    return Wrapper(net).eval()


def test_names_are_module_paths_with_containers(resnet18, vit):
    names = layer_names(resnet18)
    assert {"layer3.1.conv2", "layer2.1", "layer2", "fc"} <= set(names)
    assert "layer1.0.relu" not in names  # called twice per block: no single activation
    assert names.index("layer2.1") < names.index("layer2.1.conv1")  # call order
    vit_names = layer_names(vit)
    assert MLP in vit_names and "encoder.layers.encoder_layer_1" in vit_names
    assert not any(n.startswith("net") for n in vit_names)
    # A module returning a tuple (attention output and weights) is not a layer.
    assert "encoder.layers.encoder_layer_1.self_attention" not in vit_names
    assert layer_module(vit, MLP) is vit.net.encoder.layers.encoder_layer_1.mlp


def test_zoo_models_keep_their_leaf_names():
    names = layer_names(build_model("resnet20_w1", "digits"))
    assert "layer1.0" not in names and "layer1" not in names and "layer1.0.add" in names


def test_capture_shapes_and_known_answer(resnet18, vit):
    x = torch.rand(3, *SHAPE)
    table = {r.name: r for r in layer_table(resnet18)}
    assert table["layer2.1"].shape == (128, 4, 4) and table["layer2.1"].kind == "BasicBlock"
    assert table["layer3.1.conv2"].shape == (256, 2, 2)
    assert table["layer2.1"].cut_point and not table["layer3.1.conv2"].cut_point
    mobilenet = _torchvision("mobilenet_v3_small")
    cases = [
        (resnet18, ["layer2.1", "layer3.1.conv2"]),
        (vit, [MLP, "encoder.layers.encoder_layer_0"]),
        (mobilenet, ["features.3", "features.3.block.1"]),
    ]
    for model, layers in cases:
        acts = capture(model, x, layers)
        shapes = {r.name: r.shape for r in layer_table(model)}
        for layer in layers:
            assert tuple(acts[layer].shape) == (3, *shapes[layer])
            module, inputs = layer_module(model, layer), []
            handle = module.register_forward_pre_hook(
                lambda _m, args, store=inputs: store.append(args[0])
            )
            try:
                model(x)
            finally:
                handle.remove()
            with torch.no_grad():
                torch.testing.assert_close(acts[layer], module(inputs[0]))
        torch.testing.assert_close(acts["logits"], model(x))


@pytest.mark.parametrize(
    "arch,layer", [("resnet20_w1", "layer2.1.relu2"), ("vgg11", "pool2"), ("lenet", "relu3")]
)
def test_hook_front_equals_fx_front_and_replacement_end_equals_fx_end(arch, layer):
    model = seeded_model(arch, "digits", 0).eval()
    x = torch.rand(4, 1, 32, 32)
    front, end = split(model, layer)
    with torch.no_grad():
        torch.testing.assert_close(activation(model, layer, x), front(x))
        t = torch.randn_like(front(x))  # not the genuine activation: the end must use it alone
        with replaced(model, layer, lambda _out: t):
            torch.testing.assert_close(model(x), end(t))


def test_fx_split_at_a_container(resnet18):
    x = torch.rand(2, *SHAPE)
    front, end = split(resnet18, "layer3")
    with torch.no_grad():
        torch.testing.assert_close(front(x), activation(resnet18, "layer3", x))
        t = torch.randn_like(front(x))
        with replaced(resnet18, "layer3", lambda _out: t):
            torch.testing.assert_close(resnet18(x), end(t))


def _identity_stitch(model: nn.Module, layer: str, *, flatten: bool = False) -> StitchedModel:
    shape = tuple(r.shape for r in layer_table(model) if r.name == layer)[0]
    stitch = StitchingLayer(stitch_geometry(shape, shape, flatten=flatten))
    n = stitch.in_features
    stitch.set_affine(torch.eye(n), torch.zeros(n))
    return StitchedModel(model, layer, copy.deepcopy(model), layer, stitch)


def test_identity_stitching_fx_end(resnet18, caplog):
    with caplog.at_level(logging.INFO, logger="modelkin.stitching.model"):
        stitched = _identity_stitch(resnet18, "layer2.1")
    assert stitched.end_is_split and stitched.end_plan.mode == "split"
    assert "end of model 2 (ResNet) at layer2.1: torch.fx split" in caplog.text
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(stitched(x), resnet18(x), atol=1e-5, rtol=1e-5)


def test_identity_stitching_whole_model_replacement(vit, caplog):
    assert not traceable(vit)[0]
    plan = end_plan(vit, MLP)
    assert not plan.split and plan.reason.startswith("torch.fx cannot trace Wrapper: ")
    with caplog.at_level(logging.INFO, logger="modelkin.stitching.model"):
        stitched = _identity_stitch(vit, MLP, flatten=True)
    assert not stitched.end_is_split and stitched.end_plan.mode == "hooks"
    assert f"at {MLP}: whole-model replacement, because torch.fx cannot trace Wrapper" in (
        caplog.text
    )
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(stitched(x), vit(x), atol=1e-5, rtol=1e-5)
    # The same network, traceable: the mlp is not a cut point (the block's residual bypasses it).
    bare = vit.net
    bare.in_shape = SHAPE
    assert end_plan(bare, MLP).reason.endswith("is not a cut point of VisionTransformer "
                                               "(a skip connection bypasses it)")  # fmt: skip


def test_unknown_layer_lists_a_few_names_and_where_to_see_all(resnet18, vit):
    with pytest.raises(LayerError) as err:
        capture(resnet18, torch.rand(1, *SHAPE), ["layer3.1.conv9"])
    message = str(err.value)
    assert "valid layers: layer3.1.conv" in message  # close matches first
    assert "in all; `modelkin layers MODEL` lists them" in message
    assert message.count(",") < 20
    with pytest.raises(LayerError, match="has no layer 'net.conv_proj'"):
        layer_module(vit, "net.conv_proj")


def test_input_shape_and_layer_root_errors():
    net = get_model("resnet18", weights=None, num_classes=10)
    with pytest.raises(LayerError, match="--input-shape 3 224 224"):
        input_shape(net)
    assert "layer2.1" in layer_names(net, (3, 32, 32))
    wrapper = Wrapper(net)
    wrapper.layer_root = "body"
    with pytest.raises(LayerError, match="layer_root is 'body'.*no such submodule"):
        layer_names(wrapper)


def test_layers_command(tmp_path, capsys):
    model = seeded_model("lenet", "digits", 0)
    path = save_checkpoint(
        tmp_path / "lenet.safetensors",
        model,
        {"arch": "lenet", "dataset": "digits", "num_classes": 10},
    )
    assert main(["layers", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {
        "name": "conv1",
        "type": "Conv2d",
        "shape": [6, 28, 28],
        "cut_point": True,
        "stitching_end": "torch.fx split: layer conv1 is a cut point of LeNet",
    }
    assert main(["layers", str(path), "--input-shape", "1", "32", "32", "--cut-points"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["layer", "type", "shape", "cut", "point", "stitching", "end"]
    assert lines[1].split() == ["conv1", "Conv2d", "(6,", "28,", "28)", "yes", "fx", "split"]
    # LeNet's linear layers fix its input size: a wrong shape says what to change.
    assert main(["layers", str(path), "--input-shape", "1", "28", "28"]) == 1
    assert "check the input shape (--input-shape C H W)" in capsys.readouterr().err


def test_capture_is_not_changed_by_a_later_in_place_module():
    """torchvision's resnet18 applies ReLU(inplace=True) to bn1's output: the captured bn1 keeps
    its negative values (it is a copy, not the tensor the ReLU overwrote)."""
    torch.manual_seed(0)
    net = _torchvision("resnet18").eval()
    x = torch.rand(2, *SHAPE)
    captured = capture(net, x, ["bn1"])["bn1"]
    with torch.no_grad():
        expected = net.bn1(net.conv1(x))
    assert (captured < 0).any()
    torch.testing.assert_close(captured, expected)
