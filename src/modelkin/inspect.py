"""Human-readable view of any modelkin artifact: HDF5
tree with attributes, or checkpoint metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError, MissingFileError

PROVENANCE_KEYS = (
    "method",
    "modelkin_version",
    "created",
    "checkpoint",
    "checkpoint_sha256",
    "probe",
    "probe_sha256",
)


def _format_attr(value) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except json.JSONDecodeError:
            pass
    if hasattr(value, "tolist"):
        value = value.tolist()
    text = str(value)
    return text if len(text) <= 300 else text[:297] + "..."


def describe_hdf5(path: str | Path) -> Iterator[str]:
    import h5py

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"{path} is not a readable HDF5 file ({err}); "
            "regenerate it with the stage that wrote it"
        ) from err
    with handle:
        yield f"{path}"
        provenance = {k: handle.attrs[k] for k in PROVENANCE_KEYS if k in handle.attrs}
        if provenance:
            yield "provenance:"
            for key, value in provenance.items():
                yield f"  {key}: {_format_attr(value)}"
        yield "tree:"

        def walk(group, indent: str) -> Iterator[str]:
            for key, value in group.attrs.items():
                if group.name == "/" and key in provenance:
                    continue
                yield f"{indent}@{key} = {_format_attr(value)}"
            for name, item in group.items():
                if isinstance(item, h5py.Dataset):
                    yield f"{indent}{name}  dataset {item.shape} {item.dtype}"
                    for key, value in item.attrs.items():
                        yield f"{indent}  @{key} = {_format_attr(value)}"
                else:
                    yield f"{indent}{name}/  group"
                    yield from walk(item, indent + "  ")

        yield from walk(handle, "  ")


def describe(path: str | Path) -> Iterator[str]:
    """Lines describing ``path`` (HDF5 artifact or checkpoint)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from .checkpoint import read_metadata

        meta = read_metadata(path)
        meta.pop("history", None)
        yield f"{path} (checkpoint)"
        for key in sorted(meta):
            value = meta[key]
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            yield f"  {key}: {_format_attr(value)}"
        return
    yield from describe_hdf5(path)
