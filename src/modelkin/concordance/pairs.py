"""The layer-wise verdicts of model pairs: a similarity measure at one layer, stitching both ways.

One record per pair (JSON, kind :data:`RECORD_KIND`) carries the two models' lineage metadata,
the measures' values and the stitching results; :mod:`.table` joins the records with the
distance tables. The checkpoint, similarity and stitching code (torch) is imported when a pair is
computed, so that reading records stays torch-free.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_json
from ..progress import progress
from .defaults import schema_default
from .methods import (
    DEFAULT_MEASURE,
    STITCHING_DIRECTIONS,
    STITCHING_VARIANTS,
    ConcordanceError,
)
from .plan import pair_key

log = logging.getLogger(__name__)

RECORD_KIND = "modelkin-concordance-pair"


def layers_for(layer: str | Mapping[str, str], arch: str) -> str:
    """The layer of ``arch``: a name, or a mapping ``{arch: name, default: name}``."""
    from ..models.layers import LayerError
    from ..similarity import resolve_layer_spec

    try:
        chosen = resolve_layer_spec(layer, arch)
    except LayerError as err:
        raise ConcordanceError(f"concordance.layer: {err}") from err
    if not isinstance(chosen, str):
        raise ConcordanceError(
            f"concordance.layer must name one layer per architecture, got {chosen!r} for {arch}"
        )
    return chosen


def concordance_pair(
    checkpoint_a: str | Path,
    checkpoint_b: str | Path,
    prepared: str | Path,
    output: str | Path,
    *,
    model_a: str,
    model_b: str,
    layer: str | Mapping[str, str] | None = None,
    measures: Sequence[str] = (DEFAULT_MEASURE,),
    stitch: Mapping[str, Any] | None = None,
    stitch_dir: str | Path | None = None,
    images: int | None = None,
    split: str | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """The layer-wise verdicts of one pair, written to ``output`` (JSON).

    ``measures`` are compared at ``layer`` by :func:`modelkin.similarity.compare_checkpoints_layers`
    on the first ``images`` images of ``split``; with ``stitch`` (stitching options), a stitching
    layer is trained A -> B and B -> A by :func:`modelkin.stitching.stitch_models` (results in
    ``stitch_dir``). ``layer``, ``images`` and ``split`` default to the schema's
    ``concordance`` settings. The record also carries both models' lineage metadata, from which
    the pair's relation is derived.
    """
    from ..checkpoint import load_checkpoint, read_lineage
    from ..similarity import compare_checkpoints_layers
    from ..stitching import stitch_models

    layer = schema_default("layer") if layer is None else layer
    images = int(schema_default("images") if images is None else images)
    split = schema_default("split") if split is None else split
    start = time.perf_counter()
    lineages = {
        "a": read_lineage(checkpoint_a, name=model_a),
        "b": read_lineage(checkpoint_b, name=model_b),
    }
    if lineages["a"].task != lineages["b"].task:
        raise ConcordanceError(
            f"{model_a} and {model_b} work on different tasks (data set, classes: "
            f"{lineages['a'].task} vs {lineages['b'].task}): stitching predicts with model 2's "
            "head and the verdicts would compare different problems; remove one of them from "
            "concordance.models"
        )
    layers = {side: layers_for(layer, lineage.arch) for side, lineage in lineages.items()}
    record: dict[str, Any] = {
        "kind": RECORD_KIND,
        "model_a": model_a,
        "model_b": model_b,
        "lineage": {side: lineage.to_dict() for side, lineage in lineages.items()},
        "layer_a": layers["a"],
        "layer_b": layers["b"],
        "probe": {"split": split, "images": images},
        "measures": {},
        "stitching": None,
    }
    if measures:
        ckpt_a, ckpt_b = load_checkpoint(checkpoint_a, "cpu"), load_checkpoint(checkpoint_b, "cpu")
        table = compare_checkpoints_layers(
            ckpt_a,
            ckpt_b,
            prepared,
            [layers["a"]],
            [layers["b"]],
            list(measures),
            images,
            split,
            name_a=model_a,
            name_b=model_b,
            device=device,
        )
        for row in table.itertuples():
            record["measures"][row.measure] = {
                "value": None if not math.isfinite(row.value) else float(row.value),
                "higher_is_similar": bool(row.higher_is_similar),
                "status": row.status,
                "reason": row.reason,
                "samples": int(row.samples),
            }
    if stitch_dir is not None:  # the workflow's directory output, even when empty
        Path(stitch_dir).mkdir(parents=True, exist_ok=True)
    if stitch is not None:
        if stitch_dir is None:
            raise ConcordanceError(
                "stitching needs stitch_dir, the folder its two results are written to"
            )
        runs = {
            "a_to_b": (checkpoint_a, checkpoint_b, layers["a"], layers["b"]),
            "b_to_a": (checkpoint_b, checkpoint_a, layers["b"], layers["a"]),
        }
        out: dict[str, Any] = {"options": dict(stitch), "directions": {}}
        key = pair_key(model_a, model_b)
        for direction, (c1, c2, l1, l2) in progress(runs.items(), desc=f"stitching {key}"):
            result_path = Path(stitch_dir) / f"{direction}.json"
            payload = stitch_models(
                c1,
                c2,
                l1,
                l2,
                output=result_path,
                data=[prepared],
                options=dict(stitch),
                device=device,
                provenance={"experiment": "concordance", "pair": key, "direction": direction},
            )
            evaluation = payload["evaluations"][payload["train_task"]["name"]]
            out["directions"][direction] = {
                "result": str(result_path),
                "relative_accuracy": dict(payload["relative_accuracy"]),
                "accuracy": {v: evaluation[v]["accuracy"] for v in payload["relative_accuracy"]},
                "model2_accuracy": evaluation["model2"]["accuracy"],
            }
        for name, variant in STITCHING_VARIANTS.items():
            values = [
                out["directions"][d]["relative_accuracy"].get(variant) for d in STITCHING_DIRECTIONS
            ]
            out[name] = float(np.mean(values)) if all(v is not None for v in values) else None
        record["stitching"] = out
    write_json(output, record)  # no timing in it: identical runs give identical files
    stitching = record["stitching"]
    log.info(
        "%s ~ %s: %s%s (%.1f s)",
        model_a,
        model_b,
        ", ".join(f"{k} {v['value']}" for k, v in record["measures"].items()),
        ""
        if stitching is None
        else f", stitching {stitching['stitching']}, ps_inv {stitching['stitching_ps_inv']}",
        time.perf_counter() - start,
    )
    return record


def concordance_pairs(
    checkpoints: Mapping[str, str | Path],
    prepared: str | Path,
    output_dir: str | Path,
    *,
    pairs: Sequence[Sequence[str]],
    **settings: Any,
) -> list[dict[str, Any]]:
    """:func:`concordance_pair` for each ``[key, model_a, model_b]`` of ``pairs`` in one process
    (torch and the data loaded once): records ``{output_dir}/{key}.json``, stitching results
    ``{output_dir}/stitching/{key}/``. ``checkpoints`` maps model ids to checkpoint files;
    ``settings`` go to :func:`concordance_pair`."""
    output_dir = Path(output_dir)
    missing = sorted({m for _, a, b in pairs for m in (a, b)} - set(checkpoints))
    if missing:
        raise ConcordanceError(f"no checkpoint given for {', '.join(missing)}")
    records = []
    for key, a, b in progress(list(pairs), desc="concordance pairs"):
        records.append(
            concordance_pair(
                checkpoints[a],
                checkpoints[b],
                prepared,
                output_dir / f"{key}.json",
                model_a=a,
                model_b=b,
                stitch_dir=output_dir / "stitching" / key,
                **settings,
            )
        )
    output_dir.mkdir(parents=True, exist_ok=True)  # the workflow's directory output, even for none
    return records


def pair_files(folders: Sequence[str | Path]) -> list[Path]:
    """The pair records in the output folders of :func:`concordance_pairs`, sorted."""
    return sorted(p for folder in folders for p in Path(folder).glob("*.json"))
