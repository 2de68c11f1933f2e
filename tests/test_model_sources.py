"""Networks from torchvision, timm and users' code imported as modelkin checkpoints.

The known answer throughout: the wrapped model's output on a [0, 1] batch ``x`` is the original
network's on ``(resize(x) * range - mean) / std``, before and after a checkpoint round trip.
"""

import json
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import fx, nn

from modelkin.checkpoint import (
    import_external,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from modelkin.cli import main
from modelkin.datasets import DATASETS
from modelkin.errors import InputError
from modelkin.models import Normalisation, normalisation_of
from modelkin.models.external import ExternalModel, build_external
from modelkin.models.preprocessing import Preprocessing, PreprocessingError, parse_value_range
from modelkin.models.sources import SourceError, canonical_source, parse_source

IMAGENET = Normalisation.of([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
VIT = "torchvision.models.vision_transformer:VisionTransformer"
VIT_KWARGS = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2}
VIT_KWARGS |= {"hidden_dim": 32, "mlp_dim": 64}


def expected(net, x, pre: Preprocessing):
    """The original network on the batch as its own pipeline would have prepared it."""
    if pre.input_size is not None and tuple(x.shape[-2:]) != pre.input_size:
        x = F.interpolate(x, size=pre.input_size, mode="bilinear", antialias=False)
    mean = torch.tensor(pre.normalisation.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(pre.normalisation.std).reshape(1, -1, 1, 1)
    with torch.no_grad():
        return net.eval()((x * pre.scale - mean) / std)


def randomise_batch_norm(net: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that loading them is checked too."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net.eval()


def round_trip(tmp_path, net, source, pre, kwargs=None, dataset="cifar10", suffix=".pt"):
    """Save ``net``'s weights, import them, write and load the checkpoint."""
    weights = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    else:
        torch.save(net.state_dict(), weights)
    ckpt = import_external(source, weights, 10, pre, kwargs, dataset=dataset)
    path = save_checkpoint(tmp_path / "model.safetensors", ckpt.model, ckpt.meta)
    return ckpt, load_checkpoint(path), path


def test_torchvision_resnet18_round_trip(tmp_path):
    torch.manual_seed(0)
    net = randomise_batch_norm(torchvision.models.resnet18(num_classes=10))
    pre = Preprocessing(input_size=(32, 32), channels=3, normalisation=IMAGENET)
    ckpt, loaded, path = round_trip(tmp_path, net, "torchvision:resnet18", pre)
    x = torch.rand(4, 3, 32, 32)
    want = expected(net, x, pre)
    with torch.no_grad():
        assert torch.allclose(ckpt.model(x), want, atol=1e-6, rtol=0)
        assert torch.equal(loaded.model(x), ckpt.model(x))
    model = loaded.model
    assert isinstance(model, ExternalModel) and not model.training
    assert model.layer_root == "net" and model.in_shape == (3, 32, 32) and model.num_classes == 10
    assert model.input_mean.shape == (1, 3, 1, 1) and model.input_std.shape == (1, 3, 1, 1)
    assert normalisation_of(model) == IMAGENET
    meta = read_metadata(path)
    assert meta["arch"] == "torchvision:resnet18" and meta["dataset"] == "cifar10"
    assert meta["num_classes"] == 10 and meta["source_kwargs"] == {}
    assert meta["preprocessing"] == pre.to_meta()
    assert meta["normalisation"] == IMAGENET.to_meta() and meta["data_shape"] == [3, 32, 32]
    assert set(loaded.model.state_dict()) == {f"net.{k}" for k in net.state_dict()}


def test_torchvision_mobilenet_via_the_command_line_in_the_0_255_range(tmp_path, capsys):
    torch.manual_seed(1)
    net = randomise_batch_norm(torchvision.models.mobilenet_v3_small(num_classes=10))
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "m.pth"
    )
    out = tmp_path / "mobilenet.safetensors"
    args = [
        "import-checkpoint",
        str(tmp_path / "m.pth"),
        "--arch",
        "torchvision:mobilenet_v3_small",
    ]
    args += ["--dataset", "cifar10", "--input-size", "64", "64", "--value-range", "0-255"]
    args += ["--mean", "123.675", "116.28", "103.53", "--std", "58.395", "57.12", "57.375"]
    assert main([*args, "--class-names", *"abcdefghij", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["arch"] == "torchvision:mobilenet_v3_small" and meta["class_names"] == list(
        "abcdefghij"
    )
    assert meta["preprocessing"]["value_range"] == [0, 255]
    assert meta["preprocessing"]["input_size"] == [64, 64]
    pre = Preprocessing.from_meta(meta["preprocessing"])
    x = torch.rand(3, 3, 32, 32)  # cifar10's size, resized to the model's 64x64
    with torch.no_grad():
        got = load_checkpoint(out).model(x)
    assert torch.allclose(got, expected(net, x, pre), atol=1e-4, rtol=1e-4)


def test_a_vision_transformer_from_a_factory_bound_to_a_users_data_set(tmp_path, capsys):
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(2)
    net = VisionTransformer(**VIT_KWARGS, num_classes=10).eval()
    pre = Preprocessing(input_size=(32, 32), channels=3, normalisation=Normalisation.none())
    ckpt, loaded, path = round_trip(
        tmp_path, net, VIT, pre, VIT_KWARGS, dataset="my_shapes", suffix=".safetensors"
    )
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), expected(net, x, pre), atol=1e-5, rtol=0)
    meta = read_metadata(path)
    assert meta["arch"] == f"factory:{VIT}" and meta["source_kwargs"] == VIT_KWARGS
    assert meta["dataset"] == "my_shapes" and meta["data_shape"] is None
    with pytest.raises(InputError, match=r"cannot run a 3x64x64 input \(Wrong image height"):
        build_external(VIT, 10, Preprocessing(input_size=(64, 64)), VIT_KWARGS)
    # the same through the command line, with the factory: prefix spelled out
    out = tmp_path / "vit.safetensors"
    args = ["import-checkpoint", str(tmp_path / "weights.safetensors"), "--arch", f"factory:{VIT}"]
    args += ["--dataset", "my_shapes", "--num-classes", "10", "--input-size", "32", "32"]
    args += ["--kwargs", json.dumps(VIT_KWARGS), "--no-normalisation", "-o", str(out)]
    assert main(args) == 0
    with torch.no_grad():
        assert torch.equal(load_checkpoint(out).model(x), loaded.model(x))


def test_a_timm_model(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    net = randomise_batch_norm(timm.create_model("resnet10t", pretrained=False, num_classes=10))
    pre = Preprocessing(input_size=None, channels=3, normalisation=IMAGENET)  # as given: 32x32
    ckpt, loaded, path = round_trip(tmp_path, net, "timm:resnet10t", pre)
    assert loaded.model.in_shape == (3, 32, 32)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), expected(net, x, pre), atol=1e-5, rtol=0)
    assert read_metadata(path)["arch"] == "timm:resnet10t"


def test_without_timm_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(SourceError, match=r"pip install 'modelkin\[timm\]'"):
        build_external("timm:resnet10t", 10, Preprocessing(input_size=(32, 32)))


def test_images_are_resized_to_the_models_input_size():
    torch.manual_seed(4)
    pre = Preprocessing(input_size=(32, 32), normalisation=IMAGENET)
    model = build_external("torchvision:resnet18", 10, pre)
    model.net = randomise_batch_norm(model.net)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), expected(model.net, x, pre), atol=1e-6, rtol=0)
        # the same image given at the model's size already is not resized again
        big = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=False)
        assert torch.equal(model(big), model(x))
    with pytest.raises(InputError, match="3-channel images"):
        model(torch.rand(2, 1, 32, 32))


