"""The model pairs the workflow compares (config section ``similarity``) and the job each pair
runs."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..ids import ModelIdError, id_dataset, pair_slug

SHORTHANDS = {
    "independent": (
        "every pair of zoo models that differ only in their seeds (same data set, architecture, "
        "algorithm)"
    ),
    "zoo": "every pair of zoo models of the same data set",
}
PAIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
RESERVED_NAMES = ("summary",)


class PairError(InputError):
    """A ``similarity.pairs`` entry that cannot be planned."""


@dataclass(frozen=True)
class PlannedPair:
    name: str
    model_a: str
    model_b: str
    dataset: str  # whose prepared test/train split is the probe
    layers_a: Any
    layers_b: Any


def model_dataset(model_id: str, catalog: Any = None) -> str:
    """The data set of a model: a zoo id's (``dataset/arch/algorithm/iI-dD``) or derived id's
    (``derived/dataset/...``) own, an external model's from the ``models`` section (``catalog``:
    a :class:`modelkin.catalog.ModelCatalog`)."""
    try:
        dataset = id_dataset(model_id)
        if dataset is None and catalog is not None:
            dataset = catalog.dataset(model_id)
    except ModelIdError as err:
        raise PairError(str(err)) from None
    if dataset is None:
        raise PairError(
            f"{model_id} has no data set of its own; set `dataset:` on the similarity pair"
        )
    return dataset


def pair_name(model_a: str, model_b: str) -> str:
    """``digits/lenet/standard/i0-d0`` and ``.../i1-d1`` ->
    ``digits.lenet.standard.i0-d0__digits.lenet.standard.i1-d1``."""
    try:
        return pair_slug(model_a, model_b, separator="__")
    except ModelIdError as err:
        raise PairError(str(err)) from None


def zoo_model_ids(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The zoo's models (``modelkin.catalog.ModelCatalog``): id, data set and (data set, arch,
    algorithm)."""
    from ..catalog import ModelCatalog

    return [
        {"id": str(m), "dataset": m.dataset, "setting": m.profile} for m in ModelCatalog(config).zoo
    ]


def _expand(entry: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(entry, str):
        if entry not in SHORTHANDS:
            raise PairError(
                f"similarity.pairs entry {entry!r} is not a shorthand ({', '.join(SHORTHANDS)}); "
                "give a pair as [MODEL_A, MODEL_B] or {a: MODEL_A, b: MODEL_B}"
            )
        zoo = zoo_model_ids(config)
        key = "setting" if entry == "independent" else "dataset"
        return [
            {"a": x["id"], "b": y["id"]}
            for x, y in itertools.combinations(zoo, 2)
            if x[key] == y[key]
        ]
    if isinstance(entry, (list, tuple)):
        if len(entry) != 2:
            raise PairError(f"similarity.pairs entry {entry} must name exactly two models")
        return [{"a": entry[0], "b": entry[1]}]
    if isinstance(entry, dict) and {"a", "b"} <= set(entry):
        return [dict(entry)]
    raise PairError(
        f"similarity.pairs entry {entry!r} is neither a shorthand, [A, B] nor {{a: A, b: B, ...}}"
    )


def plan_pairs(config: dict[str, Any], catalog: Any = None) -> list[PlannedPair]:
    """The configured pairs, shorthands expanded, in order; a pair listed twice (either way round)
    once.

    A pair's models are model ids or names of the ``models`` section (``victim`` stands for
    ``external/victim``); the probe is model A's data set (``catalog``: the configuration's
    :class:`modelkin.catalog.ModelCatalog`, built when not given), unless the pair sets one."""
    from ..questions.plan import model_reference

    section = config.get("similarity") or {}
    planned: dict[str, PlannedPair] = {}
    seen: set[frozenset[str]] = set()
    for index, entry in enumerate(section.get("pairs") or []):
        for pair in _expand(entry, config):
            where = f"similarity.pairs[{index}]"
            try:
                a = model_reference(pair["a"], config, f"{where} (a)")
                b = model_reference(pair["b"], config, f"{where} (b)")
            except ModelIdError as err:
                raise PairError(str(err)) from None
            if a == b:
                raise PairError(f"similarity pair {a} ~ {b} compares a model with itself")
            key = frozenset((a, b))
            if key in seen and "name" not in pair:
                continue
            seen.add(key)
            name = pair.get("name") or pair_name(a, b)
            if not PAIR_NAME.match(name) or name in RESERVED_NAMES:
                raise PairError(
                    f"similarity pair name {name!r} must be letters, digits, '.', '_', '+' or '-' "
                    f"(not starting with a symbol) and not {', '.join(RESERVED_NAMES)}; set "
                    "`name:` on the pair"
                )
            if name in planned:
                raise PairError(
                    f"two similarity pairs are both named {name!r}; give them different `name:`s"
                )
            if pair.get("dataset"):
                dataset = pair["dataset"]
            else:
                if catalog is None:
                    from ..catalog import ModelCatalog

                    catalog = ModelCatalog(config)
                dataset = model_dataset(a, catalog)
            layers = section.get("layers", "relu")
            planned[name] = PlannedPair(
                name,
                a,
                b,
                dataset,
                pair.get("layers_a", pair.get("layers", layers)),
                pair.get("layers_b", pair.get("layers", layers)),
            )
    return list(planned.values())


def similarity_job(config: dict[str, Any], pair: PlannedPair) -> dict[str, Any]:
    """Everything a pair's result depends on (the rule's params: a change reruns it)."""
    section = config["similarity"]
    return {
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "layers_a": pair.layers_a,
        "layers_b": pair.layers_b,
        "measures": list(section["measures"]),
        "measure_params": section["measure_params"],
        "images": section["images"],
        "split": section["split"],
        "conv_mode": section["conv_mode"],
        "max_spatial_samples": section["max_spatial_samples"],
        "seed": section["seed"],
        "degenerate": section["degenerate"],
        "batch_size": section["batch_size"],
        "streaming": section["streaming"],
        "memory_budget_mb": config["memory_budget_mb"],
        "device": config["device"],
    }


def run_similarity_pair(
    job: dict[str, Any], checkpoint_a, checkpoint_b, data, table_path, heatmap_path
):
    """The ``similarity`` rule: compare the pair's checkpoints, write the long CSV and the
    heatmaps."""
    from .compare import compare_checkpoints_layers
    from .tables import format_layer_tables, plot_layer_heatmaps, write_table

    table = compare_checkpoints_layers(
        checkpoint_a,
        checkpoint_b,
        data,
        job["layers_a"],
        job["layers_b"],
        job["measures"],
        job["images"],
        job["split"],
        name_a=job["model_a"],
        name_b=job["model_b"],
        conv_mode=job["conv_mode"],
        batch_size=job["batch_size"],
        device=job["device"],
        max_spatial_samples=job["max_spatial_samples"],
        seed=job["seed"],
        degenerate=job["degenerate"],
        measure_params=job["measure_params"],
        streaming=job.get("streaming", "auto"),
        memory_budget_mb=job.get("memory_budget_mb"),
    )
    write_table(table, table_path)
    plot_layer_heatmaps(table, heatmap_path)
    print(format_layer_tables(table))
    return Path(table_path)
