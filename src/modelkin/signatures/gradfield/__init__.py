"""ModelGiF (Song et al., ICCV 2023): a model's signature is its gradient field on reference points.

F_k(x) = (x - x0) * sum_{j<=k} w_j grad f_c(x0 + alpha_j (x - x0)) for the K Gauss-Legendre
steps of the path from the baseline x0 (the data set's mean colour) to each reference point x;
the signature has shape (points, steps, inputs). Distances: mean over points and steps of
1 - cos(F^A_{i,k}, F^B_{i,k}) (headline) and variants.

The probe has two stages: candidate points, then the ``reference_points`` candidates on which
independent models' fields differ most (:mod:`.select`).

- :mod:`.probe`: candidate and selected reference points;
- :mod:`.extract`: batched gradient fields (torch);
- :mod:`.distance`: the distances, per pair and for many fields at once (numpy);
- :mod:`.select`: reference-point selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Computed, Distance, SignatureMethod
from . import distance as _d

_INF = float("inf")


class GradfieldMethod(SignatureMethod):
    name = "gradfield"
    description = "cumulative integrated-gradient fields on selected reference points (ModelGiF)"
    needs = frozenset({"gradients"})
    axes = ("point", "step", "input")
    probe_kind = "gradfield"
    probe_keys = ("candidates",)
    signature_keys = ("target", "n_steps", "precision", "field_dtype")
    selection_keys = ("reference_points", "selection_criterion")
    selects_probe = True
    streams_to_disk = True
    distances = (
        Distance(
            "gradfield", "cos", _d.field_cos, False, True, False, (0.0, 2.0),
            "ModelGiF's distance: mean over reference points and path steps of "
            "1 - cos(F^A_{i,k}, F^B_{i,k}).",
        ),
        Distance(
            "gradfield", "euclidean", _d.field_euclidean, False, True, True, (0.0, _INF),
            "Mean over reference points and steps of |F^A_{i,k} - F^B_{i,k}|_2 (scale-sensitive).",
        ),
        Distance(
            "gradfield", "cos_max_step", _d.field_cos_max_step, False, True, False, (0.0, 2.0),
            "Per reference point the largest 1 - cos over the path steps, then the mean over "
            "points.",
        ),
        Distance(
            "gradfield", "zscore", _d.field_zscore, False, True, True, (0.0, 2.0),
            "Mean over points and steps of the root-mean-square difference of the z-scored field "
            "vectors (each F_{i,k} standardised over its entries): blind to each model's gradient "
            "scale and offset; equals the mean of sqrt(2 (1 - Pearson r)).",
        ),
    )  # fmt: skip

    def make_probe(self, prepared: str | Path, output: str | Path, **settings: Any) -> Path:
        """The candidate points: ``candidates`` settings (``split``, ``n_points``, ``classes``, or
        the same keys given directly); those left out take the config's defaults."""
        from .probe import gradfield_candidates_file

        given = dict(settings.get("candidates") or settings)
        candidates = {**self.config_defaults()["candidates"], **given}
        return gradfield_candidates_file(prepared, output, **candidates)

    def standalone_probe_settings(self, section) -> dict[str, Any]:
        """Without independent models to select with: the first ``reference_points`` candidates."""
        candidates = dict(section.get("candidates") or {})
        candidates["n_points"] = int(section.get("reference_points", 128))
        return {"candidates": candidates}

    def probe_inputs(self, probe) -> np.ndarray:
        return probe.arrays["points"]

    def compute(
        self, model, probe, *, device, chunk_size=None, out=None, **settings: Any
    ) -> Computed:
        from .extract import gradient_field_signature
        from .probe import GradfieldProbe

        return gradient_field_signature(
            model,
            GradfieldProbe.from_stored(probe),
            device=device,
            chunk_size=chunk_size,
            out=out,
            **settings,
        )

    def storage_chunks(self, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
        from .extract import storage_chunks

        return storage_chunks(shape, itemsize) if len(shape) == 3 else None

    def select_probe(
        self,
        candidates: str | Path,
        signatures: Sequence[str | Path],
        output: str | Path,
        **settings,
    ) -> Path:
        """Keep the ``reference_points`` candidates on which the given independent models' fields
        differ most."""
        from .select import select_reference_points

        k = int(settings["reference_points"])
        criterion = settings.get("selection_criterion", "independent")
        return select_reference_points(candidates, signatures, k, output, criterion)

    def pairwise(self, signatures, metrics=None, memory_bytes=None) -> dict[str, np.ndarray]:
        """Every distance of every pair, reading the fields block by block (fields on disk stay
        there); the blocks' float64 working copies take at most a quarter of ``memory_bytes``
        (default 256 MiB)."""
        chunk_bytes = 256 << 20 if memory_bytes is None else max(1 << 20, memory_bytes // 4)
        fields = [getattr(s, "data", s) for s in signatures]
        full = _d.gradfield_pairwise(fields, chunk_bytes=chunk_bytes)
        return {
            d.metric: full[d.metric] for d in self.distances if not metrics or d.metric in metrics
        }