def test_the_wrapper_traces_with_its_networks_module_names():
    model = build_external("torchvision:resnet18", 10, Preprocessing(input_size=(32, 32)))
    targets = [n.target for n in fx.symbolic_trace(model).graph.nodes if n.op == "call_module"]
    assert targets[:2] == ["net.conv1", "net.bn1"] and "net.layer3.1.conv2" in targets


# ---------------------------------------------------------------------------------------------
# Bad input: one clear message each, and nothing written


def cli_error(tmp_path, capsys, weights, *options):
    out = tmp_path / "out.safetensors"
    capsys.readouterr()
    assert main(["import-checkpoint", str(weights), *options, "-o", str(out)]) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.safetensors*"))
    return capsys.readouterr().err


@pytest.fixture
def resnet_weights(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    return path


def test_a_factory_that_does_not_import(tmp_path, capsys, resnet_weights):
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "no_such_package.models:make",
        "--dataset",
        "cifar10",
        "--no-normalisation",
    )
    assert "factory module 'no_such_package.models' does not import" in err
    for bad, says in [
        ("torchvision.models:no_such_thing", "has no attribute 'no_such_thing'"),
        ("torchvision.models:__name__", "not callable"),
        ("math:floor", "failed"),
        ("torchvision.models:list_models", "returned a list, not a torch.nn.Module"),
    ]:
        with pytest.raises(SourceError, match=says):
            build_external(bad, 10, Preprocessing(input_size=(32, 32)))


