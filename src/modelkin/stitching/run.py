"""One stitching run from two checkpoints to a result file: what the CLI and the workflow rule
call."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..checkpoint import load_checkpoint
from ..data import iterate_batches
from ..device import resolve_device
from ..errors import InputError, MissingFileError
from ..models.layers import is_cut_point, layer_names
from .evaluate import (
    check_measures,
    classification_metrics,
    measure_info,
    robust_metrics,
    similarity,
)
from .init import accumulate_moments, initialise, make_mask, solve_affine
from .model import StitchedModel, StitchingLayer, build_stitched, layer_activation
from .options import StitchOptions
from .results import donor_buffers, save_result, snapshot, t_tensors
from .tasks import Task, load_task_split, parse_task, task_of_checkpoint
from .train import train_stitcher

log = logging.getLogger(__name__)


def _prepared_lookup(
    data: dict[str, str | Path] | Sequence[str | Path] | str | Path | None,
) -> dict[str, Path]:
    """Prepared data set files by data set name (a mapping, a list of results/data/NAME.safetensors,
    or a folder)."""
    if data is None:
        return {}
    if isinstance(data, dict):
        return {k: Path(v) for k, v in data.items()}
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return {p.stem: p for p in Path(data).glob("*.safetensors")}
    files = [data] if isinstance(data, (str, Path)) else list(data)
    return {Path(p).stem: Path(p) for p in files}


def _prepared_for(lookup: dict[str, Path], task: Task) -> Path:
    if task.dataset not in lookup:
        raise MissingFileError(
            f"no prepared {task.dataset} data set among {sorted(lookup) or 'the given files'} "
            f"(needed for task {task.name!r}); run `modelkin prepare-data {task.dataset}` or "
            f"`snakemake results/data/{task.dataset}.safetensors`"
        )
    return lookup[task.dataset]


def _is_adversarial(meta: dict[str, Any]) -> bool:
    return (meta.get("recipe") or {}).get("adversary", "none") not in (None, "none")


def _donor_record(ckpt, path, layer: str, model) -> dict[str, Any]:
    meta = ckpt.meta
    return {
        "checkpoint": str(path),
        "sha256": ckpt.sha256,
        "name": ckpt.name,
        "arch": meta.get("arch"),
        "dataset": meta.get("dataset"),
        "task": task_of_checkpoint(meta).to_dict(),
        "algorithm": meta.get("algorithm"),
        "adversarial": _is_adversarial(meta),
        "layer": layer,
        "layer_index": layer_names(model).index(layer),
        "num_layers": len(layer_names(model)),
        "cut_point": is_cut_point(model, layer),
    }


@torch.no_grad()
def _moment_batches(stitched: StitchedModel, teacher2, train, device):
    for x, _ in iterate_batches(train, 256, device=device):
        yield stitched.front(x), layer_activation(teacher2, stitched.layer2, x)


def stitch_models(
    checkpoint1: str | Path,
    checkpoint2: str | Path,
    layer1: str,
    layer2: str,
    *,
    output: str | Path,
    data: dict[str, str | Path] | Sequence[str | Path] | str | Path,
    options: StitchOptions | dict[str, Any] | None = None,
    train_task: str | Task | None = None,
    eval_tasks: Sequence[str | Task] = (),
    tasks: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    provenance: dict[str, Any] | None = None,
    memory_budget_mb: float | None = None,
) -> dict[str, Any]:
    """Stitch model 1's ``layer1`` into model 2's ``layer2``, train T, evaluate, write ``output``
    (.json). ``memory_budget_mb`` bounds the cached front held in memory (beyond it the cache is
    spilled to disk; default: the configuration's).

    ``data``: prepared data set files (by name, a list, or their folder).
    ``train_task``: the task T trains on (default: model 1's); ``eval_tasks``:
    further tasks every network is evaluated on (cross-task stitching).
    """
    wall = time.perf_counter()
    device = resolve_device(device)
    opts = options if isinstance(options, StitchOptions) else StitchOptions.from_dict(options)
    check_measures(opts.measures)
    lookup = _prepared_lookup(data)
    ck1, ck2 = load_checkpoint(checkpoint1, device), load_checkpoint(checkpoint2, device)
    train_task = (
        parse_task(train_task, tasks) if train_task is not None else task_of_checkpoint(ck1.meta)
    )
    all_tasks = [train_task] + [
        t for t in (parse_task(s, tasks) for s in eval_tasks) if t.name != train_task.name
    ]
    for task in all_tasks:
        if task.num_classes != ck2.meta["num_classes"]:
            raise InputError(
                f"task {task.name!r} has {task.num_classes} classes but model 2 ({ck2.name}) has "
                f"{ck2.meta['num_classes']}: the stitched network predicts with model 2's head, so "
                "the tasks of a stitching run need model 2's number of classes"
            )
    train = load_task_split(
        _prepared_for(lookup, train_task), train_task, "train", limit=opts.train_limit
    )

    model1, model2 = ck1.model, ck2.model
    # Donors that train their batch norm change during training: targets, reference accuracies and
    # the before / ps_inv networks use frozen copies of the donors as trained.
    teacher1, teacher2 = (snapshot(model1), snapshot(model2)) if opts.train_bn else (model1, model2)
    stitched = build_stitched(
        model1,
        layer1,
        model2,
        layer2,
        flatten=opts.flatten,
        resize=opts.resize,
        low_rank=opts.low_rank,
        donor_train_mode=opts.train_bn,
        names=(ck1.name, ck2.name),
    )
    stitch = stitched.stitch
    geometry = stitch.geometry
    generator = torch.Generator().manual_seed(opts.seed)

    solution = None
    ps_info: dict[str, Any] = {}
    # Timings go to the job's log, not into the result: identical runs give identical files.
    timings: dict[str, float] = {}
    need_solution = opts.ps_inv or opts.init == "ps_inv"
    need_moments = need_solution or opts.mask in ("semi-match", "abs-semi-match")
    moments = None
    if need_moments:
        start = time.perf_counter()
        moments = accumulate_moments(
            _moment_batches(stitched, teacher2, train, device),
            stitch,
            with_yy=opts.mask in ("semi-match", "abs-semi-match"),
        )
        timings["moments"] = time.perf_counter() - start
    mask = make_mask(opts.mask, stitch, moments=moments, generator=generator).to(stitch.mask)
    stitch.set_mask(mask)
    if need_solution:
        assert moments is not None  # need_solution implies need_moments
        start = time.perf_counter()
        solution = solve_affine(
            moments,
            ridge=opts.ps_inv_ridge,
            mask=None if opts.mask == "identity" else mask,
            low_rank=opts.low_rank,
        )
        timings["solve"] = time.perf_counter() - start
        ps_info.update(
            {
                "samples": solution.samples,
                "ridge": opts.ps_inv_ridge,
                "low_rank": opts.low_rank,
                "fitted_on": f"{train_task.name} train split ({len(train)} images)",
            }
        )
    initialise(stitch, opts.init, generator=generator, solution=solution)

    tensors = t_tensors("before", stitch)
    before = StitchingLayer(geometry, low_rank=opts.low_rank).to(stitch.bias.device)
    before.load_state_dict(stitch.state_dict())
    variants: dict[str, StitchedModel] = {
        "before": StitchedModel(teacher1, layer1, teacher2, layer2, before)
    }
    if solution is not None:
        ps_layer = StitchingLayer(geometry, low_rank=opts.low_rank).to(stitch.bias.device)
        ps_layer.set_mask(mask)
        ps_layer.set_affine(solution.weight, solution.bias)
        tensors.update(t_tensors("ps_inv", ps_layer))
        variants["ps_inv"] = StitchedModel(teacher1, layer1, teacher2, layer2, ps_layer)

    name = f"{ck1.name}:{layer1} -> {ck2.name}:{layer2}"
    training = train_stitcher(
        stitched,
        train,
        opts,
        device=device,
        teachers=(teacher1, teacher2),
        desc=name,
        memory_budget_mb=memory_budget_mb,
    )
    tensors.update(t_tensors("after", stitch))
    tensors["loss.step"] = torch.tensor(training.step_loss, dtype=torch.float32)
    if opts.train_bn:
        tensors.update(donor_buffers("donor1.", model1))
        tensors.update(donor_buffers("donor2.", model2))
    variants["after"] = stitched
    variants = {k: variants[k] for k in ("before", "after", "ps_inv") if k in variants}

    robust = opts.robust_eval
    if robust == "auto":
        robust = _is_adversarial(ck1.meta) or _is_adversarial(ck2.meta) or opts.adversary != "none"
    start = time.perf_counter()
    own_tasks = {
        "model2": task_of_checkpoint(ck2.meta).name,
        "model1": task_of_checkpoint(ck1.meta).name,
    }
    evaluations = {
        task.name: _evaluate_task(
            task,
            lookup,
            variants,
            teacher1,
            teacher2,
            stitched,
            opts,
            bool(robust),
            device,
            own_tasks,
        )
        for task in all_tasks
    }
    timings["evaluation"] = time.perf_counter() - start

    payload = {
        "modelkin_version": __version__,
        "provenance": provenance or {},
        "model1": _donor_record(ck1, checkpoint1, layer1, model1),
        "model2": _donor_record(ck2, checkpoint2, layer2, model2),
        "geometry": {
            "kind": geometry.kind,
            "in_shape": list(geometry.in_shape),
            "out_shape": list(geometry.out_shape),
            "resize": geometry.resize,
            "in_features": geometry.in_features,
            "out_features": geometry.out_features,
        },
        "options": opts.to_dict(),
        "donors": {
            "mode": "train" if opts.train_bn else "eval",
            "note": (
                "train: donor batch norm used batch statistics and updated its running statistics "
                "during training (the references' submission code); eval: donors frozen as trained"
            ),
        },
        "execution": {
            "end": stitched.end_plan.mode,
            "end_reason": stitched.end_plan.reason,
            "front": {"memory": "cached", "disk": "cached on disk"}.get(
                training.front_cache, "recomputed"
            ),
            "device": str(device),
        },
        "train_task": train_task.to_dict(),
        "eval_tasks": [t.name for t in all_tasks],
        "ps_inv": ps_info if solution is not None else None,
        "mask": {"kind": opts.mask, "nonzero": int((mask != 0).sum())},
        "training": {
            "steps": training.steps,
            "epochs": training.epochs,
            "step_loss": training.step_loss,
        },
        "robust_eval": bool(robust),
        "measures": measure_info(opts.measures),
        "evaluations": evaluations,
        "relative_accuracy": {
            v: evaluations[train_task.name][v]["relative_accuracy"] for v in variants
        },
    }
    save_result(output, payload, tensors)
    timings.update(training=training.seconds, total=time.perf_counter() - wall)
    accuracy = {v: evaluations[train_task.name][v]["accuracy"] for v in variants}
    log.info(
        "%s on %s: stitched accuracy %s; seconds: %s",
        name,
        train_task.name,
        ", ".join(f"{v} {a:.3f}" for v, a in accuracy.items()),
        ", ".join(f"{k} {v:.2f}" for k, v in timings.items()),
    )
    return payload


def _ratio(a: float, b: float | None) -> float | None:
    return a / b if b else None


def _evaluate_task(
    task,
    lookup,
    variants,
    teacher1,
    teacher2,
    stitched,
    opts: StitchOptions,
    robust,
    device,
    own_tasks,
):
    test = load_task_split(_prepared_for(lookup, task), task, "test")
    out: dict[str, Any] = {"task": task.to_dict(), "test_images": len(test)}
    out["model1"] = classification_metrics(teacher1, test, reference=teacher2, device=device)
    out["model2"] = classification_metrics(teacher2, test, device=device)
    # The donor trained on this task normalises "relative to the task's model": model 2 whenever it
    # was trained on the task (every same-task run), model 1 on its own task in cross-task runs.
    task_model = next((m for m in ("model2", "model1") if own_tasks[m] == task.name), None)
    out["task_model"] = task_model
    for variant, model in variants.items():
        metrics: dict[str, Any] = classification_metrics(
            model, test, reference=teacher2, device=device
        )
        metrics["relative_accuracy"] = _ratio(metrics["accuracy"], out["model2"]["accuracy"])
        metrics["relative_to_task_model"] = (
            _ratio(metrics["accuracy"], out[task_model]["accuracy"]) if task_model else None
        )
        out[variant] = metrics
    if robust:
        epsilon = test.info.default_epsilon if opts.eval_epsilon is None else opts.eval_epsilon
        kwargs = dict(
            epsilon=epsilon,
            step_size=opts.eval_step_size,
            steps=opts.eval_steps,
            max_images=opts.max_robust_images,
            device=device,
            seed=opts.seed,
        )
        for key, model in [("model1", teacher1), ("model2", teacher2), *variants.items()]:
            out[key].update(robust_metrics(model, test, **kwargs))
    # Similarity to model 2's genuine activation at L2, on the first measure_images test images.
    subset = test.subset(torch.arange(min(opts.measure_images, len(test))))
    reps: dict[str, list[torch.Tensor]] = {"model1": [], "model2": [], **{v: [] for v in variants}}
    with torch.no_grad():
        for x, _ in iterate_batches(subset, 256, device=device):
            reps["model1"].append(layer_activation(teacher1, stitched.layer1, x).cpu())
            reps["model2"].append(layer_activation(teacher2, stitched.layer2, x).cpu())
            for variant, model in variants.items():
                model.eval()
                reps[variant].append(model.stitch(model.front(x)).cpu())
    acts = {k: torch.cat(v) for k, v in reps.items()}
    out["similarity"] = {
        "images": len(subset),
        "representation": "per-sample flattened (C*H*W) features",
        "model1_vs_model2": similarity(acts["model1"], acts["model2"], opts.measures),
        **{f"{v}_vs_model2": similarity(acts[v], acts["model2"], opts.measures) for v in variants},
    }
    return out
