"""HDF5 files for behavioural signatures and for the probes they are computed on.

A *probe* is the fixed input material every model of a comparison must see (Zest's images,
superpixels and masks; ModelGiF's reference points). Its sha256 is recorded in every signature
computed on it, so two signatures are only ever compared when they saw the same probe.

A *signature* file holds one dataset ``signature`` (plus the method's extra arrays) and
attributes that say which method and parameters made it, which checkpoint (path, sha256 and the
model's whole lineage record, :class:`~modelkin.lineage.Lineage`) and which probe (path, sha256,
parameters) it came from. Later stages read the lineage from here and never reopen checkpoints.

Both kinds of file are byte-reproducible (:mod:`modelkin.hdf5`): the same inputs give the same
bytes and hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..hdf5 import (
    StoredArray,
    StoreError,
    create_dataset,
    create_empty_dataset,
    create_store,
    open_store,
    read_attrs,
    write_attrs,
)
from ..io import atomic_path, file_sha256
from ..lineage import Lineage

if TYPE_CHECKING:
    from ..checkpoint import Checkpoint
    from .base import Computed, SignatureMethod

SIGNATURE_KIND = "modelkin-signature"
PROBE_KIND_PREFIX = "modelkin-probe"
SIGNATURE_DATASET = "signature"
NO_PROBE = "none"  # the probe fields of a method that reads no probe (weights)


class SignatureError(StoreError):
    """A signature or probe file that is missing pieces, unreadable or not written by modelkin."""


class SignatureMismatch(SignatureError):
    """Two signatures that must not be compared (different method, parameters, probe or shape)."""


@dataclass
class Signature:
    """A signature read back from its file (``data`` a :class:`~modelkin.hdf5.StoredArray`, read
    slice by slice, when read with ``lazy=True``)."""

    data: np.ndarray | StoredArray
    method: str
    params: dict[str, Any]
    axes: tuple[str, ...]
    attrs: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def probe_sha256(self) -> str:
        return str(self.attrs["probe_sha256"])

    @property
    def lineage(self) -> Lineage:
        """The model's lineage record, with the checkpoint's sha256."""
        return Lineage.from_metadata(self.attrs["model"], sha256=self.attrs["checkpoint_sha256"])

    @property
    def name(self) -> str:
        return str(self.attrs["model"].get("name") or Path(self.attrs["checkpoint"]).stem)

    @property
    def probe_dataset(self) -> str | None:
        """The data set of the probe's images (None: a method that reads no probe)."""
        dataset = (self.attrs.get("probe_params") or {}).get("dataset")
        return str(dataset) if dataset else None

    @property
    def probe_columns(self) -> list[int] | None:
        """For a model on another data set's probe: the probe data set's class of each of the
        model's output columns, matched by name (-1: a class the probe's data set lacks); None
        for a model on its own data set's probe (:func:`probe_class_columns`)."""
        columns = self.attrs.get("probe_columns")
        return None if columns is None else [int(c) for c in columns]

    @property
    def probe_classes(self) -> tuple[int, ...] | None:
        """For a model on another data set's probe: the probe data set's classes it predicts
        (None: all of them); for one on its own probe, its own class subset (``classes``)."""
        if "probe_columns" not in self.attrs:
            return self.lineage.classes
        classes = self.attrs.get("probe_classes")
        return None if classes is None else tuple(int(c) for c in classes)


@dataclass
class Probe:
    """A probe file read back: its arrays, its kind (``zest``, ``gradfield``), parameters, hash."""

    kind: str
    arrays: dict[str, np.ndarray]
    params: dict[str, Any]
    attrs: dict[str, Any]
    path: Path
    sha256: str

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        shape = self.params.get("input_shape")
        return tuple(shape) if shape else None


def _rebuild_hint(path: Path) -> str:
    return (
        f"build it with `snakemake --cores 2 {path}` in the workflow directory "
        "(or the matching modelkin command)"
    )


# ---------------------------------------------------------------------------------------------
# Signatures


def write_signature(
    path: str | Path,
    computed: Computed,
    *,
    method: SignatureMethod,
    checkpoint: Checkpoint,
    probe: Probe | None,
    name: str | None = None,
) -> Path:
    """Write a computed signature and its provenance atomically to ``path`` (HDF5).

    ``checkpoint`` (a loaded :class:`~modelkin.checkpoint.Checkpoint`, hashed once on loading)
    and ``probe`` (a :class:`Probe`, None for a method that reads none) are recorded by hash;
    ``name`` is the model's id (default: the checkpoint's name).
    """
    path = Path(path)
    with atomic_path(path) as tmp, create_store(tmp) as handle:
        _write_contents(handle, computed, method, checkpoint, probe, name)
    return path


