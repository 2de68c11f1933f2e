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
from modelkin.datasets import DATASETS
from modelkin.models import Normalisation, build_model, normalisation_of, seeded_model
from modelkin.models.normalisation import NormalisationError


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


# ---------------------------------------------------------------------------------------------
# A model's own input normalisation


def test_checkpoint_records_the_models_normalisation_and_loads_with_it(tmp_path):
    custom = Normalisation.of([0.5], [0.25])
    model = seeded_model("lenet", "digits", 0, normalisation=custom).eval()
    path = save_checkpoint(
        tmp_path / "m.safetensors", model, {"arch": "lenet", "dataset": "digits", "num_classes": 10}
    )
    assert read_metadata(path)["normalisation"] == {"mean": [0.5], "std": [0.25]}
    ckpt = load_checkpoint(path)
    assert normalisation_of(ckpt.model) == custom
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(ckpt.model(x), model(x))
    # saved again, the record is the same (a round trip changes nothing)
    again = save_checkpoint(tmp_path / "again.safetensors", ckpt.model, ckpt.meta)
    assert read_metadata(again)["normalisation"] == read_metadata(path)["normalisation"]
    # a zoo model records its data set's statistics, as the shortest decimals
    zoo = save_checkpoint(
        tmp_path / "zoo.safetensors",
        seeded_model("lenet", "digits", 0),
        {"arch": "lenet", "dataset": "digits", "num_classes": 10},
    )
    assert read_metadata(zoo)["normalisation"] == {
        "mean": list(DATASETS["digits"].mean),
        "std": list(DATASETS["digits"].std),
    }


def test_checkpoints_written_before_normalisation_was_recorded_use_the_data_sets(tmp_path):
    from safetensors.torch import save_file

    model = seeded_model("lenet", "digits", 0).eval()
    legacy = tmp_path / "legacy.safetensors"
    meta = {"arch": "lenet", "dataset": "digits", "num_classes": 10}
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(legacy),
        metadata={"modelkin": json.dumps(meta)},
    )
    ckpt = load_checkpoint(legacy)
    assert normalisation_of(ckpt.model) == Normalisation.of_dataset(DATASETS["digits"])
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(ckpt.model(x), model(x))


def test_import_without_normalisation_gives_the_raw_modules_logits(tmp_path, capsys):
    from modelkin.cli import main

    raw = seeded_model("lenet", "digits", 4).eval()  # raw.body: the network without normalisation
    torch.save(raw.state_dict(), tmp_path / "raw.pth")
    out = tmp_path / "raw.safetensors"
    args = [
        "import-checkpoint",
        str(tmp_path / "raw.pth"),
        "--arch",
        "lenet",
        "--dataset",
        "digits",
    ]
    assert main([*args, "--no-normalisation", "-o", str(out)]) == 0
    assert read_metadata(out)["normalisation"] == "none"
    x = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(out).model(x), raw.body(x), atol=0, rtol=0)

    given = tmp_path / "given.safetensors"
    assert main([*args, "--mean", "0.5", "--std", "0.2", "-o", str(given)]) == 0
    with torch.no_grad():
        expected = raw.body((x - 0.5) / 0.2)
        assert torch.allclose(load_checkpoint(given).model(x), expected, atol=1e-6)
    assert read_metadata(given)["normalisation"] == {"mean": [0.5], "std": [0.2]}

    default = tmp_path / "default.safetensors"
    assert main([*args, "-o", str(default)]) == 0
    with torch.no_grad():
        assert torch.equal(load_checkpoint(default).model(x), raw(x))
    capsys.readouterr()
    assert main([*args, "--mean", "0.5", "-o", str(tmp_path / "x.safetensors")]) == 1
    assert "--mean and --std together" in capsys.readouterr().err
    assert main([*args, "--mean", "0.1", "0.2", "0.3", "--std", "1", "-o", str(out)]) == 1
    assert "3 values but the model takes 1-channel images" in capsys.readouterr().err


def test_normalisation_values_are_checked():
    with pytest.raises(NormalisationError, match="positive"):
        Normalisation.of([0.5], [0.0])
    with pytest.raises(NormalisationError, match="'none' or"):
        Normalisation.from_meta({"mean": [0.1]})
    assert Normalisation.from_meta(Normalisation.none().to_meta()).is_none
