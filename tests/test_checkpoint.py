import json

import pytest
import torch

from modelkin.checkpoint import (
    CheckpointError,
    import_state_dict,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from modelkin.models import build_model, seeded_model


def test_round_trip_rebuilds_the_model(tmp_path):
    model = seeded_model("resnet20_w1", "digits", 3).eval()
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        model,
        {"arch": "resnet20_w1", "dataset": "digits", "num_classes": 10},
    )
    ckpt = load_checkpoint(path)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(ckpt.model(x), model(x))
    assert ckpt.meta["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert len(ckpt.sha256) == 64 and not ckpt.model.training


def test_weights_that_do_not_match_the_metadata_fail_clearly(tmp_path):
    model = build_model("lenet", "digits")
    path = save_checkpoint(
        tmp_path / "m.safetensors", model, {"arch": "mlp", "dataset": "digits", "num_classes": 10}
    )
    with pytest.raises(
        CheckpointError,
        match=r"arch=mlp.*do not match the architecture: .*unexpected tensors.*shape mismatches",
    ):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="import-checkpoint"):
        read_metadata(bad)
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.safetensors")


def test_import_a_torchvision_style_state_dict_without_unpickling(tmp_path):
    model = seeded_model("tiny10", "cifar10", 1).eval()
    plain = tmp_path / "tiny10.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, plain)
    ckpt = import_state_dict(plain, "tiny10", "cifar10")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(ckpt.model(x), model(x))
    assert ckpt.meta["algorithm"] == "imported"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        import_state_dict(evil, "tiny10", "cifar10")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        import_state_dict(plain, "tiny10", "cifar100")


def test_cli_import_and_info(tmp_path, capsys):
    from modelkin.cli import main

    model = seeded_model("mlp", "digits", 0)
    torch.save(model.state_dict(), tmp_path / "mlp.pth")
    out = tmp_path / "mlp.safetensors"
    assert (
        main(
            [
                "import-checkpoint",
                str(tmp_path / "mlp.pth"),
                "--arch",
                "mlp",
                "--dataset",
                "digits",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "mlp"
    assert main(["info", str(tmp_path / "nope.safetensors")]) == 1
