"""Method concordance: every method's verdict on the same model pairs, side by side, and how far they agree.

For a bounded set of models that share a task (by default one parent, its derived
models that keep its task, and the zoo models of its setting) every pair gets

* ``zest``, ``gradfield``: the pair's reference-normalised signature distance from the
  distance stage's tables (``results/distances/{method}.csv``, column ``{metric}_normalised``);
* a representational similarity measure (``cka`` by default, any ``modelkin.measures`` name)
  between the two models' activations at one layer, by :func:`modelkin.similarity.compare_checkpoints_layers`;
* ``stitching``: the relative accuracy (stitched / model 2) of a trained stitching layer at that
  layer, by :func:`modelkin.stitching.stitch_models`, averaged over both directions (A -> B and
  B -> A, so that the verdict is symmetric like the others); ``stitching_ps_inv``: the same for the
  least-squares ("ps_inv", direct matching) stitching layer without training.

Every verdict is then *oriented* so that larger means more similar, from the metadata of the method
(``higher_is_similar`` of the distance or measure registry), without changing its ranking:

* a similarity (``higher_is_similar``: CKA, relative accuracy) is kept as it is;
* a reference-normalised distance d/ref becomes ``1 - d/ref``: 1 for identical behaviour, 0 for a pair
  as far apart as the average independently seeded pair, negative beyond. Unlike ``1/x`` it stays
  finite for a copy (d -> 0) and keeps the reference scale linear, so per-relation means stay meaningful;
* a raw distance with no reference becomes ``-d``.

Rank correlations (Spearman's rho and Kendall's tau-b, with their p-values) are computed between every
two methods over all pairs and within each group of pairs (``derived``: one model descends from the
other; ``siblings``: a common ancestor; ``independent``), and the mean of each oriented verdict per
relation. Rank correlations are blind to any strictly increasing transformation, so the orientation
only sets their sign and the scale of the means and plots.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path, read_json, write_json
from .plotting import pyplot, save_figure
from .progress import progress
from .signatures import METHODS, get_distance

log = logging.getLogger(__name__)

STITCHING_VARIANTS = {"stitching": "after", "stitching_ps_inv": "ps_inv"}
STITCHING_DIRECTIONS = ("a_to_b", "b_to_a")
GROUPS = ("derived", "siblings", "independent", "shared-seed", "same-model")
RECORD_KIND = "modelkin-concordance-pair"
# Stitching settings of the concordance unless the config says otherwise: the paper's preset (ps_inv
# init, model 2's soft targets), a short training, clean accuracy only, one cheap measure.
STITCH_DEFAULTS: dict[str, Any] = {
    "preset": "paper",
    "epochs": 3,
    "batch_size": 64,
    "lr": 0.003,
    "measures": ["cka"],
    "measure_images": 100,
    "robust_eval": False,
}


class ConcordanceError(ValueError):
    """A concordance the configuration or the inputs cannot produce."""


# ---------------------------------------------------------------------------------------------
# Methods and orientation


@dataclass(frozen=True)
class MethodInfo:
    """One column of the concordance: where its per-pair value comes from and which way is "similar"."""

    name: str
    kind: str  # "distance" (a distance table), "measure" (activations at a layer), "stitching"
    raw_column: str  # the column of pairs.csv holding the value as the method reports it
    higher_is_similar: bool
    normalised: bool  # a distance divided by its reference (1 = as far as independent pairs)
    description: str

    def orient(self, values) -> np.ndarray:
        """``values`` turned so that larger means more similar (see the module docstring)."""
        return orient(values, higher_is_similar=self.higher_is_similar, normalised=self.normalised)


def orient(values, *, higher_is_similar: bool, normalised: bool) -> np.ndarray:
    """Similarities unchanged; normalised distances ``1 - x``; raw distances ``-x`` (NaN stays NaN)."""
    x = np.asarray(values, dtype=np.float64)
    if higher_is_similar:
        return x.copy()
    return 1.0 - x if normalised else -x


def known_methods() -> list[str]:
    from .measures import REGISTRY

    return [*METHODS, *STITCHING_VARIANTS, *REGISTRY]


def method_info(name: str, *, distance_metric: str = "cos") -> MethodInfo:
    """The metadata of a concordance method: ``zest``, ``gradfield``, ``stitching``, ``stitching_ps_inv``,
    or a measure of ``modelkin.measures`` (``cka``, ``cca``, ``procrustes``, ...)."""
    from .measures import REGISTRY, get_measure

    if name in METHODS:
        entry = get_distance(
            name, distance_metric
        )  # unknown metric: ValueError with the valid ones
        return MethodInfo(
            name,
            "distance",
            f"{name}_{entry.metric}_normalised",
            entry.higher_is_similar,
            True,
            f"{name} {entry.metric} distance / reference distance of the pair's setting ({entry.description})",
        )
    if name in STITCHING_VARIANTS:
        variant = STITCHING_VARIANTS[name]
        what = (
            "trained stitching layer"
            if variant == "after"
            else "least-squares stitching layer (no training)"
        )
        return MethodInfo(
            name,
            "stitching",
            f"{name}_relative_accuracy",
            True,
            False,
            f"relative accuracy (stitched / model 2) of the {what}, mean of both directions",
        )
    if name in REGISTRY:
        info = get_measure(name)
        return MethodInfo(
            name, "measure", f"{name}_value", info.higher_is_similar, False, info.description
        )
    raise ConcordanceError(
        f"unknown concordance method {name!r}; choose from {', '.join(known_methods())}"
    )


def resolve_methods(methods: Sequence[str] | None, distance_methods: Sequence[str]) -> list[str]:
    """The configured methods (``None``: the distance stage's methods, ``cka``, both stitching variants)."""
    if methods is None:
        methods = [m for m in METHODS if m in distance_methods] + [
            "cka",
            *STITCHING_VARIANTS,
        ]
    methods = list(dict.fromkeys(methods))
    for name in methods:
        method_info(name)
    missing = [m for m in methods if m in METHODS and m not in distance_methods]
    if missing:
        raise ConcordanceError(
            f"concordance.methods lists {', '.join(missing)}, whose distance table the workflow does not build; "
            f"add {' and '.join(missing)} to distances.methods or drop them from concordance.methods"
        )
    if len(methods) < 2:
        raise ConcordanceError(
            f"a concordance needs at least two methods, concordance.methods gives {methods}"
        )
    return methods


# ---------------------------------------------------------------------------------------------
# Which models and pairs (planning, from the configuration only)


def pair_key(model_a: str, model_b: str) -> str:
    """File-name slug of a pair (the stitching stage's: ``/`` -> ``.``, the two joined by ``~``)."""
    return f"{model_a.replace('/', '.')}~{model_b.replace('/', '.')}"


@dataclass(frozen=True)
class ConcordancePlan:
    parent: str | None
    dataset: str
    models: tuple[str, ...]
    pairs: dict[str, tuple[str, str]]  # pair key -> (model_a, model_b)
    methods: tuple[str, ...]
    jobs: int = 1

    @property
    def chunks(self) -> list[list[str]]:
        """Pair keys per job: round-robin over the planned order, at most ``jobs`` non-empty chunks."""
        keys = list(self.pairs)
        n = max(1, min(self.jobs, len(keys)))
        return [keys[i::n] for i in range(n)]

    def chunk_models(self, chunk: int) -> list[str]:
        """The models whose checkpoints the pairs of ``chunk`` read, in plan order."""
        used = {m for key in self.chunks[chunk] for m in self.pairs[key]}
        return [m for m in self.models if m in used]


def _zoo_profile(model_id: str) -> tuple[str, str, str] | None:
    from .ids import ZooId, parse_model_id

    model = parse_model_id(model_id)
    return model.profile if isinstance(model, ZooId) else None


def _default_parent(config: Mapping[str, Any]) -> str | None:
    from .derive.plan import resolve_parents

    section = config.get("concordance") or {}
    if section.get("parent"):
        return section["parent"]
    parents = resolve_parents((config.get("derived") or {}).get("parents") or [], config)
    return parents[0] if parents else None


def plan_concordance(config: Mapping[str, Any], compared: Sequence[str]) -> ConcordancePlan | None:
    """The models and pairs of the ``concordance`` section, or None when it is off (or ``enabled: auto``
    finds nothing to compare). ``compared`` are the models of the distance tables (``distance_models()``).

    ``models: family``: the parent (``concordance.parent``, else the first of ``derived.parents``), every
    planned derived model descending from it that keeps its task (not a transfer to other classes or
    another data set), and the zoo models of its setting among ``compared``. ``models: all``: every model
    of ``compared`` on the parent's data set that keeps the full task. A list: those model ids.
    """
    from .derive.plan import planned_derivations

    section = dict(config.get("concordance") or {})
    enabled = section.get("enabled", "auto")
    if enabled is False:
        return None
    strict = enabled is True
    compared = list(compared)
    planned = {m.model_id: m for m in planned_derivations(dict(config))}
    distance_methods = list((config.get("distances") or {}).get("methods") or [])
    selection = section.get("models", "family")

    def skip(reason: str) -> None:
        if strict:
            raise ConcordanceError(
                f"{reason}; or set concordance.enabled: auto (skip quietly) or false"
            )
        log.info("concordance stage skipped: %s", reason)

    def keeps_task(model_id: str, dataset: str) -> bool:
        if model_id in planned:
            p = planned[model_id]
            return p.kind != "transfer" and p.dataset == dataset
        profile = _zoo_profile(model_id)
        return profile is not None and profile[0] == dataset

    parent = _default_parent(config)
    if isinstance(selection, str):
        if parent is None:
            return skip(
                "concordance.models: family/all needs a parent: set concordance.parent or derived.parents"
            )
        if parent in planned:
            dataset, arch, algorithm = planned[parent].profile
        elif _zoo_profile(parent) is not None:
            dataset, arch, algorithm = _zoo_profile(parent)
        else:
            raise ConcordanceError(
                f"concordance.parent {parent!r} is neither a zoo model id (DATASET/ARCH/ALGORITHM/iI-dD) nor a derived "
                "model that the derived section plans"
            )
        if parent not in compared:
            raise ConcordanceError(
                f"the concordance parent {parent} is not among the models of the distance tables; add it to "
                "distances.extra_models or choose one of derived.parents"
            )
        if selection == "family":

            def descends(model_id: str) -> bool:
                seen = set()
                while model_id in planned and model_id not in seen:
                    seen.add(model_id)
                    model_id = planned[model_id].parent
                    if model_id == parent:
                        return True
                return False

            zoo = [m for m in compared if _zoo_profile(m) == (dataset, arch, algorithm)]
            family = [m for m in compared if descends(m) and keeps_task(m, dataset)]
            models = list(dict.fromkeys([parent, *zoo, *family]))
        elif selection == "all":
            models = [m for m in compared if keeps_task(m, dataset)]
        else:
            raise ConcordanceError(
                f"concordance.models must be family, all or a list of model ids, not {selection!r}"
            )
    else:
        models = list(dict.fromkeys(selection))
        uses_tables = any(m in METHODS for m in (section.get("methods") or distance_methods))
        absent = [m for m in models if m not in compared]
        if uses_tables and absent:
            raise ConcordanceError(
                f"concordance.models {absent} are not in the distance tables; add them to distances.extra_models "
                "(or drop zest/gradfield from concordance.methods)"
            )
        transfers = [m for m in models if m in planned and planned[m].kind == "transfer"]
        if transfers:
            raise ConcordanceError(
                f"concordance.models {transfers} are transfers to another task (a different head); every model of "
                "a concordance must share the task, remove them"
            )
        datasets = {
            planned[m].dataset if m in planned else (_zoo_profile(m) or ("?",))[0] for m in models
        }
        if len(datasets) != 1:
            raise ConcordanceError(
                f"concordance.models span data sets {sorted(datasets)}; choose models of one"
            )
        dataset = datasets.pop()
    if len(models) < 3:
        return skip(
            f"the concordance needs at least 3 models (3 pairs) for rank correlations, its selection gives "
            f"{len(models)}: {', '.join(models) or 'none'}"
        )
    methods = resolve_methods(section.get("methods"), distance_methods)
    pairs = {pair_key(a, b): (a, b) for a, b in itertools.combinations(models, 2)}
    return ConcordancePlan(
        parent, dataset, tuple(models), pairs, tuple(methods), int(section.get("jobs", 2))
    )


def chunk_job(config: Mapping[str, Any], plan: ConcordancePlan, chunk: int) -> dict[str, Any]:
    """The keyword arguments of :func:`concordance_pairs` for one job's pairs, less the checkpoint files
    (``models`` lists the models whose checkpoints the rule passes, in that order)."""
    section = dict(config.get("concordance") or {})
    if not 0 <= chunk < len(plan.chunks):
        raise ConcordanceError(
            f"concordance job {chunk} is not planned; the plan has jobs 0..{len(plan.chunks) - 1}"
        )
    methods = list(plan.methods)
    return {
        "pairs": [[key, *plan.pairs[key]] for key in plan.chunks[chunk]],
        "models": plan.chunk_models(chunk),
        "layer": section.get("layer", "relu3"),
        "measures": [m for m in methods if method_info(m).kind == "measure"],
        "stitch": stitch_options(section.get("stitch"))
        if any(m in STITCHING_VARIANTS for m in methods)
        else None,
        "images": int(section.get("images", 500)),
        "split": section.get("split", "test"),
        "device": config.get("device", "auto"),
    }


def stitch_options(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``STITCH_DEFAULTS``, then the section's keys (``preset``, ``epochs``, ...), then its ``options``; validated."""
    from .stitching.options import PRESETS, StitchOptions

    settings = dict(settings or {})
    extra = dict(settings.pop("options", None) or {})
    merged = {
        **STITCH_DEFAULTS,
        **{k: v for k, v in settings.items() if v is not None or k == "preset"},
    }
    preset = merged.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConcordanceError(
            f"unknown stitching preset {preset!r} in concordance.stitch; presets: {', '.join(PRESETS)}"
        )
    options = StitchOptions.from_dict({**(PRESETS[preset] if preset else {}), **merged, **extra})
    options.preset = preset
    return options.to_dict()


# ---------------------------------------------------------------------------------------------
# One pair: the similarity measure at the layer, stitching both ways


def _task_of(meta: Mapping[str, Any]) -> tuple[Any, ...]:
    classes = meta.get("classes")
    return meta.get("dataset"), meta.get("num_classes"), tuple(classes) if classes else None


def layers_for(layer: str | Mapping[str, str], arch: str) -> str:
    """The layer of ``arch``: a name, or a mapping ``{arch: name, default: name}``."""
    from .similarity import resolve_layer_spec

    chosen = resolve_layer_spec(layer, arch)
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
    layer: str | Mapping[str, str] = "relu3",
    measures: Sequence[str] = ("cka",),
    stitch: Mapping[str, Any] | None = None,
    stitch_dir: str | Path | None = None,
    images: int = 500,
    split: str = "test",
    device: str = "auto",
) -> dict[str, Any]:
    """The layer-wise verdicts of one pair, written to ``output`` (JSON).

    ``measures`` are compared at ``layer`` by :func:`modelkin.similarity.compare_checkpoints_layers` on the
    first ``images`` images of ``split``; with ``stitch`` (stitching options), a stitching layer is
    trained A -> B and B -> A by :func:`modelkin.stitching.stitch_models` (results in ``stitch_dir``).
    The record also carries both models' lineage metadata, from which the pair's relation is derived.
    """
    from .checkpoint import load_checkpoint, read_lineage
    from .similarity import compare_checkpoints_layers
    from .stitching import stitch_models

    start = time.perf_counter()
    metas = {
        "a": read_lineage(checkpoint_a, name=model_a).to_dict(),
        "b": read_lineage(checkpoint_b, name=model_b).to_dict(),
    }
    if _task_of(metas["a"]) != _task_of(metas["b"]):
        raise ConcordanceError(
            f"{model_a} and {model_b} work on different tasks (data set, classes: {_task_of(metas['a'])} vs "
            f"{_task_of(metas['b'])}): stitching predicts with model 2's head and the verdicts would compare "
            "different problems; remove one of them from concordance.models"
        )
    layers = {
        "a": layers_for(layer, metas["a"]["arch"]),
        "b": layers_for(layer, metas["b"]["arch"]),
    }
    record: dict[str, Any] = {
        "kind": RECORD_KIND,
        "model_a": model_a,
        "model_b": model_b,
        "lineage": {"a": metas["a"], "b": metas["b"]},
        "layer_a": layers["a"],
        "layer_b": layers["b"],
        "probe": {"split": split, "images": int(images)},
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
            int(images),
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
    if stitch_dir is not None:
        Path(stitch_dir).mkdir(
            parents=True, exist_ok=True
        )  # the workflow's directory output, even when empty
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
        for direction, (c1, c2, l1, l2) in progress(
            runs.items(), desc=f"stitching {pair_key(model_a, model_b)}"
        ):
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
                provenance={
                    "experiment": "concordance",
                    "pair": pair_key(model_a, model_b),
                    "direction": direction,
                },
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
    record["seconds"] = time.perf_counter() - start
    write_json(output, record)
    log.info(
        "%s ~ %s: %s%s (%.1f s)",
        model_a,
        model_b,
        ", ".join(f"{k} {v['value']}" for k, v in record["measures"].items()),
        ""
        if record["stitching"] is None
        else f", stitching {record['stitching']['stitching']}, ps_inv {record['stitching']['stitching_ps_inv']}",
        record["seconds"],
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
    """:func:`concordance_pair` for each ``[key, model_a, model_b]`` of ``pairs`` in one process (torch and the
    data loaded once): records ``{output_dir}/{key}.json``, stitching results ``{output_dir}/stitching/{key}/``.
    ``checkpoints`` maps model ids to checkpoint files; ``settings`` go to :func:`concordance_pair`."""
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
    output_dir.mkdir(
        parents=True, exist_ok=True
    )  # the workflow's directory output, even for no pairs
    return records


def pair_files(folders: Sequence[str | Path]) -> list[Path]:
    """The pair records in the output folders of :func:`concordance_pairs`, sorted."""
    return sorted(p for folder in folders for p in Path(folder).glob("*.json"))


# ---------------------------------------------------------------------------------------------
# The table: join, orient, correlate


def group_of(relation: str) -> str:
    """``derived`` (one descends from the other), ``siblings`` (a common ancestor), else the relation itself."""
    if relation.startswith("derived-by-"):
        return "derived"
    if relation == "common-ancestor":
        return "siblings"
    return relation


def _unordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def pair_relations(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """Each record's relation from the lineage metadata of every model of the records
    (:func:`modelkin.distances.tables.relation`, the distance tables' definition)."""
    from .lineage import Lineage, relation

    members: dict[str, Lineage] = {}
    for r in records:
        for side, model in (("a", r["model_a"]), ("b", r["model_b"])):
            members.setdefault(model, Lineage.from_metadata(r["lineage"][side], name=model))
    return {
        _unordered(r["model_a"], r["model_b"]): relation(members, r["model_a"], r["model_b"])
        for r in records
    }


def join_verdicts(
    records: Sequence[Mapping[str, Any]],
    distance_tables: Mapping[str, Any],
    methods: Sequence[str],
    *,
    distance_metric: str = "cos",
):
    """One row per pair of ``records``: model ids, relation, group, each method's raw value and its oriented
    verdict (column named after the method). ``distance_tables``: method -> DataFrame of its distance table."""
    import pandas as pd

    if not records:
        raise ConcordanceError("no pair records to join; the concordance_pairs jobs produce them")
    infos = [method_info(m, distance_metric=distance_metric) for m in methods]
    relations = pair_relations(records)
    lookups: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
    for info in infos:
        if info.kind != "distance":
            continue
        if info.name not in distance_tables:
            raise ConcordanceError(
                f"method {info.name} needs results/distances/{info.name}.csv; build it with "
                f"`snakemake results/distances/{info.name}.csv` (distances.methods)"
            )
        frame = distance_tables[info.name]
        column = f"{distance_metric}_normalised"
        missing = [c for c in ("model_a", "model_b", "relation", column) if c not in frame.columns]
        if missing:
            raise ConcordanceError(
                f"the {info.name} distance table lacks column(s) {', '.join(missing)}; it is not a distance table of "
                f"this modelkin version (or {distance_metric!r} is not one of its metrics): rebuild it with "
                f"`snakemake results/distances/{info.name}.csv`"
            )
        lookups[info.name] = {
            _unordered(r["model_a"], r["model_b"]): r for r in frame.to_dict("records")
        }

    rows = []
    disagreements: dict[str, list[str]] = {}
    for rec in records:
        a, b = rec["model_a"], rec["model_b"]
        key = _unordered(a, b)
        rel = relations[key]
        row: dict[str, Any] = {
            "model_a": a,
            "model_b": b,
            "relation": rel,
            "group": group_of(rel),
            "layer_a": rec.get("layer_a"),
            "layer_b": rec.get("layer_b"),
        }
        for info in infos:
            if info.kind == "distance":
                found = lookups[info.name].get(key)
                if found is None:
                    raise ConcordanceError(
                        f"the pair {a} ~ {b} is not in results/distances/{info.name}.csv; the table was built for other "
                        f"models: rebuild it (`snakemake results/distances/{info.name}.csv`) or change concordance.models"
                    )
                if found["relation"] != rel:
                    disagreements.setdefault(info.name, []).append(
                        f"{a} ~ {b}: {found['relation']} vs {rel}"
                    )
                row[info.raw_column] = float(found[f"{distance_metric}_normalised"])
                row[f"{info.name}_{distance_metric}"] = float(found[distance_metric])
            elif info.kind == "measure":
                entry = (rec.get("measures") or {}).get(info.name)
                if entry is None:
                    raise ConcordanceError(
                        f"the pair record of {a} ~ {b} has no {info.name} value (measures: "
                        f"{', '.join(rec.get('measures') or {}) or 'none'}); re-run its concordance_pairs job"
                    )
                row[info.raw_column] = np.nan if entry["value"] is None else float(entry["value"])
            else:
                stitching = rec.get("stitching")
                if not stitching:
                    raise ConcordanceError(
                        f"the pair record of {a} ~ {b} has no stitching results; re-run its concordance_pairs job"
                    )
                variant = STITCHING_VARIANTS[info.name]
                row[info.raw_column] = (
                    np.nan if stitching.get(info.name) is None else float(stitching[info.name])
                )
                for d in STITCHING_DIRECTIONS:
                    value = stitching["directions"][d]["relative_accuracy"].get(variant)
                    row[f"{info.name}_{d}"] = np.nan if value is None else float(value)
            row[info.name] = float(info.orient([row[info.raw_column]])[0])
        rows.append(row)
    for method, found in disagreements.items():
        log.warning(
            "%d pair(s) have another relation in the %s table than the checkpoints' lineage gives (a stale "
            "table? rebuild it): %s",
            len(found),
            method,
            "; ".join(found[:3]),
        )
    return pd.DataFrame(rows)


def _check_frame(frame, methods: Sequence[str]) -> None:
    missing = [m for m in methods if m not in frame.columns]
    if missing:
        raise ConcordanceError(
            f"the concordance table has no column(s) {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))}); "
            "build it with join_verdicts / `snakemake results/concordance/pairs.csv` including those methods"
        )


def rank_correlations(frame, methods: Sequence[str], *, by_group: bool = True, min_pairs: int = 3):
    """Spearman's rho and Kendall's tau-b (with p-values) between every two methods' oriented verdicts,
    over all pairs (``scope`` = ``all``) and, with ``by_group``, within each group with >= ``min_pairs``
    pairs. Pairs where either value is NaN are left out (``n`` counts the rest); a constant column
    gives NaN (no ranking to correlate)."""
    import pandas as pd
    from scipy import stats

    _check_frame(frame, methods)
    if len(methods) < 2:
        raise ConcordanceError(f"rank correlations need at least two methods, got {list(methods)}")
    scopes = [("all", frame)]
    if by_group and "group" in frame.columns:
        scopes += [
            (f"group:{g}", frame[frame["group"] == g]) for g in _ordered_groups(frame["group"])
        ]
    rows = []
    for scope, part in scopes:
        if scope != "all" and len(part) < min_pairs:
            continue
        for a, b in itertools.combinations(methods, 2):
            x, y = part[a].to_numpy(np.float64), part[b].to_numpy(np.float64)
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
            n = int(ok.sum())
            rho = rho_p = tau = tau_p = np.nan
            if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                rho, rho_p = (float(v) for v in stats.spearmanr(x, y))
                tau, tau_p = (float(v) for v in stats.kendalltau(x, y))
            rows.append(
                {
                    "scope": scope,
                    "method_a": a,
                    "method_b": b,
                    "n_pairs": n,
                    "spearman": rho,
                    "spearman_p": rho_p,
                    "kendall": tau,
                    "kendall_p": tau_p,
                }
            )
    columns = [
        "scope",
        "method_a",
        "method_b",
        "n_pairs",
        "spearman",
        "spearman_p",
        "kendall",
        "kendall_p",
    ]
    return pd.DataFrame(rows, columns=columns)


def _ordered_groups(groups) -> list[str]:
    present = list(dict.fromkeys(groups))
    return [g for g in GROUPS if g in present] + sorted(g for g in present if g not in GROUPS)


def relation_means(frame, methods: Sequence[str]):
    """Mean, standard deviation and count of each oriented verdict per group and per relation."""
    import pandas as pd

    _check_frame(frame, methods)

    def relation_order(relation: str):
        group = group_of(relation)
        return GROUPS.index(group) if group in GROUPS else len(GROUPS), relation

    rows = []
    for level in ("group", "relation"):
        if level == "group":
            values = _ordered_groups(frame[level])
        else:
            values = sorted(frame[level].unique(), key=relation_order)
        for value in values:
            part = frame[frame[level] == value]
            row: dict[str, Any] = {"level": level, "value": value, "n_pairs": len(part)}
            for m in methods:
                col = part[m].to_numpy(np.float64)
                col = col[np.isfinite(col)]
                row[f"{m}_mean"] = float(col.mean()) if col.size else np.nan
                row[f"{m}_std"] = float(col.std(ddof=1)) if col.size > 1 else np.nan
            rows.append(row)
    columns = ["level", "value", "n_pairs"] + [f"{m}_{s}" for m in methods for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=columns)


def read_pair_records(
    paths: Sequence[str | Path], expected: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Pair records from files and from the folders of :func:`concordance_pairs`; with ``expected`` (pair
    keys), exactly those pairs must be there."""
    files = [
        p for path in paths for p in (pair_files([path]) if Path(path).is_dir() else [Path(path)])
    ]
    records = []
    for path in progress(files, desc="pair records"):
        record = read_json(path)
        if record.get("kind") != RECORD_KIND:
            raise ConcordanceError(
                f"{path} is not a concordance pair record (kind {record.get('kind')!r})"
            )
        records.append(record)
    if expected is not None:
        found = [pair_key(r["model_a"], r["model_b"]) for r in records]
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        duplicates = sorted({k for k in found if found.count(k) > 1})
        if missing or extra or duplicates:
            raise ConcordanceError(
                f"the pair records do not match the planned pairs (missing {missing[:3]}, unplanned {extra[:3]}, "
                f"repeated {duplicates[:3]}); re-run the concordance_pairs jobs (snakemake --forcerun concordance_pairs)"
            )
    return records


def concordance_table(
    pair_records: Sequence[str | Path],
    distance_files: Mapping[str, str | Path],
    methods: Sequence[str],
    *,
    pairs_csv: str | Path,
    correlations_csv: str | Path,
    relations_csv: str | Path,
    distance_metric: str = "cos",
    min_group_pairs: int = 3,
    expected_pairs: Sequence[str] | None = None,
):
    """The stage's tables: pairs.csv (every pair's raw and oriented verdicts), correlations.csv (rank
    correlations between methods, overall and per group), relations.csv (mean verdicts per relation).
    ``pair_records``: record files or folders of them; ``expected_pairs``: the pair keys they must cover."""
    import pandas as pd

    records = read_pair_records(pair_records, expected_pairs)
    tables = {}
    for method, path in distance_files.items():
        if not Path(path).exists():
            raise ConcordanceError(f"{path} does not exist; build it with `snakemake {path}`")
        tables[method] = pd.read_csv(path)
    frame = join_verdicts(records, tables, methods, distance_metric=distance_metric)
    order = frame["group"].map(lambda g: GROUPS.index(g) if g in GROUPS else len(GROUPS))
    frame = (
        frame.assign(_order=order)
        .sort_values(["_order", "relation", "model_a", "model_b"])
        .drop(columns="_order")
    )
    correlations = rank_correlations(frame, methods, min_pairs=min_group_pairs)
    means = relation_means(frame, methods)
    for table, path in (
        (frame, pairs_csv),
        (correlations, correlations_csv),
        (means, relations_csv),
    ):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    overall = correlations[correlations["scope"] == "all"]
    log.info(
        "concordance of %d pairs, %d methods; Spearman: %s",
        len(frame),
        len(methods),
        "; ".join(f"{r.method_a}~{r.method_b} {r.spearman:.2f}" for r in overall.itertuples()),
    )
    return frame, correlations, means


# ---------------------------------------------------------------------------------------------
# Plot


GROUP_COLOURS = {
    "derived": "tab:red",
    "siblings": "tab:orange",
    "independent": "tab:blue",
    "shared-seed": "tab:green",
    "same-model": "black",
}


def plot_concordance(
    pairs_csv: str | Path, output: str | Path, methods: Sequence[str] | None = None
) -> Path:
    """Scatter matrix of the oriented verdicts (one point per pair, coloured by group), Spearman's rho over all
    pairs in each panel; the diagonal shows each method's verdicts per group as a strip."""
    plt = pyplot()
    import matplotlib.ticker
    import pandas as pd

    frame = pd.read_csv(pairs_csv)
    if methods is None:  # every column named after a method holds its oriented verdict
        methods = [c for c in frame.columns if c in known_methods()]
    _check_frame(frame, methods)
    correlations = rank_correlations(frame, methods, by_group=False)
    rho = {(r.method_a, r.method_b): r.spearman for r in correlations.itertuples()}
    k = len(methods)
    groups = _ordered_groups(frame["group"])
    fig, axes = plt.subplots(k, k, figsize=(2.6 * k + 1.5, 2.6 * k), squeeze=False)
    for i, mi in enumerate(methods):
        for j, mj in enumerate(methods):
            ax = axes[i][j]
            if i == j:
                for g_index, g in enumerate(groups):
                    values = frame.loc[frame["group"] == g, mi].to_numpy(float)
                    jitter = (
                        np.linspace(-0.15, 0.15, len(values))
                        if len(values) > 1
                        else np.zeros(len(values))
                    )
                    ax.scatter(
                        values,
                        g_index + jitter,
                        s=14,
                        color=GROUP_COLOURS.get(g, "grey"),
                        alpha=0.8,
                    )
                ax.set_yticks(range(len(groups)), groups, fontsize=7)
                ax.set_ylim(len(groups) - 0.4, -0.6)  # the first group (derived) on top
                ax.set_title(mi, fontsize=9, fontweight="bold")
            else:
                for g in groups:
                    part = frame[frame["group"] == g]
                    ax.scatter(
                        part[mj],
                        part[mi],
                        s=14,
                        color=GROUP_COLOURS.get(g, "grey"),
                        alpha=0.8,
                        label=g if (i, j) == (0, 1) else None,
                    )
                value = rho.get((mi, mj), rho.get((mj, mi)))
                ax.set_title(
                    f"Spearman {value:.2f}"
                    if value is not None and np.isfinite(value)
                    else "Spearman n/a",
                    fontsize=8,
                )
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            if i != j:
                ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            if i == k - 1:
                ax.set_xlabel(mj, fontsize=8)
            if j == 0 and i != j:
                ax.set_ylabel(mi, fontsize=8)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=GROUP_COLOURS.get(g, "grey"), label=g)
        for g in groups
    ]
    fig.legend(handles=handles, loc="upper right", fontsize=8, title="pair", title_fontsize=8)
    fig.suptitle(
        f"Method concordance over {len(frame)} model pairs (every axis: larger = more similar)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 0.92, 0.97))
    return save_figure(fig, output, dpi=100)
