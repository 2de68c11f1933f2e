"""Bad input, as a new user gives it: one case per problem found, and a new case for every new one.

Each case runs a real command (``modelkin ...`` or ``snakemake -n``) in an empty working directory
and asserts the exit status, that stderr's last line names the problem (no traceback), and that
nothing was written. Cases that need files (checkpoints, probes, signatures, references) take
them from ``kit``, a few tiny models made once.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, TINY_CONFIG

TINY = yaml.safe_load(TINY_CONFIG.read_text())
ESCAPE = "digits/../../../../outside/x"
RECIPE = {"optimizer": "adam", "lr": 0.003, "epochs": 1, "batch_size": 32, "train_limit": 100}
SETTING = "digits:mlp/standard~mlp/standard"


@dataclass
class Case:
    name: str
    argv: Callable[[dict[str, Path]], list[str]]  # from the kit's files
    expect: str  # a regex that stderr's last line must match
    config: Callable[[dict], None] | str | None = None  # a change of the tiny config, or its text
    env: dict[str, str] = field(default_factory=dict)
    status: int = 1


def tiny_with(change: Callable[[dict], None]) -> str:
    config = copy.deepcopy(TINY)
    change(config)
    return yaml.safe_dump(config, sort_keys=False)


def _section(name: str, **values) -> Callable[[dict], None]:
    return lambda c: c.setdefault(name, {}).update(values)


def _stitch_pair(pair: list[str]) -> Callable[[dict], None]:
    return lambda c: c["stitching"]["experiments"]["robust"].update(pairs=[pair])


def modelkin(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelkin.cli", *args]


def snakemake_dry_run() -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", ".", "-n"]


CASES = [
    # -- configuration (the workflow's check, through `modelkin check-config` and `snakemake -n`)
    Case(
        "model id with .. in distances.extra_models",
        lambda k: modelkin("check-config"),
        r"distances.extra_models\[0\]: 'digits/\.\./\.\./\.\./\.\./outside/x' is not a model id",
        _section("distances", extra_models=[ESCAPE]),
    ),
    Case(
        "snakemake -n: model id with .. in distances.extra_models",
        lambda k: snakemake_dry_run(),
        r"^modelkin: invalid configuration \(config.yaml\): distances.extra_models\[0\]: "
        r"'digits/\.\./.*' is not a model id",
        _section("distances", extra_models=[ESCAPE]),
    ),
    Case(
        "snakemake -n: stitching pair with an algorithm the config does not define",
        lambda k: snakemake_dry_run(),
        r"stitching.experiments.robust.pairs\[0\] \(model 1\): digits/lenet/foo/i0-d0 is not a "
        r"zoo model of this configuration; its algorithm 'foo' is not in zoo.algorithms",
        _stitch_pair(["digits/lenet/foo/i0-d0", "digits/lenet/madry/i1-d1"]),
    ),
    Case(
        "lineage method whose distance table is not built",
        lambda k: modelkin("check-config"),
        r"lineage.methods: penultimate_cka not in distances.methods \(zest, gradfield, weights, "
        r"outputs\); add them there",
        _section("lineage", methods=["penultimate_cka"]),
    ),
    Case(
        "similarity pair with a seed outside zoo.seeds",
        lambda k: modelkin("check-config"),
        r"similarity.pairs\[0\] \(b\): digits/lenet/standard/i5-d5 is not a zoo model of this "
        r"configuration; its seeds i5-d5 are not in zoo.seeds \(i0-d0, i1-d1\)",
        _section(
            "similarity", pairs=[["digits/lenet/standard/i0-d0", "digits/lenet/standard/i5-d5"]]
        ),
    ),
    Case(
        "snakemake -n: unknown key",
        lambda k: snakemake_dry_run(),
        r"config key zest.n_imagez: unknown key in zest; allowed keys: split, n_images",
        _section("zest", n_imagez=12),
    ),
    Case(
        "snakemake -n: invalid YAML in config.yaml",
        lambda k: snakemake_dry_run(),
        r"^modelkin: config file config.yaml, line 3, column 1: ",
        "zoo:\n  seeds: [0, 1\n",
    ),
    Case(
        "snakemake -n: results is a file",
        lambda k: snakemake_dry_run(),
        r"results: .*/kit\d*/notes.txt is a file, not a directory; set results to a directory",
        "KIT_RESULTS",
    ),
    Case(
        "too few independent families for on_insufficient_reference: error",
        lambda k: modelkin("check-config"),
        r"the reference of setting digits:lenet/standard~lenet/standard would rest on 4 "
        r"independent families of zoo models, fewer than distances.calibration.min_families \(5\)",
        _section(
            "distances",
            on_insufficient_reference="error",
            calibration={"min_families": 5, "min_partners": 2},
        ),
    ),
    Case(
        "device: cuda where no GPU is visible",
        lambda k: modelkin("check-config"),
        r"device: cuda, but CUDA_VISIBLE_DEVICES='' hides every GPU",
        lambda c: c.update(device="cuda"),
        env={"CUDA_VISIBLE_DEVICES": ""},
    ),
    Case(
        "oversized zest.n_images",
        lambda k: modelkin("check-config"),
        r"zest.n_images: 5,000 images asked of digits's train split, which holds 1,200",
        _section("zest", n_images=5000),
    ),
    Case(
        "layer name the architecture lacks",
        lambda k: modelkin("check-config"),
        r"concordance.layer \(.*\): lenet has no layer 'relu7'; its layers on digits: conv1",
        _section("concordance", layer="relu7"),
    ),
    Case(
        "unlearning.parent the configuration does not plan",
        lambda k: modelkin("check-config"),
        r"unlearning.parent: digits/lenet/standard/i7-d7 is not a zoo model of this "
        r"configuration; its seeds i7-d7 are not in zoo.seeds",
        _section("unlearning", parent="digits/lenet/standard/i7-d7"),
    ),
    Case(
        "snakemake -n: unlearning.forget_class outside the data set's classes",
        lambda k: snakemake_dry_run(),
        r"unlearning.forget_class: class 10 does not exist in digits; choose one of 0..9$",
        _section("unlearning", forget_class=10),
    ),
    Case(
        "unknown unlearning method",
        lambda k: modelkin("check-config"),
        r"config key unlearning.methods.1: 'forget' is not one of .*\(allowed: relabel, ascent, "
        r"retrain\)$",
        _section("unlearning", methods=["relabel", "forget"]),
    ),
    Case(
        "a key given twice",
        lambda k: modelkin("check-config"),
        r"config file config.yaml, line 3, column 1: the key 'zest' is given twice",
        "zest:\n  n_images: 4\nzest:\n  n_samples: 20\n",
    ),
    Case(
        "invalid YAML to modelkin modeldiff --config",
        lambda k: modelkin("modeldiff", "--config", "config.yaml", "--dry-run"),
        r"^modelkin modeldiff: error: config file .*config.yaml, line 3, column 1: ",
        "zoo:\n  seeds: [0, 1\n",
    ),
    # -- command line
    Case(
        "train_limit: 0",
        lambda k: modelkin(
            "train",
            "--data",
            str(k["data"]),
            "--arch",
            "mlp",
            "--recipe",
            '{"train_limit": 0}',
            "-o",
            "m.safetensors",
        ),
        r"^modelkin train: error: --recipe train_limit: 0 is less than the minimum of 1$",
    ),
    Case(
        "--recipe that is not JSON",
        lambda k: modelkin(
            "train",
            "--data",
            str(k["data"]),
            "--arch",
            "mlp",
            "--recipe",
            "{epochs: 3}",
            "-o",
            "m.safetensors",
        ),
        r"--recipe is not valid JSON",
    ),
    Case(
        "probe of 0 images",
        lambda k: modelkin(
            "probe",
            "--method",
            "zest",
            "--data",
            str(k["data"]),
            "--set",
            "n_images=0",
            "-o",
            "p.h5",
        ),
        r"n_images must be between 1 and the 1,200 images of the train split of .*, got 0$",
    ),
    Case(
        "gradfield signature of a checkpoint with a NaN bias",
        lambda k: modelkin(
            "signature",
            str(k["nan_model"]),
            "--method",
            "gradfield",
            "--probe",
            "auto",
            "--data",
            str(k["data"]),
            "--set",
            "n_steps=4",
            "--device",
            "cpu",
            "-o",
            "s.h5",
        ),
        r"gives non-finite outputs on the probe .*check the checkpoint's weights",
    ),
    Case(
        "zest signature of a checkpoint with a NaN bias",
        lambda k: modelkin(
            "signature",
            str(k["nan_model"]),
            "--method",
            "zest",
            "--probe",
            str(k["probe"]),
            "--device",
            "cpu",
            "-o",
            "s.h5",
        ),
        r"gives non-finite outputs on the probe",
    ),
    Case(
        "distance of a NaN signature",
        lambda k: modelkin("distance", str(k["nan_signature"]), str(k["signature_b"])),
        r"nan\.h5 holds \d+ non-finite values; delete it and",
    ),
    Case(
        "distance of a signature without its model attribute",
        lambda k: modelkin("distance", str(k["no_model"]), str(k["signature_b"])),
        r"no_model\.h5 lacks the attribute\(s\) model ",
    ),
    Case(
        "distance against a reference with too few independent families",
        lambda k: modelkin(
            "distance",
            str(k["signature_a"]),
            str(k["signature_b"]),
            "--reference",
            str(k["weak_reference"]),
        ),
        r"rests on 2 independent families of models, fewer than the 5 .*"
        r"--allow-insufficient-reference to see the distances without a verdict$",
    ),
    Case(
        "compare against a reference with too few independent families",
        lambda k: modelkin(
            "compare",
            str(k["model_a"]),
            str(k["model_b"]),
            "--probe",
            str(k["probe"]),
            "--reference",
            str(k["weak_reference"]),
            "--device",
            "cpu",
            "--keep",
            "kept",
        ),
        r"rests on 2 independent families of models, fewer than the 5 that calibrated verdicts "
        r"need; train more independent seeds",
    ),
    Case(
        "lineage of one checkpoint",
        lambda k: modelkin(
            "lineage", str(k["model_a"]), "--reference", str(k["weak_reference"]), "-o", "out"
        ),
        r"^modelkin lineage: error: lineage needs at least 2 checkpoints, got 1; ",
    ),
    Case(
        "lineage of a file that is not a checkpoint",
        lambda k: modelkin(
            "lineage", str(k["model_a"]), str(k["notes"]), "--reference", str(k["weak_reference"])
        ),
        r"^modelkin lineage: error: .*notes.txt is not a readable safetensors checkpoint",
    ),
    Case(
        "lineage against a file that is not a reference",
        lambda k: modelkin(
            "lineage", str(k["model_a"]), str(k["model_b"]), "--reference", str(k["notes"])
        ),
        r"^modelkin lineage: error: .*notes.txt is not a reference JSON",
    ),
    Case(
        "lineage against a reference with too few independent families",
        lambda k: modelkin(
            "lineage",
            str(k["model_a"]),
            str(k["model_b"]),
            "--reference",
            str(k["weak_reference"]),
            "--device",
            "cpu",
            "-o",
            "out",
        ),
        r"rests on 2 independent families of models, fewer than the 5 .*"
        r"--allow-insufficient-reference to see the distances without a verdict$",
    ),
    Case(
        "info of a file that is not a checkpoint",
        lambda k: modelkin("info", str(k["notes"])),
        r"^modelkin info: error: .*notes.txt",
    ),
    Case(
        "inspect of a truncated HDF5 file",
        lambda k: modelkin("inspect", str(k["truncated"])),
        r"^modelkin inspect: error: .*truncated\.h5",
    ),
    Case(
        "eval-stitch of a result that does not exist",
        lambda k: modelkin("eval-stitch", "run.json", "after"),
        r"stitching result run.json does not exist; make it with `modelkin stitch`",
    ),
]


@pytest.fixture(scope="module")
def kit(digits_file, tmp_path_factory) -> dict[str, Path]:
    """Two tiny MLPs, one with a NaN bias; a Zest probe and signatures (good, NaN, without its
    model attribute); a reference marked insufficient; a text file and a truncated HDF5 file."""
    import h5py
    import numpy as np
    import torch

    from modelkin.checkpoint import load_checkpoint, save_checkpoint
    from modelkin.distances import InsufficientReferenceWarning, make_probe, make_signature
    from modelkin.distances.tables import distance_stage
    from modelkin.train import train_checkpoint

    root = tmp_path_factory.mktemp("kit")
    files: dict[str, Path] = {"data": Path(digits_file)}
    for tag, seed in (("a", 0), ("b", 1)):
        files[f"model_{tag}"] = train_checkpoint(
            root / f"mlp{seed}.safetensors",
            prepared=digits_file,
            arch="mlp",
            algorithm="standard",
            recipe=RECIPE,
            init_seed=seed,
            data_seed=seed,
        )
    ckpt = load_checkpoint(files["model_a"])
    with torch.no_grad():
        biases = [p for n, p in ckpt.model.named_parameters() if n.endswith("bias")]
        biases[-1][3] = float("nan")
    files["nan_model"] = save_checkpoint(root / "nan.safetensors", ckpt.model, ckpt.meta)
    files["probe"] = make_probe("zest", digits_file, root / "probe.h5", n_images=2, n_samples=20)
    for tag in ("a", "b"):
        files[f"signature_{tag}"] = make_signature(
            "zest", files[f"model_{tag}"], files["probe"], root / f"{tag}.h5", device="cpu"
        )
    files["nan_signature"] = shutil.copy(files["signature_a"], root / "nan.h5")
    with h5py.File(files["nan_signature"], "a") as handle:
        data = handle["signature"][()]
        data[0, 0] = np.nan
        handle["signature"][...] = data
    files["no_model"] = shutil.copy(files["signature_a"], root / "no_model.h5")
    with h5py.File(files["no_model"], "a") as handle:
        del handle.attrs["model"]
    # The distance stage's own reference of two models: 2 families, fewer than calibration needs
    files["weak_reference"] = root / "zest_reference.json"
    with pytest.warns(InsufficientReferenceWarning):
        distance_stage(
            "zest",
            ["digits/mlp/standard/i0-d0", "digits/mlp/standard/i1-d1"],
            [files["signature_a"], files["signature_b"]],
            root / "zest.csv",
            files["weak_reference"],
        )
    files["notes"] = root / "notes.txt"
    files["notes"].write_text("not a checkpoint\n")
    files["truncated"] = root / "truncated.h5"
    files["truncated"].write_bytes(files["signature_a"].read_bytes()[:300])
    return files


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None):
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=environment
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    if case.config == "KIT_RESULTS":
        text = tiny_with(lambda c: c.update(results=str(kit["notes"])))
    elif isinstance(case.config, str):
        text = case.config
    else:
        text = tiny_with(case.config or (lambda c: None))
    (work / "config.yaml").write_text(text)
    before, kit_before = _tree(work), _tree(kit["notes"].parent)
    proc = _run(case.argv(kit), work, case.env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines and re.search(case.expect, lines[-1]), proc.stderr[-3000:]
    # Nothing written: the working directory as it was (no output, no .snakemake, no results/),
    # the kit's files untouched, nothing outside.
    assert _tree(work) == before
    assert _tree(kit["notes"].parent) == kit_before
    assert not (tmp_path.parent / "outside").exists()


def test_output_piped_into_head_ends_quietly(kit, tmp_path):
    command = f"{shlex_join(modelkin('info', str(kit['model_a'])))} | head -n 1"
    proc = _run(["bash", "-c", command], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == "{\n"
    assert proc.stderr == ""


def shlex_join(argv: list[str]) -> str:
    import shlex

    return shlex.join(argv)


def test_a_reference_with_too_few_families_gives_no_verdict_when_allowed(kit, tmp_path):
    proc = _run(
        modelkin(
            "distance",
            str(kit["signature_a"]),
            str(kit["signature_b"]),
            "--reference",
            str(kit["weak_reference"]),
            "--allow-insufficient-reference",
            "--json",
        ),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING the reference of setting digits:mlp/standard~mlp/standard" in proc.stderr
    cos = json.loads(proc.stdout)["verdicts"]["cos"]
    assert cos["verdict"] == "not enough independent models" and cos["reference_families"] == 2
