"""What a signature method is: the interface every method implements, and its distances.

A *signature* is what a model does on a fixed *probe* (Zest's perturbed images, ModelGiF's
reference points, a weight vector), stored with its provenance; two models are compared by the
distances of their signatures. A method is one subclass of :class:`SignatureMethod` and one
entry in :mod:`modelkin.signatures.registry`; everything else (the workflow's rules, the
distance tables, relatedness, concordance, the command line) iterates over the registry.

In the notation of the papers: a probe P (inputs x_1..x_N), a model f, a signature S(f; P)
(an array with named axes), and distances d(S_A, S_B) with a direction and a range.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    import torch

    from .store import Probe

# What a method may need from a model.
NEEDS = ("logits", "gradients", "weights", "activations")
# The input size the methods' automatic chunk sizes were measured at (CIFAR-10 / digits images).
REFERENCE_INPUT = 3 * 32 * 32


def auto_chunk(per_device: dict[str, int], device_type: str, input_shape: Sequence[int]) -> int:
    """Images per forward pass when none is given: the device's size for 32x32 inputs, scaled
    down in proportion to larger inputs (a 3x224x224 image's activations take 49 times a
    3x32x32 image's), so that memory stays about the same at any input size; at least 1."""
    base = per_device.get(device_type, per_device["cuda"])
    pixels = 1
    for n in input_shape:
        pixels *= int(n)
    return max(1, int(base * min(1.0, REFERENCE_INPUT / max(1, pixels))))


@dataclass(frozen=True)
class Distance:
    """One distance between two signatures of a method, with what a caller needs to use it."""

    method: str  # the signature method it applies to
    metric: str  # its short name within the method ("cos", "l2", ...)
    function: Callable[[np.ndarray, np.ndarray], float]
    higher_is_similar: bool
    symmetric: bool
    is_metric: bool  # satisfies the triangle inequality
    range: tuple[float, float]
    description: str

    @property
    def name(self) -> str:
        return f"{self.method}/{self.metric}"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.function(a, b))


@dataclass
class Computed:
    """A method's result for one model: the signature array, what defines it, and extra arrays."""

    data: np.ndarray
    params: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class SignatureMethod(ABC):
    """The interface of a signature method (cf. TRAK's ``AbstractModelOutput``).

    A subclass sets the class attributes and implements :meth:`make_probe` and :meth:`compute`;
    :meth:`pairwise` may be overridden for speed. Subclass modules must import without torch
    (import it inside :meth:`compute`), so that tables and plans stay light.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[frozenset[str]]  # from NEEDS
    axes: ClassVar[tuple[str, ...]]  # names of the signature's axes
    class_axis: ClassVar[str | None] = None  # the axis that may differ in length between models
    probe_kind: ClassVar[str | None]  # the probe files it reads (None: no probe, e.g. weights)
    probe_keys: ClassVar[tuple[str, ...]] = ()  # keys of its config section that make the probe
    signature_keys: ClassVar[tuple[str, ...]] = ()  # keys that define the signature
    selection_keys: ClassVar[tuple[str, ...]] = ()  # keys of a probe selection (selects_probe)
    distances: ClassVar[tuple[Distance, ...]]  # headline first
    # Two-stage probes (ModelGiF): candidates, then a selection by independent models' signatures.
    selects_probe: ClassVar[bool] = False
    same_architecture_only: ClassVar[bool] = False  # weight-space methods
    # Large signatures (ModelGiF's fields): compute() takes ``out``, a callable
    # ``out(shape, dtype, chunks)`` returning the file's dataset to fill as it computes, and the
    # distance tables read the signatures slice by slice instead of whole.
    streams_to_disk: ClassVar[bool] = False

    @abstractmethod
    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        """Write the probe of a prepared data set to ``output`` (settings: :attr:`probe_keys`)."""

    @abstractmethod
    def compute(
        self,
        model: torch.nn.Module,
        probe: Probe | None,
        *,
        device: torch.device,
        chunk_size: int | None = None,
        **settings: Any,
    ) -> Computed:
        """The model's signature on the probe (None for a method that reads no probe; settings:
        :attr:`signature_keys`)."""

    def probe_inputs(self, probe: Probe | None) -> np.ndarray | None:
        """The images the model sees on this probe (checked for finite outputs before computing);
        None for methods that read no inputs."""
        return probe.arrays.get("images") if probe is not None else None

    def select_probe(
        self,
        candidates: str | Path,
        signatures: Sequence[str | Path],
        output: str | Path,
        **settings,
    ) -> Path:
        """For :attr:`selects_probe` methods: keep the
        best candidates (settings: the selection's)."""
        raise InputError(f"the {self.name} method does not select its probe from candidates")

    # -- distances --------------------------------------------------------------------------------

    @property
    def headline(self) -> Distance:
        return self.distances[0]

    def distance(self, metric: str | None = None) -> Distance:
        """The distance called ``metric`` (default: the headline)."""
        if metric is None:
            return self.headline
        for entry in self.distances:
            if entry.metric == metric:
                return entry
        valid = ", ".join(d.metric for d in self.distances)
        raise InputError(f"unknown {self.name} distance {metric!r}; valid: {valid}")

    def storage_chunks(self, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
        """HDF5 chunk shape of a stored signature (None: the conventions' default)."""
        return None

    def pairwise(
        self,
        signatures: Sequence[Any],
        metrics: Sequence[str] | None = None,
        memory_bytes: int | None = None,
    ) -> dict[str, np.ndarray]:
        """``{metric: (M, M) symmetric matrix}`` over ``signatures`` (arrays, or
        :class:`~modelkin.signatures.store.Signature` objects whose extras and lineage a method
        may use); NaN where a pair is not comparable (e.g. another architecture for a
        weight-space method). ``memory_bytes``: the memory budget of methods that compare in
        blocks (ignored here)."""
        from ..progress import progress

        entries = [self.distance(m) for m in metrics] if metrics else list(self.distances)
        m = len(signatures)
        out = {d.metric: np.zeros((m, m)) for d in entries}
        pairs = list(itertools.combinations(range(m), 2))
        for i, j in progress(pairs, desc=f"{self.name} distances", unit="pair"):
            for d in entries:
                out[d.metric][i, j] = out[d.metric][j, i] = self.pair_distance(
                    d, signatures[i], signatures[j]
                )
        return out

    def pair_distance(self, distance: Distance, a: Any, b: Any) -> float:
        """One pair's distance (arrays or Signature objects)."""
        x, y = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        if self.same_architecture_only and x.shape != y.shape:
            return float("nan")
        return distance(x, y)

    def config_defaults(self) -> dict[str, Any]:
        """The method's config section as the schema's defaults fill it (the one source of every
        setting's default)."""
        from ..config import validate_config

        return dict(validate_config({}).get(self.name) or {})

    def standalone_probe_settings(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """The probe settings for use without the workflow (no selection among candidates)."""
        return self.settings_from_config(section, "probe")

    def settings_from_config(self, section: Mapping[str, Any], part: str) -> dict[str, Any]:
        """The part (``probe``, ``signature`` or ``selection``) of the method's config section."""
        keys = {
            "probe": self.probe_keys,
            "signature": self.signature_keys,
            "selection": self.selection_keys,
        }[part]
        return {k: section[k] for k in keys if k in section}