def test_a_torchvision_name_that_does_not_exist(tmp_path, capsys, resnet_weights):
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "torchvision:resnet1888",
        "--dataset",
        "cifar10",
        "--no-normalisation",
    )
    assert "unknown torchvision model 'resnet1888'" in err and "resnet18" in err
    assert len(err.strip().splitlines()) == 1


def test_weights_of_another_architecture(tmp_path, capsys, resnet_weights):
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "torchvision:mobilenet_v3_small",
        "--dataset",
        "cifar10",
        "--no-normalisation",
    )
    assert str(resnet_weights) in err and "torchvision:mobilenet_v3_small" in err
    assert "do not match the architecture" in err and "missing" in err


def test_preprocessing_channels_that_differ_from_the_first_layer(tmp_path, capsys, resnet_weights):
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "torchvision:resnet18",
        "--dataset",
        "grey",
        "--num-classes",
        "10",
        "--channels",
        "1",
        "--input-size",
        "32",
        "32",
        "--no-normalisation",
    )
    assert "preprocessing says 1 channels but the model's first layer takes 3" in err
    # a data set modelkin knows must have the preprocessing's channels
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "torchvision:resnet18",
        "--dataset",
        "digits",
        "--channels",
        "3",
        "--no-normalisation",
    )
    assert "'digits' has 1-channel images but the preprocessing says 3" in err


def test_a_pickled_object_is_refused(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, evil)
    err = cli_error(
        tmp_path,
        capsys,
        evil,
        "--arch",
        "torchvision:resnet18",
        "--dataset",
        "cifar10",
        "--no-normalisation",
    )
    assert "weights_only=True" in err and "pwned" not in capsys.readouterr().out


def test_other_command_line_mistakes(tmp_path, capsys, resnet_weights):
    base = ["--arch", "torchvision:resnet18", "--dataset", "cifar10"]
    assert "--mean and --std" in cli_error(tmp_path, capsys, resnet_weights, *base)
    err = cli_error(tmp_path, capsys, resnet_weights, *base, "--no-normalisation", "--kwargs", "{")
    assert "--kwargs is not valid JSON" in err
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        *base,
        "--no-normalisation",
        "--kwargs",
        '{"weights": "DEFAULT"}',
    )
    assert "never downloads weights" in err
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        *base,
        "--no-normalisation",
        "--kwargs",
        '{"num_classes": 5}',
    )
    assert "num_classes=5" in err
    err = cli_error(
        tmp_path, capsys, resnet_weights, *base, "--no-normalisation", "--class-names", "a", "b"
    )
    assert "2 class names given for a model with 10 classes" in err
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "tiny10",
        "--dataset",
        "cifar10",
        "--input-size",
        "32",
        "32",
    )
    assert "--input-size only apply to a model source" in err
    err = cli_error(
        tmp_path,
        capsys,
        resnet_weights,
        "--arch",
        "torchvision:resnet18",
        "--dataset",
        "mine",
        "--no-normalisation",
    )
    assert "give --num-classes" in err


