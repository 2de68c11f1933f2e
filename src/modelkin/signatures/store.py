"""HDF5 files for behavioural signatures and for the probes they are computed on.

A *probe* is the fixed input material every model of a comparison must see
(Zest's images, superpixels and masks; ModelGiF's reference points). Its
sha256 is recorded in every signature computed on it, so two signatures are
only ever compared when they saw the same probe.

A *signature* file holds one dataset ``signature`` plus attributes that say
which method and parameters made it, which checkpoint (path and sha256, and its
model metadata) and which probe (path, sha256, parameters) it came from.

Probe files are byte-for-byte reproducible (no timestamps), so regenerating the
same probe anywhere gives the same hash; signature files record when they were
made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io import atomic_path, file_sha256

SIGNATURE_KIND = "modelkin-signature"
PROBE_KIND_PREFIX = "modelkin-probe"
SIGNATURE_DATASET = "signature"
# Model metadata copied from the checkpoint into each signature (whatever of these the checkpoint has).
MODEL_META_KEYS = (
    "name",
    "arch",
    "dataset",
    "num_classes",
    "algorithm",
    "init_seed",
    "data_seed",
    "parent",
)
# Axes that may differ in length between comparable signatures (models with different class sets).
CLASS_AXIS = "class"


class SignatureError(ValueError):
    """A signature or probe file that is missing pieces, unreadable or not written by modelkin."""


class SignatureMismatch(ValueError):
    """Two signatures that must not be compared (different method, parameters, probe or shape)."""


@dataclass
class Signature:
    """A signature read back from its file."""

    data: np.ndarray
    method: str
    params: dict[str, Any]
    axes: tuple[str, ...]
    attrs: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def probe_sha256(self) -> str:
        return self.attrs["probe_sha256"]

    @property
    def model(self) -> dict[str, Any]:
        """The checkpoint's model metadata (name, arch, dataset, algorithm, seeds, parent)."""
        return self.attrs["model"]

    @property
    def name(self) -> str:
        return self.model.get("name") or Path(self.attrs["checkpoint"]).stem


@dataclass
class Probe:
    """A probe file read back: its arrays, its kind (``zest``, ``gradfield``), parameters and hash."""

    kind: str
    arrays: dict[str, np.ndarray]
    params: dict[str, Any]
    attrs: dict[str, Any]
    path: Path
    sha256: str


# ---------------------------------------------------------------------------------------------
# Attribute encoding: scalars and strings as plain HDF5 attributes (readable with h5dump),
# dicts and lists as JSON strings.


