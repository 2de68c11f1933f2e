"""Bring the single-node test SLURM cluster (tests/slurm/cluster.sh) up and down from pytest.

Typical use in a conftest.py::

    import pytest
    from slurm_cluster import ensure_cluster, stop_cluster   # tests/ is on sys.path

    @pytest.fixture(scope="session")
    def slurm_cluster():
        reason = ensure_cluster()
        if reason is not None:
            pytest.skip(f"no SLURM cluster: {reason}")
        yield
        stop_cluster()

ensure_cluster() needs root; the first call on a fresh machine installs the Debian packages
(about 20 s), later calls take about 6 s (from down) or 3 s (already up).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "slurm" / "cluster.sh"
STATE_DIR = Path(os.environ.get("MODELKIN_SLURM_DIR", "/tmp/modelkin-slurm"))
_ERROR_PREFIX = "modelkin-slurm: ERROR: "


def _reason_from(proc: subprocess.CompletedProcess[str]) -> str:
    for line in (proc.stderr or "").splitlines() + (proc.stdout or "").splitlines():
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX) :].strip()
    tail = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    return f"cluster.sh up exited {proc.returncode}" + (f": {tail[-1]}" if tail else "")


def ensure_cluster(install: bool = True, timeout: float = 900) -> str | None:
    """Start the cluster unless it is up already.

    Returns None when the cluster is up and has run a test job, otherwise a one-line
    reason it cannot be started (not root, no apt-get, apt-get failed, a daemon died...).
    With install=False the Debian packages are never installed (reason instead).
    `timeout` bounds the whole call, package installation included.
    """
    if not SCRIPT.is_file():
        return f"{SCRIPT} is missing"
    if not shutil.which("bash"):
        return "bash is not available"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"needs root (euid is {os.geteuid()})"
    env = dict(os.environ)
    if not install:
        env["MODELKIN_SLURM_NO_INSTALL"] = "1"
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "up"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"cluster.sh up did not finish within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot run cluster.sh: {exc}"
    if proc.returncode == 0:
        return None
    return _reason_from(proc)


def stop_cluster(purge: bool = False, timeout: float = 180) -> None:
    """Stop the daemons ensure_cluster() started (by pid file); keep the state unless purge."""
    if not SCRIPT.is_file():
        return
    args = ["bash", str(SCRIPT), "down"] + (["--purge"] if purge else [])
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise RuntimeError(f"cluster.sh down failed: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"cluster.sh down failed: {_reason_from(proc)}")


def cluster_env() -> dict[str, str]:
    """os.environ for running snakemake/sbatch against the test cluster (SLURM_CONF set)."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(STATE_DIR / "etc" / "slurm.conf")
    env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/sbin"
    return env