# ---------------------------------------------------------------------------------------------
# Preprocessing and source strings


def test_preprocessing_round_trips_through_its_metadata():
    for pre in [
        Preprocessing(),
        Preprocessing(input_size=(224, 224), value_range=(0, 255), normalisation=IMAGENET),
        Preprocessing(
            input_size=[28, 30], channels=1, normalisation=Normalisation.of([0.5], [0.5])
        ),
    ]:
        meta = json.loads(json.dumps(pre.to_meta()))
        assert Preprocessing.from_meta(meta) == pre
    assert parse_value_range("0-255") == (0.0, 255.0)
    for bad, says in [
        ({"channels": 0}, "at least 1"),
        ({"input_size": (32,)}, "two positive whole numbers"),
        ({"value_range": (0, 2)}, "value range must be one of 0-1, 0-255"),
        ({"channels": 1, "normalisation": IMAGENET}, "3 values but the model takes 1-channel"),
    ]:
        with pytest.raises(PreprocessingError, match=says):
            Preprocessing(**bad)
    with pytest.raises(PreprocessingError, match="exactly the keys"):
        Preprocessing.from_meta({"channels": 3})
    with pytest.raises(PreprocessingError, match="input size is unknown"):
        Preprocessing().in_shape(None)


def test_source_strings():
    assert canonical_source("pkg.mod:make") == "factory:pkg.mod:make"
    assert canonical_source("factory:pkg.mod:make") == "factory:pkg.mod:make"
    assert canonical_source("torchvision:resnet18") == "torchvision:resnet18"
    assert parse_source("timm:resnet10t")[1] == "resnet10t"
    with pytest.raises(SourceError, match="zoo architecture"):
        parse_source("resnet18")
    with pytest.raises(SourceError, match="one colon"):
        parse_source("factory:pkg.mod")


def test_zoo_weights_still_import_by_architecture_name(tmp_path):
    from modelkin.checkpoint import import_state_dict
    from modelkin.models import seeded_model

    model = seeded_model("mlp", "digits", 0).eval()
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    ckpt = import_state_dict(tmp_path / "mlp.pt", "mlp", "digits")
    path = save_checkpoint(tmp_path / "mlp.safetensors", ckpt.model, ckpt.meta)
    x = torch.rand(2, *DATASETS["digits"].shape)
    assert torch.equal(load_checkpoint(path).model(x), model(x))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_external(
            "torchvision:resnet18", tmp_path / "nope.pt", 10, Preprocessing(), dataset="cifar10"
        )


def test_a_resizing_model_fits_probes_of_its_data_sets_size():
    from types import SimpleNamespace

    from modelkin.signatures.compute import check_model_fits_probe
    from modelkin.signatures.store import SignatureError

    pre = Preprocessing(input_size=(64, 64), channels=1)
    model = build_external("torchvision:resnet18", 10, pre, image_size=(32, 32), check=False)
    assert model.in_shape == (1, 64, 64) and model.data_shape == (1, 32, 32)
    check_model_fits_probe(model, SimpleNamespace(input_shape=(1, 32, 32), path="p.h5"), "m")
    with pytest.raises(SignatureError, match=r"takes inputs of shape \(1, 32, 32\)"):
        check_model_fits_probe(model, SimpleNamespace(input_shape=(1, 28, 28), path="p.h5"), "m")