class SignatureOut:
    """Where a streaming method (``SignatureMethod.streams_to_disk``) writes its signature while
    computing it: ``out(shape, dtype, chunks)`` creates the signature dataset of the file being
    written and returns it to be filled block by block."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.dataset: Any = None

    def __call__(self, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...] | None = None):
        if self.dataset is not None:
            raise SignatureError("a signature file holds one signature dataset")
        self.dataset = create_empty_dataset(
            self.handle, SIGNATURE_DATASET, tuple(shape), dtype, chunks=chunks
        )
        return self.dataset

    def finish(
        self,
        computed: Computed,
        *,
        method: SignatureMethod,
        checkpoint: Checkpoint,
        probe: Probe | None,
        name: str | None = None,
    ) -> None:
        """Write the extras and the provenance of the streamed signature."""
        if self.dataset is None or computed.data is not self.dataset:
            raise SignatureError(f"the {method.name} method did not stream into its output")
        _write_contents(self.handle, computed, method, checkpoint, probe, name)


@contextmanager
def streamed_signature(path: str | Path) -> Iterator[SignatureOut]:
    """A signature file written while it is computed (atomically: it appears when complete)."""
    with atomic_path(Path(path)) as tmp, create_store(tmp) as handle:
        yield SignatureOut(handle)


def _write_contents(
    handle: Any,
    computed: Computed,
    method: SignatureMethod,
    checkpoint: Checkpoint,
    probe: Probe | None,
    name: str | None,
) -> None:
    import h5py

    data = computed.data
    streamed = isinstance(data, h5py.Dataset)  # already the dataset of this file (SignatureOut)
    if not streamed:
        data = np.asarray(data)
    if len(data.shape) != len(method.axes):
        raise SignatureError(
            f"a {method.name} signature has axes {method.axes}, but the computed array has shape "
            f"{tuple(data.shape)}"
        )
    lineage = Lineage.from_metadata(checkpoint.meta, name=name, sha256=checkpoint.sha256)
    attrs: dict[str, Any] = {
        "modelkin_kind": SIGNATURE_KIND,
        "method": method.name,
        "params": computed.params,
        "axes": list(method.axes),
        "checkpoint": str(checkpoint.path),
        "checkpoint_sha256": checkpoint.sha256,
        "model": lineage.to_dict(),
        "probe": str(probe.path) if probe else "",
        "probe_sha256": probe.sha256 if probe else NO_PROBE,
        "probe_kind": probe.kind if probe else NO_PROBE,
        "probe_params": probe.params if probe else {},
        "modelkin_version": __version__,
    }
    probe_dataset = probe.params.get("dataset") if probe else None
    if probe_dataset and lineage.dataset and probe_dataset != lineage.dataset:
        columns, classes = probe_class_columns(lineage, str(probe_dataset))
        attrs["probe_columns"] = columns
        attrs["probe_classes"] = classes
    if not streamed:
        chunks = method.storage_chunks(tuple(data.shape), data.dtype.itemsize)
        create_dataset(handle, SIGNATURE_DATASET, data, chunks=chunks)
    for extra, array in computed.extras.items():
        if extra == SIGNATURE_DATASET:
            raise SignatureError(f"an extra array may not be called {SIGNATURE_DATASET!r}")
        create_dataset(handle, extra, array, compress=False)
    write_attrs(handle, attrs)


def probe_class_columns(lineage: Lineage, probe_dataset: str) -> tuple[list[int], list[int] | None]:
    """A model of another data set on ``probe_dataset``'s probe: the probe data set's class of
    each output column (matched by class name, -1 where it has none), and the probe's classes
    that the model predicts (its class subset less a forgotten class; None: every class). A data
    set not registered in this process has no known class names: none of its classes matches.

    Zest compares such a pair on the shared classes' images, and the ``outputs`` baseline only
    where each column is the probe's class of the same index."""
    from ..datasets import DATASETS

    own_info, target = DATASETS.get(lineage.dataset), DATASETS.get(probe_dataset)
    own = own_info.class_names if own_info is not None else ()
    index = {name: i for i, name in enumerate(target.class_names if target is not None else ())}
    num_classes = target.num_classes if target is not None else -1
    own_classes = (
        list(lineage.classes) if lineage.classes else list(range(int(lineage.num_classes)))
    )
    columns = [index.get(own[c], -1) if c < len(own) else -1 for c in own_classes]
    predicted = [
        column
        for column, c in zip(columns, own_classes, strict=True)
        if column >= 0 and c != lineage.forget_class
    ]
    classes = sorted(set(predicted))
    return columns, (None if classes == list(range(num_classes)) else classes)


