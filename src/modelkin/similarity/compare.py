"""Layer-by-layer representational similarity of two models on one probe set.

Every chosen layer of model A is compared with every chosen layer of model B by
every chosen measure of ``modelkin.measures``. The result is a long table, one
row per (layer_a, layer_b, measure), whose ``status`` says whether the value can
be used:

* ``ok``          - the measure's value.
* ``degenerate``  - a CCA-family measure had more canonical directions than the
  samples support (``DegenerateCCAWarning``): some correlations are 1 by
  construction. ``degenerate="nan"`` (default) records NaN, ``"flag"`` keeps the
  number; either way ``reason`` carries the warning.
* ``skipped``     - the measure cannot take this layer pair (an element-wise
  measure and two shapes, or ``conv_mode="spatial"`` and two different grids).
* ``undefined``   - the measure raised for this data (e.g. a layer that is
  constant over the probe); ``reason`` is its message.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..measures import DegenerateCCAWarning, compute, get_measure
from ..measures.minibatch import DEFAULT_BATCH_SIZE
from ..models.layers import LayerError
from ..progress import progress
from .representation import CONV_MODES, Representation, capture_activations, to_representation
from .selection import resolve_layer_spec, select_layers

log = logging.getLogger(__name__)

DEGENERATE_POLICIES = ("nan", "flag")
STREAMING_CHOICES = ("auto", "always", "never")
DEFAULT_MEASURES = ("cka", "rbf_cka", "cca", "svcca", "pwcca", "procrustes")
COLUMNS = (
    "layer_a",
    "layer_b",
    "measure",
    "value",
    "higher_is_similar",
    "status",
    "reason",
    "conv_mode",
    "samples",
    "sampling",
    "features_a",
    "features_b",
)
# rbf_cka builds n x n kernel matrices (several copies of n^2 float64 per side): at 20,000 rows that
# is already gigabytes, and spatial mode without subsampling easily asks for hundreds of thousands.
MAX_KERNEL_ROWS = 20_000
KERNEL_MEASURES = ("rbf_cka",)


def _measure_settings(
    measures: Sequence[str] | Mapping[str, Mapping[str, Any] | None],
    measure_params: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    if isinstance(measures, str):
        measures = [m.strip() for m in measures.split(",") if m.strip()]
    chosen = dict(measures) if isinstance(measures, Mapping) else {m: None for m in measures}
    if not chosen:
        raise InputError("no measures chosen; pick some of: " + ", ".join(sorted(_all_measures())))
    params = {name: dict(given or {}) for name, given in chosen.items()}
    for name, extra in (measure_params or {}).items():
        if name in params:
            params[name].update(extra or {})
    for name, given in params.items():
        accepted = get_measure(name).params  # unknown measure: InputError with the valid names
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise InputError(
                f"measure {name!r} does not take {unknown}; it accepts "
                f"{sorted(accepted) or 'no parameters'}"
            )
        _check_values(name, given)
    return params


def _check_values(measure: str, params: dict[str, Any]) -> None:
    """A bad parameter value (keep_variance=2) fails here once, not as NaN in every cell later."""
    if not params:
        return
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((16, 3)), rng.standard_normal((16, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateCCAWarning)
        try:
            compute(measure, X, Y, **params)
        except ValueError as err:
            raise InputError(
                f"invalid parameters {params} for measure {measure!r}: {err}"
            ) from None


def _all_measures() -> list[str]:
    from ..measures import REGISTRY

    return list(REGISTRY)


def _cannot_compare(measure: str, a: Representation, b: Representation) -> str | None:
    info = get_measure(measure)
    if info.requires_same_shape and a.shape != b.shape:
        return (
            f"{measure} compares unit by unit and needs equal shapes: "
            f"{a.layer} is {a.shape}, {b.layer} is {b.shape}"
        )
    if a.grid is not None and a.grid != b.grid:

        def grid(r: Representation) -> str:
            return "x".join(map(str, r.grid)) + " positions" if r.grid else "no positions (dense)"

        return (
            f"conv_mode='spatial' pairs positions, which needs equal spatial sizes: {a.layer} has "
            f"{grid(a)}, {b.layer} has {grid(b)}; use conv_mode='flatten' to compare them"
        )
    if a.matrix.shape[0] != b.matrix.shape[0]:  # pragma: no cover - guarded by the grid check
        return f"different sample counts ({a.matrix.shape[0]} vs {b.matrix.shape[0]})"
    return None


def _evaluate(
    measure: str, params: dict[str, Any], a: Representation, b: Representation
) -> tuple[float, str, str]:
    """(value, status, reason) of one cell."""
    info = get_measure(measure)
    # Rotating the features costs one SVD per layer instead of one per cell and per measure.
    rotate = "orthogonal" in info.invariances and not info.requires_same_shape
    X, Y = (a.rotated(), b.rotated()) if rotate else (a.matrix, b.matrix)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = compute(measure, X, Y, **params)
        except ValueError as err:
            return float("nan"), "undefined", str(err)
    degenerate = [w for w in caught if issubclass(w.category, DegenerateCCAWarning)]
    for w in caught:
        if w not in degenerate:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if degenerate:
        return value, "degenerate", str(degenerate[0].message)
    return value, "ok", ""


def compare_layers(
    model_a: nn.Module,
    model_b: nn.Module,
    probe_x: torch.Tensor,
    layers_a: str | Sequence[str] = "relu",
    layers_b: str | Sequence[str] = "relu",
    measures: Sequence[str] | Mapping[str, Mapping[str, Any] | None] = DEFAULT_MEASURES,
    *,
    conv_mode: str = "flatten",
    batch_size: int = 256,
    device: str | torch.device = "auto",
    max_spatial_samples: int | None = None,
    seed: int = 0,
    degenerate: str = "nan",
    measure_params: Mapping[str, Mapping[str, Any]] | None = None,
    streaming: str = "auto",
    memory_budget_mb: float | None = None,
):
    """Compare every layer of ``layers_a`` (model A) with every layer of ``layers_b`` (model B) on
    ``probe_x``.

    Returns a pandas DataFrame in long format with the columns of ``COLUMNS``: one row per
    (layer_a, layer_b, measure) in the order given, ``value`` in float64, the measure's direction
    (``higher_is_similar``), ``status``/``reason`` (see the module docstring), ``samples`` (rows the
    value was computed on) and ``sampling`` (how they were chosen).

    ``measures`` are registry names (``modelkin.measures.REGISTRY``), or a mapping name ->
    parameters; ``measure_params`` adds parameters by name. ``conv_mode`` turns conv activations
    into matrices (``modelkin.measures.to_matrix``): ``flatten`` (one row per input; every layer
    pair comparable) or
    ``spatial`` (one row per input and position; only layers with the same spatial grid are
    comparable).
    ``max_spatial_samples`` keeps that many (input, position) rows, chosen with ``seed``.

    ``streaming``: ``auto`` holds the activations in memory when they fit in ``memory_budget_mb``
    (default: the configuration's) and otherwise streams ``minibatch_cka`` over the probe
    (:mod:`modelkin.similarity.streaming`), marking the other measures ``skipped``; ``always``
    streams, ``never`` holds them whatever their size.
    """
    import pandas as pd

    if conv_mode not in CONV_MODES:
        raise InputError(f"conv_mode must be one of {', '.join(CONV_MODES)}, got {conv_mode!r}")
    if degenerate not in DEGENERATE_POLICIES:
        raise InputError(
            f"degenerate must be one of {', '.join(DEGENERATE_POLICIES)}, got {degenerate!r}"
        )
    if max_spatial_samples is not None and (
        isinstance(max_spatial_samples, bool) or max_spatial_samples < 4
    ):
        raise InputError(
            f"max_spatial_samples must be an integer >= 4 or None, got {max_spatial_samples!r}"
        )
    params = _measure_settings(measures, measure_params)
    names_a, names_b = select_layers(model_a, layers_a), select_layers(model_b, layers_b)
    probe_x = torch.as_tensor(probe_x)
    if probe_x.ndim < 2 or len(probe_x) < 4:
        raise InputError(
            "probe_x must hold at least 4 inputs along its first axis (got shape "
            f"{tuple(probe_x.shape)}); the measures need several samples and debiased CKA needs 4"
        )
    for label, model in (("A", model_a), ("B", model_b)):
        # an external model resizes its data set's images (data_shape) to its own in_shape
        expected = getattr(model, "data_shape", None) or getattr(model, "in_shape", None)
        if expected is not None and tuple(probe_x.shape[1:]) != tuple(expected):
            raise InputError(
                f"model {label} ({type(model).__name__}) takes inputs of shape {tuple(expected)}, "
                f"the probe has {tuple(probe_x.shape[1:])}; use a probe set of the model's data set"
            )

    if streaming not in STREAMING_CHOICES:
        raise InputError(
            f"streaming must be one of {', '.join(STREAMING_CHOICES)}, got {streaming!r}"
        )
    reason = _streaming_reason(
        model_a, model_b, names_a, names_b, probe_x, streaming, memory_budget_mb, conv_mode
    )
    if reason is not None:
        from .streaming import streamed_records

        given = {
            **dict((measure_params or {}).get("minibatch_cka") or {}),
            **params.get("minibatch_cka", {}),
        }
        records = streamed_records(
            model_a,
            model_b,
            probe_x,
            names_a,
            names_b,
            params,
            conv_mode=conv_mode,
            device=device,
            reason=reason,
            batch_size=int(given.get("batch_size", DEFAULT_BATCH_SIZE)),
        )
        log.info("streamed minibatch CKA over %d inputs: %s", len(probe_x), reason)
        return pd.DataFrame.from_records(records, columns=list(COLUMNS))

    acts_a = capture_activations(
        model_a, probe_x, names_a, batch_size=batch_size, device=device, desc="activations A"
    )
    acts_b = capture_activations(
        model_b, probe_x, names_b, batch_size=batch_size, device=device, desc="activations B"
    )
    options: dict[str, Any] = {"max_spatial_samples": max_spatial_samples, "seed": seed}
    reps_a = [to_representation(n, acts_a.pop(n), conv_mode, **options) for n in names_a]
    reps_b = [to_representation(n, acts_b.pop(n), conv_mode, **options) for n in names_b]
    rows_used = max(r.matrix.shape[0] for r in reps_a + reps_b)
    kernel = [m for m in params if m in KERNEL_MEASURES]
    if kernel and rows_used > MAX_KERNEL_ROWS:
        raise InputError(
            f"{', '.join(kernel)} needs n x n kernel matrices and the layers have up to "
            f"{rows_used} rows (conv_mode={conv_mode!r}); set max_spatial_samples (e.g. 5000) or "
            f"use fewer images (limit: {MAX_KERNEL_ROWS} rows)"
        )

    records = []
    cells = [(a, b) for a in reps_a for b in reps_b]
    for a, b in progress(cells, desc="layer pairs"):
        for measure, measure_kw in params.items():
            info = get_measure(measure)
            reason = _cannot_compare(measure, a, b)
            if reason is not None:
                value, status = float("nan"), "skipped"
            else:
                value, status, reason = _evaluate(measure, measure_kw, a, b)
                if status == "degenerate" and degenerate == "nan":
                    value = float("nan")
            records.append(
                {
                    "layer_a": a.layer,
                    "layer_b": b.layer,
                    "measure": measure,
                    "value": value,
                    "higher_is_similar": info.higher_is_similar,
                    "status": status,
                    "reason": reason,
                    "conv_mode": conv_mode,
                    "samples": a.matrix.shape[0] if status != "skipped" else 0,
                    "sampling": a.sampling
                    if a.sampling == b.sampling
                    else f"A: {a.sampling}; B: {b.sampling}",
                    "features_a": a.features,
                    "features_b": b.features,
                }
            )
    table = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    counts = table["status"].value_counts().to_dict()
    log.info(
        "compared %d x %d layers with %d measures: %s",
        len(names_a),
        len(names_b),
        len(params),
        counts,
    )
    return table


def _streaming_reason(
    model_a, model_b, names_a, names_b, probe_x, streaming, memory_budget_mb, conv_mode
) -> str | None:
    """Why the layers are compared by streaming (None: in memory)."""
    if streaming == "never":
        return None
    if streaming == "always":
        return "similarity.streaming is always: only minibatch_cka is streamed"
    from ..config import memory_budget_bytes
    from .streaming import in_memory_bytes

    need = in_memory_bytes(model_a, model_b, names_a, names_b, len(probe_x), probe_x.shape[1:])
    budget = memory_budget_bytes(memory_budget_mb)
    if need <= budget:
        return None
    why = (
        f"the activations of {len(probe_x)} inputs need {need / 1e9:.1f} GB, over the memory "
        f"budget of {budget / 1e9:.1f} GB"
    )
    if conv_mode != "flatten":
        raise InputError(
            f"{why}; in spatial mode use fewer images (similarity.images) or a larger "
            "memory_budget_mb"
        )
    return f"{why}: only minibatch_cka is streamed"


def compare_checkpoints_layers(
    ckpt_a,
    ckpt_b,
    prepared_data: str | Path,
    layers_a: Any = "relu",
    layers_b: Any = "relu",
    measures: Sequence[str] | Mapping[str, Mapping[str, Any] | None] = DEFAULT_MEASURES,
    n_images: int = 500,
    split: str = "test",
    *,
    name_a: str | None = None,
    name_b: str | None = None,
    **options: Any,
):
    """``compare_layers`` for two checkpoints on the first ``n_images`` of a prepared split (no
    augmentation).

    ``ckpt_a``/``ckpt_b`` are checkpoint paths or loaded ``Checkpoint`` objects; ``layers_*`` may
    also be
    a mapping architecture -> selection (see ``resolve_layer_spec``). The table gains ``model_a``
    and
    ``model_b`` columns (``name_a``/``name_b``, else the checkpoints' names) and the probe's
    ``split``.
    ``options`` go to ``compare_layers`` (conv_mode, batch_size, device, max_spatial_samples, seed,
    degenerate, measure_params, streaming, memory_budget_mb).
    """
    from ..checkpoint import Checkpoint, load_checkpoint
    from ..data import load_split

    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 4:
        raise InputError(f"n_images must be an integer >= 4, got {n_images!r}")
    loaded = [
        c if isinstance(c, Checkpoint) else load_checkpoint(c, "cpu") for c in (ckpt_a, ckpt_b)
    ]
    probe = load_split(prepared_data, split, limit=n_images)
    if len(probe) < n_images:
        raise InputError(
            f"the {split} split of {prepared_data} has {len(probe)} images, fewer than "
            f"n_images={n_images}; ask for at most {len(probe)} images (or use the other split)"
        )
    for label, ckpt in zip("AB", loaded, strict=True):
        if ckpt.meta.get("dataset") != probe.info.name:
            log.warning(
                "model %s was trained on %s, the probe is %s",
                label,
                ckpt.meta.get("dataset"),
                probe.info.name,
            )
    names = [name or _checkpoint_label(c) for name, c in zip((name_a, name_b), loaded, strict=True)]
    specs = []
    for label, name, ckpt, layers in zip("AB", names, loaded, (layers_a, layers_b), strict=True):
        # Checked here to say which model lacks a layer (its valid layers listed): the layers of
        # a model of the models section are module paths no config check could know.
        try:
            spec = resolve_layer_spec(layers, ckpt.meta.get("arch"))
            select_layers(ckpt.model, spec)
        except LayerError as err:
            raise LayerError(f"model {label} ({name}): {err}") from None
        specs.append(spec)
    table = compare_layers(
        loaded[0].model, loaded[1].model, probe.x, specs[0], specs[1], measures, **options
    )
    table.insert(0, "model_b", names[1])
    table.insert(0, "model_a", names[0])
    table["split"] = split
    return table


def _checkpoint_label(ckpt) -> str:
    return ckpt.meta.get("name") or (str(ckpt.path) if ckpt.path else type(ckpt.model).__name__)
