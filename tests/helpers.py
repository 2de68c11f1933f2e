"""What several test modules share: the repository, the tiny config, running Snakemake on it,
synthetic families of unrelated models."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: int = 1500,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` (whose config.yaml is the config); ``env``:
    further environment variables."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed "
            f"({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def make_workdir(root: Path, config: Path = TINY_CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, root / "config.yaml")
    return root


def synthetic_families(rng, n_families: int, copies: int, effect_sd: float, copy_sd: float):
    """Families of models for synthetic null tables: family ``f`` is model ``m{f}`` with effect
    a_f ~ N(0, effect_sd) and ``copies`` near-copies ``m{f}.d{k}`` (a parent's derived models)
    whose effects differ by N(0, copy_sd). Returns ``members`` (name: (family index, effect))
    and ``families`` (name: family name)."""
    effects = rng.normal(0, effect_sd, n_families)
    members = {}
    for f in range(n_families):
        members[f"m{f}"] = (f, effects[f])
        for k in range(copies):
            members[f"m{f}.d{k}"] = (f, effects[f] + rng.normal(0, copy_sd))
    families = {m: f"m{f}" for m, (f, _) in members.items()}
    return members, families
