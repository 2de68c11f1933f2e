"""Resuming an interrupted workflow run with one command (``make resume``, ``modelkin resume``).

After a crash or ``kill -9``, Snakemake leaves its lock (a plain re-run refuses until
``--unlock``), marks the jobs it was running as incomplete (a plain re-run refuses until
``--rerun-incomplete``), and the killed jobs leave their temporary ``.part`` files. :func:`resume`
does what a user would, but only when it is safe: it unlocks only if no Snakemake process runs in
the working directory, removes only temporary files whose writer has died, and re-runs with
``--rerun-incomplete`` (incomplete outputs are deleted and made again; finished ones are kept).

Linux only (it reads ``/proc``), as the workflow is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError
from .io import PART_SUFFIX, is_stale_part


def _workdir(args: Sequence[str], cwd: Path) -> Path:
    """The working directory a Snakemake command line runs in (``--directory``/``-d``, else its
    current directory)."""
    for i, arg in enumerate(args):
        if arg in ("--directory", "-d") and i + 1 < len(args):
            return (cwd / args[i + 1]).resolve()
        if arg.startswith("--directory="):
            return (cwd / arg.split("=", 1)[1]).resolve()
    return cwd.resolve()


def _is_snakemake(args: Sequence[str]) -> bool:
    """A Snakemake process (``snakemake ...``, ``python -m snakemake``) or one of its jobs (a
    script Snakemake runs from ``.snakemake/scripts/``)."""
    head = [Path(a).name for a in args[:2]]
    if "snakemake" in head:
        return True
    if len(args) > 2 and args[1] == "-m" and args[2] == "snakemake":
        return True
    return any("/.snakemake/scripts/" in a or a.startswith(".snakemake/scripts/") for a in args)


def snakemake_processes(directory: str | Path) -> list[int]:
    """Process ids of the Snakemake runs (and their jobs) working in ``directory``."""
    directory = Path(directory).resolve()
    skip = {os.getpid(), os.getppid()}
    found = []
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            args = [
                a.decode(errors="replace")
                for a in (entry / "cmdline").read_bytes().split(b"\0")
                if a
            ]
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone, or not ours to read
        if args and _is_snakemake(args) and _workdir(args, cwd) == directory:
            found.append(int(entry.name))
    return sorted(found)


def stale_parts(results: str | Path) -> list[Path]:
    """Temporary files under ``results`` whose writer has died."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(p for p in results.rglob(f".*{PART_SUFFIX}") if is_stale_part(p))


def results_dir(directory: Path, configfile: str | Path | None) -> Path:
    """The ``results`` setting of the run's configuration, inside ``directory``."""
    from .config import read_config_file

    path = Path(configfile) if configfile else directory / "config.yaml"
    config = read_config_file(path) if path.exists() else {}
    return directory / str(config.get("results") or "results")


def resume(
    directory: str | Path = ".",
    *,
    snakefile: str | Path,
    configfile: str | Path | None = None,
    cores: int = 1,
    snakemake_args: Sequence[str] = (),
    dry_run: bool = False,
    executable: str | None = None,
) -> int:
    """Finish an interrupted run in ``directory``: unlock a stale lock, remove dead jobs' temporary
    files, re-run incomplete jobs. Returns Snakemake's exit status."""
    directory = Path(directory).resolve()
    owners = snakemake_processes(directory)
    if owners:
        raise InputError(
            f"Snakemake is still running in {directory} (pid {', '.join(map(str, owners))}); "
            "let it finish, or stop it (kill PID) and run this again"
        )
    snakemake = executable or str(Path(sys.executable).with_name("snakemake"))
    base = [snakemake, "-s", str(Path(snakefile).resolve()), "--directory", str(directory)]
    if configfile:
        base += ["--configfile", str(Path(configfile).resolve())]
    locks = directory / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        print(f"resume: no Snakemake runs in {directory}: removing its stale lock", flush=True)
        if not dry_run:
            subprocess.run([*base, "--unlock"], check=True, capture_output=True)
    parts = stale_parts(results_dir(directory, configfile))
    if parts:
        print(
            f"resume: removing {len(parts)} temporary file(s) of killed jobs "
            f"(e.g. {parts[0].relative_to(directory)})",
            flush=True,
        )
        if not dry_run:
            for part in parts:
                part.unlink(missing_ok=True)
    command = [
        *base,
        "--cores",
        str(cores),
        "--rerun-incomplete",
        *(["--dry-run"] if dry_run else []),
        *snakemake_args,
    ]
    return subprocess.call(command)
