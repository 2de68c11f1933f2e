"""Recovery without ceremony: stale temporary files go with the next successful write, and
`modelkin resume` (`make resume`) unlocks only a lock no Snakemake owns, then re-runs incomplete
jobs."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelkin.errors import InputError
from modelkin.io import atomic_path, is_stale_part, write_json
from modelkin.recovery import resume, snakemake_processes, stale_parts

HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_successful_write_removes_stale_temporary_files(tmp_path):
    target = tmp_path / "sig.h5"
    dead = tmp_path / f".sig.h5.pid{_dead_pid()}@{HOST}.abcd1234.part"  # a killed writer's
    old = tmp_path / ".sig.h5.x7y8z9.part"  # named by an older modelkin
    live = tmp_path / f".sig.h5.pid{os.getpid()}@{HOST}.live0000.part"  # a writer still at work
    other = tmp_path / ".other.h5.x7y8z9.part"  # another file's
    for part in (dead, old, live, other):
        part.write_bytes(b"x" * 96)
    write_json(target, {"a": 1})
    assert target.exists()
    assert not dead.exists() and not old.exists()
    assert live.exists() and other.exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_parts_of_other_hosts_are_stale_after_a_day(tmp_path):
    part = tmp_path / ".x.h5.pid1@elsewhere.abc.part"
    part.write_text("x")
    assert not is_stale_part(part)
    day_ago = time.time() - 2 * 86400
    os.utime(part, (day_ago, day_ago))
    assert is_stale_part(part)


def _fake_snakemake(tmp_path: Path) -> tuple[Path, Path]:
    """A `snakemake` that records its arguments instead of running."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "snakemake"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake, calls


def test_resume_unlocks_cleans_and_reruns_incomplete_jobs(tmp_path):
    work = tmp_path / "work"
    (work / ".snakemake" / "locks").mkdir(parents=True)
    (work / ".snakemake" / "locks" / "0.output.lock").write_text("results/x\n")
    (work / "config.yaml").write_text("results: out\n")
    part = work / "out" / "signatures" / f".a.h5.pid{_dead_pid()}@{HOST}.k1ll3d00.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 96)
    assert stale_parts(work / "out") == [part]
    fake, calls = _fake_snakemake(tmp_path)
    status = resume(work, snakefile=tmp_path / "Snakefile", cores=3, executable=str(fake))
    assert status == 0
    unlock, run = calls.read_text().splitlines()
    assert unlock.endswith("--unlock")
    assert run.endswith("--cores 3 --rerun-incomplete")
    assert f"--directory {work}" in run
    assert not part.exists()


def test_resume_refuses_while_snakemake_runs_there(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # A process whose command line is snakemake's, working in `work`.
    proc = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 60"], cwd=work)
    try:
        for _ in range(50):
            if snakemake_processes(work):
                break
            time.sleep(0.1)
        assert snakemake_processes(work) == [proc.pid]
        assert snakemake_processes(tmp_path) == []
        fake, calls = _fake_snakemake(tmp_path)
        with pytest.raises(InputError, match=rf"Snakemake is still running in {work} \(pid "):
            resume(work, snakefile=tmp_path / "Snakefile", executable=str(fake))
        assert not calls.exists()
    finally:
        proc.kill()
        proc.wait()