def _encode_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) and not (
        isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)
    ):
        return json.dumps(_jsonable(value), sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return "null"
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


JSON_ATTRS = ("params", "model", "probe_params", "models", "checkpoint_sha256s")


def _read_attrs(handle) -> dict[str, Any]:
    attrs = {key: _decode_attr(val) for key, val in handle.attrs.items()}
    for key, val in attrs.items():
        if isinstance(val, str) and (key in JSON_ATTRS or val[:1] in "{[" or val == "null"):
            try:
                attrs[key] = json.loads(val)
            except json.JSONDecodeError:
                pass
    return attrs


def _open_modelkin_file(path: Path, what: str, how_to_make: str):
    import h5py

    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {how_to_make}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SignatureError(
            f"{path} is not a readable HDF5 {what} ({err}); it is probably truncated or corrupt: delete it and "
            f"{how_to_make}"
        ) from err


def _rebuild_hint(path: Path) -> str:
    return f"build it with `snakemake --cores 2 {path}` in the workflow directory (or the matching modelkin command)"


# ---------------------------------------------------------------------------------------------
# Signatures


def model_summary(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in MODEL_META_KEYS if k in meta and meta[k] is not None}


def write_signature(
    path: str | Path,
    data: np.ndarray,
    *,
    method: str,
    params: dict[str, Any],
    axes: Sequence[str],
    checkpoint: str | Path,
    probe: str | Path,
    extra_attrs: dict[str, Any] | None = None,
    extra_datasets: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``data`` and its provenance atomically to ``path`` (HDF5); returns ``path``.

    ``checkpoint`` and ``probe`` must exist: their sha256 and metadata go into the file.
    ``extra_datasets`` are stored beside ``signature`` (e.g. the target class of each point).
    """
    import h5py

    from ..checkpoint import read_metadata

    path, checkpoint, probe = Path(path), Path(checkpoint), Path(probe)
    data = np.asarray(data)
    axes = tuple(axes)
    if data.ndim != len(axes):
        raise ValueError(
            f"signature has {data.ndim} dimensions {data.shape} but {len(axes)} axis names {axes}"
        )
    if not np.isfinite(data).all():
        raise ValueError(
            f"signature for {checkpoint} contains {int((~np.isfinite(data)).sum())} non-finite values; "
            "the model produces NaN/inf on the probe (check the checkpoint)"
        )
    meta = read_metadata(checkpoint)
    probe_info = read_probe(probe, load_arrays=False)
    attrs: dict[str, Any] = {
        "modelkin_kind": SIGNATURE_KIND,
        "method": method,
        "params": params,
        "axes": list(axes),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "model": model_summary(meta),
        "probe": str(probe),
        "probe_sha256": probe_info.sha256,
        "probe_kind": probe_info.kind,
        "probe_params": probe_info.params,
        "modelkin_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    clash = set(attrs) & set(extra_attrs or {})
    if clash:
        raise ValueError(f"extra_attrs may not override {sorted(clash)}")
    attrs.update(extra_attrs or {})
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset(SIGNATURE_DATASET, data=data, **_storage_options(data))
            for name, array in (extra_datasets or {}).items():
                if name == SIGNATURE_DATASET:
                    raise ValueError(f"extra dataset may not be called {SIGNATURE_DATASET!r}")
                handle.create_dataset(name, data=np.asarray(array))
            for key, value in attrs.items():
                handle.attrs[key] = _encode_attr(value)
    return path


def _storage_options(data: np.ndarray) -> dict[str, Any]:
    # Large fields compress by ~10-20% with shuffle+gzip; small arrays are not worth a filter.
    if data.nbytes < 1 << 20:
        return {}
    return {"compression": "gzip", "compression_opts": 1, "shuffle": True, "chunks": True}


def read_signature(path: str | Path) -> Signature:
    """Read a signature written by :func:`write_signature`, with a clear error for anything else."""
    path = Path(path)
    with _open_modelkin_file(path, "signature file", _rebuild_hint(path)) as handle:
        attrs = _read_attrs(handle)
        if attrs.get("modelkin_kind") != SIGNATURE_KIND or SIGNATURE_DATASET not in handle:
            raise SignatureError(
                f"{path} is an HDF5 file but not a modelkin signature (no '{SIGNATURE_DATASET}' dataset or "
                f"modelkin_kind attribute); {_rebuild_hint(path)}"
            )
        missing = [
            k
            for k in ("method", "params", "axes", "checkpoint_sha256", "probe_sha256")
            if k not in attrs
        ]
        if missing:
            raise SignatureError(
                f"{path} lacks the attributes {missing}; delete it and {_rebuild_hint(path)}"
            )
        try:
            data = handle[SIGNATURE_DATASET][()]
            extras = {name: handle[name][()] for name in handle if name != SIGNATURE_DATASET}
        except OSError as err:
            raise SignatureError(
                f"{path} is damaged ({err}); delete it and {_rebuild_hint(path)}"
            ) from err
    return Signature(
        data=data,
        method=attrs["method"],
        params=attrs["params"],
        axes=tuple(attrs["axes"]),
        attrs=attrs,
        extras=extras,
        path=path,
    )


def check_comparable(a: Signature, b: Signature) -> None:
    """Raise :class:`SignatureMismatch` unless ``a`` and ``b`` may be compared.

    They must come from the same method with the same parameters on the same
    probe (by hash), with the same axes and shapes; only a ``class`` axis may
    differ in length (models with different numbers of classes).
    """
    names = f"{a.path or a.name} and {b.path or b.name}"
    if a.method != b.method:
        raise SignatureMismatch(f"{names} come from different methods ({a.method} vs {b.method})")
    if a.params != b.params:
        keys = sorted(
            k for k in set(a.params) | set(b.params) if a.params.get(k) != b.params.get(k)
        )
        diffs = ", ".join(f"{k}: {a.params.get(k)!r} vs {b.params.get(k)!r}" for k in keys)
        raise SignatureMismatch(
            f"{names} were made with different {a.method} parameters ({diffs}); recompute one"
        )
    if a.probe_sha256 != b.probe_sha256:
        raise SignatureMismatch(
            f"{names} were computed on different probes ({a.attrs.get('probe')} sha256 {a.probe_sha256[:12]} vs "
            f"{b.attrs.get('probe')} sha256 {b.probe_sha256[:12]}); recompute both on the same probe file"
        )
    if a.axes != b.axes:
        raise SignatureMismatch(f"{names} have different axes ({a.axes} vs {b.axes})")
    fixed = [i for i, axis in enumerate(a.axes) if axis != CLASS_AXIS]
    if [a.data.shape[i] for i in fixed] != [b.data.shape[i] for i in fixed]:
        raise SignatureMismatch(
            f"{names} have incompatible shapes {a.data.shape} and {b.data.shape} (axes {a.axes})"
        )


# ---------------------------------------------------------------------------------------------
# Probes


def write_probe(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    kind: str,
    params: dict[str, Any],
    extra_attrs: dict[str, Any] | None = None,
) -> Path:
    """Write a probe atomically: one dataset per array, ``kind`` and ``params`` as attributes (no timestamps)."""
    import h5py

    path = Path(path)
    attrs = {
        "modelkin_kind": f"{PROBE_KIND_PREFIX}-{kind}",
        "params": params,
        "modelkin_version": __version__,
    }
    attrs.update(extra_attrs or {})
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for name, array in arrays.items():
                array = np.asarray(array)
                options = (
                    {"compression": "gzip", "compression_opts": 4, "shuffle": True}
                    if array.nbytes > 4096
                    else {}
                )
                handle.create_dataset(name, data=array, **options)
            for key, value in attrs.items():
                handle.attrs[key] = _encode_attr(value)
    return path


def read_probe(path: str | Path, kind: str | None = None, *, load_arrays: bool = True) -> Probe:
    """Read a probe file; with ``kind`` given, refuse a probe of another kind."""
    path = Path(path)
    hint = f"build it with `snakemake --cores 2 {path}` in the workflow directory"
    with _open_modelkin_file(path, "probe file", hint) as handle:
        attrs = _read_attrs(handle)
        stored = str(attrs.get("modelkin_kind", ""))
        if not stored.startswith(PROBE_KIND_PREFIX + "-"):
            raise SignatureError(f"{path} is an HDF5 file but not a modelkin probe; {hint}")
        found = stored.removeprefix(PROBE_KIND_PREFIX + "-")
        if kind is not None and found != kind:
            raise SignatureError(f"{path} is a {found} probe, but a {kind} probe is needed here")
        arrays = {name: handle[name][()] for name in handle} if load_arrays else {}
    return Probe(found, arrays, attrs.get("params", {}), attrs, path, file_sha256(path))


def describe(path: str | Path) -> str:
    """A readable listing of an HDF5 file made here (datasets with shapes, then attributes), like ``h5ls -rv``."""
    import h5py

    lines = []
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, obj: (
                lines.append(f"/{name}  {obj.shape} {obj.dtype}") if hasattr(obj, "shape") else None
            )
        )
        for key, value in handle.attrs.items():
            text = str(_decode_attr(value))
            lines.append(f"@{key} = {text if len(text) < 120 else text[:117] + '...'}")
    return "\n".join(lines)