def read_signature(path: str | Path, *, lazy: bool = False) -> Signature:
    """Read a signature written by :func:`write_signature`, with a clear error for anything else.

    ``lazy``: leave the signature array on disk (a :class:`~modelkin.hdf5.StoredArray` read slice
    by slice; its values are not checked for NaN here); the extras are read.
    """
    path = Path(path)
    with open_store(path, "signature file", _rebuild_hint(path), SignatureError) as handle:
        attrs = read_attrs(handle)
        if attrs.get("modelkin_kind") != SIGNATURE_KIND or SIGNATURE_DATASET not in handle:
            raise SignatureError(
                f"{path} is an HDF5 file but not a modelkin signature (no '{SIGNATURE_DATASET}' "
                f"dataset or modelkin_kind attribute); {_rebuild_hint(path)}"
            )
        needed = ("method", "params", "axes", "model", "checkpoint_sha256", "probe_sha256")
        missing = [k for k in needed if k not in attrs]
        if missing:
            raise SignatureError(
                f"{path} lacks the attribute(s) {', '.join(missing)} (written "
                f"by an older modelkin?); delete it and {_rebuild_hint(path)}"
            )
        try:
            stored = handle[SIGNATURE_DATASET]
            data = (
                StoredArray(path, SIGNATURE_DATASET, stored.shape, stored.dtype)
                if lazy
                else stored[()]
            )
            extras = {name: handle[name][()] for name in handle if name != SIGNATURE_DATASET}
        except OSError as err:
            raise SignatureError(
                f"{path} is damaged ({err}); delete it and {_rebuild_hint(path)}"
            ) from err
    for name, array in {SIGNATURE_DATASET: data, **extras}.items():
        if lazy and name == SIGNATURE_DATASET:
            continue  # left on disk: its blocks are checked as they are read
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            where = "" if name == SIGNATURE_DATASET else f" in its '{name}' dataset"
            raise SignatureError(
                f"{path} holds {int((~np.isfinite(array)).sum())} non-finite values{where}; "
                f"delete it and {_rebuild_hint(path)}"
            )
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

    They must come from the same method with the same parameters on the same probe (by hash),
    with the same axes and shapes; only the method's class axis may differ in length (models
    with different numbers of classes), and any shape may differ for a method that compares
    models of one architecture only (such pairs get no distance).
    """
    from .registry import METHODS

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
            f"{names} were computed on different probes ({a.attrs.get('probe')} sha256 "
            f"{a.probe_sha256[:12]} vs {b.attrs.get('probe')} sha256 {b.probe_sha256[:12]}); "
            "recompute both on the same probe file"
        )
    if a.axes != b.axes:
        raise SignatureMismatch(f"{names} have different axes ({a.axes} vs {b.axes})")
    method = METHODS.get(a.method)
    if method is not None and method.same_architecture_only:
        return
    class_axis = method.class_axis if method is not None else "class"
    fixed = [i for i, axis in enumerate(a.axes) if axis != class_axis]
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
    """Write a probe atomically: one dataset per array, ``kind`` and ``params`` as attributes."""
    path = Path(path)
    attrs = {
        "modelkin_kind": f"{PROBE_KIND_PREFIX}-{kind}",
        "params": params,
        "modelkin_version": __version__,
        **(extra_attrs or {}),
    }
    with atomic_path(path) as tmp, create_store(tmp) as handle:
        for name, array in arrays.items():
            array = np.asarray(array)
            create_dataset(handle, name, array, compress=array.nbytes > 4096)
        write_attrs(handle, attrs)
    return path


def read_probe(path: str | Path, kind: str | None = None, *, load_arrays: bool = True) -> Probe:
    """Read a probe file; with ``kind`` given, refuse a probe of another kind."""
    path = Path(path)
    hint = f"build it with `snakemake --cores 2 {path}` in the workflow directory"
    with open_store(path, "probe file", hint, SignatureError) as handle:
        attrs = read_attrs(handle)
        stored = str(attrs.get("modelkin_kind", ""))
        if not stored.startswith(PROBE_KIND_PREFIX + "-"):
            raise SignatureError(f"{path} is an HDF5 file but not a modelkin probe; {hint}")
        found = stored.removeprefix(PROBE_KIND_PREFIX + "-")
        if kind is not None and found != kind:
            raise SignatureError(f"{path} is a {found} probe, but a {kind} probe is needed here")
        arrays = {name: handle[name][()] for name in handle} if load_arrays else {}
    return Probe(found, arrays, attrs.get("params", {}), attrs, path, file_sha256(path))
