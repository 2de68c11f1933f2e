"""The signature stage through Snakemake, on the tiny workflow (tests/config/tiny.yaml builds every
zoo model's Zest and ModelGiF signatures)."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import TINY_CONFIG, run_snakemake
from modelkin.catalog import reference_models, selection_models
from modelkin.checkpoint import load_checkpoint
from modelkin.config import validate_config, zoo_seeds
from modelkin.derive.plan import planned_derivations
from modelkin.io import file_sha256
from modelkin.signatures import check_comparable, read_signature
from modelkin.signatures.gradfield.probe import load_gradfield_probe
from modelkin.signatures.zest.extract import ZestExtractor, load_zest_probe

pytestmark = pytest.mark.workflow

SIGNATURE_RULES = {"probe", "candidate_probe", "candidate_signature", "selected_probe", "signature"}


def tiny_config() -> dict:
    return validate_config(yaml.safe_load(TINY_CONFIG.read_text()))


def zoo_ids(config, algorithms=None) -> list[str]:
    zoo = config["zoo"]
    return [
        f"{d}/{a}/{alg}/i{i}-d{s}"
        for d in zoo["datasets"]
        for a in zoo["architectures"]
        for alg in algorithms or zoo["algorithms"]
        for i, s in zoo_seeds(config)
    ]


def signature_jobs(workdir: Path) -> dict[str, int]:
    """This stage's rules -> number of jobs Snakemake would run now."""
    out = run_snakemake(workdir, "-n", "--cores", "2").stdout
    if "Nothing to be done" in out:
        return {}
    jobs = {}
    for line in out.split("Job stats:", 1)[1].splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) in SIGNATURE_RULES:
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def test_zest_probe_and_signatures(tiny_workflow):
    config = tiny_config()
    results = tiny_workflow / "results"
    probe_path = results / "probes" / "zest" / "digits.h5"
    probe = load_zest_probe(probe_path)
    settings = config["zest"]
    assert probe.images.shape == (settings["n_images"], 1, 32, 32)
    assert probe.masks.shape[:2] == (settings["n_images"], settings["n_samples"])
    assert probe.params["segmentation"]["kernel_size"] == settings["kernel_size"]
    assert probe.num_segments.min() >= 4

    signatures = [
        read_signature(results / "signatures" / "zest" / f"{m}.h5") for m in zoo_ids(config)
    ]
    for model, sig in zip(zoo_ids(config), signatures, strict=True):
        assert sig.data.shape == (probe.total_segments, 10)
        assert sig.probe_sha256 == file_sha256(probe_path)
        assert sig.name == model
        log = (results / "logs" / "signature" / "zest" / f"{model}.log").read_text()
        assert log.count(f"zest signature of {model}") == 1
    for a, b in itertools.combinations(signatures, 2):
        check_comparable(a, b)
        assert not np.allclose(a.data, b.data)  # different models, different signatures

    # The stored signature is what the library computes now: the stage is deterministic.
    first = signatures[0]
    model = load_checkpoint(
        tiny_workflow / first.attrs["checkpoint"]
    ).model  # paths are relative to the workdir
    np.testing.assert_allclose(
        ZestExtractor(device="cpu").signature(model, probe), first.data, rtol=1e-5, atol=1e-6
    )


def test_gradfield_probe_selection_and_signatures(tiny_workflow):
    config = tiny_config()
    settings = config["gradfield"]
    results = tiny_workflow / "results"
    candidates_path = results / "probes" / "gradfield" / "digits.candidates.h5"
    selected_path = results / "probes" / "gradfield" / "digits.h5"
    candidates = load_gradfield_probe(candidates_path)
    selected = load_gradfield_probe(selected_path)
    k = settings["reference_points"]
    assert (
        len(candidates.points) == settings["candidates"]["n_points"] and len(selected.points) == k
    )
    assert set(selected.indices) <= set(candidates.indices)
    assert np.all(np.diff(selected.selection_score) <= 0)  # rank order, best first
    info = selected.params["selection"]
    assert info["candidate_probe_sha256"] == file_sha256(candidates_path) and info["k"] == k
    # dedicated selection seeds: never a model the distance tables compare
    assert info["models"] == [str(m) for m in selection_models(config)]
    assert not set(info["models"]) & set(zoo_ids(config))
    # Candidate signatures are temporary: only the selection needs them.
    assert not list((results / "probes" / "gradfield").glob("candidates/**/*.h5"))

    signatures = []
    for model in zoo_ids(config):
        sig = read_signature(results / "signatures" / "gradfield" / f"{model}.h5")
        assert sig.data.shape == (k, settings["n_steps"], 32 * 32)
        assert sig.probe_sha256 == file_sha256(selected_path)
        net = load_checkpoint(tiny_workflow / sig.attrs["checkpoint"]).model
        with torch.no_grad():
            predicted = net(torch.from_numpy(selected.points)).argmax(1).numpy()
        np.testing.assert_array_equal(sig.extras["targets"], predicted)
        signatures.append(sig)
    for a, b in itertools.combinations(signatures, 2):
        check_comparable(a, b)


def test_changing_zest_samples_reruns_only_zest(tiny_workflow, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_workflow, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["zest"]["n_samples"] += 1
    config["zest"]["chunk_size"] += 1
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # every signed model: the zoo's, the derived models and the distance stage's reference models
    planned = tiny_config()
    models = (
        len(zoo_ids(planned)) + len(planned_derivations(planned)) + len(reference_models(planned))
    )
    assert signature_jobs(workdir) == {"probe": 1, "signature": models}

    config["zest"]["n_samples"] -= 1
    config["zest"]["chunk_size"] -= 1
    config["gradfield"]["reference_points"] -= 1
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # The deleted (temporary) candidate signatures come back only because the selection must rerun.
    assert signature_jobs(workdir) == {
        "candidate_signature": len(selection_models(planned)),
        "selected_probe": 1,
        "signature": models,
    }
