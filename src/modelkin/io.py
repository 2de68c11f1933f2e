"""Artifact I/O shared by every stage: atomic writes, content hashes, JSON, safetensors.

Every file modelkin writes has a deterministic layout, so that identical runs give identical
bytes (and hashes): JSON with sorted keys, safetensors headers with sorted keys
(:func:`save_safetensors`), HDF5 without timestamps and with sorted attributes
(:mod:`modelkin.hdf5`), CSV from ordered rows, PNG without a creation date.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError, MissingFileError

PART_SUFFIX = ".part"
# A temporary file's name: .{name}.pid{pid}@{host}.{random}.part (its writer, to tell stale ones).
_PART = re.compile(r"pid(?P<pid>\d+)@(?P<host>[^/]*)\.[^.]*\.part")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash (or Ctrl-C, or a SLURM time-out) leaves no half-written artifact that Snakemake or a
    user could mistake for a finished one. A process killed outright (kill -9) cannot remove its
    temporary file; the next successful write of ``path`` removes such stale ones
    (:func:`remove_stale_parts`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.pid{os.getpid()}@{socket.gethostname()}.",
        suffix=PART_SUFFIX,
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
        remove_stale_parts(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def part_files(path: Path) -> list[Path]:
    """The temporary files of writes of ``path`` (finished or not)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{PART_SUFFIX}"))


def is_stale_part(part: Path, host: str | None = None) -> bool:
    """Whether no live writer owns temporary file ``part``: its process on this host has ended
    (or it was named by an older modelkin, without its writer). Parts written on other hosts
    (a cluster's nodes) count as stale after a day."""
    found = _PART.search(part.name)
    if found is None:
        return True
    if found["host"] != (host or socket.gethostname()):
        try:
            return time.time() - part.stat().st_mtime > 86400
        except FileNotFoundError:
            return False
    return not _pid_alive(int(found["pid"]))


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files left beside ``path`` by writers that died (kill -9)."""
    removed = []
    for part in part_files(Path(path)):
        if is_stale_part(part):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
                removed.append(part)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_safetensors(
    tensors: dict[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (torch tensors) to a safetensors file, atomically and byte-reproducibly.

    The safetensors library writes its header's metadata from a hash map, in an order that changes
    from one process to the next; here the header is rewritten with sorted keys (the tensor data
    and their offsets are unchanged), so the same tensors and metadata give the same bytes.
    """
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data start stays 8-byte aligned, as safetensors pads it
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(len(text).to_bytes(8, "little"))
            handle.write(text)
            handle.write(memoryview(raw)[8 + size :])
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(
            f"{path} is not valid JSON ({err}); delete it and re-run the stage that writes it"
        ) from err


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: everything else is a bug worth raising on.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
