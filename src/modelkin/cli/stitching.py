"""Stitching commands: stitch, eval-stitch (docs/stitching.md).
Option names mirror the reference tools."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import MissingFileError

VARIANT_CHOICES = ("before", "after", "ps_inv")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stitch",
        help="stitch model A's LAYER_A into model B's LAYER_B "
        "with a trainable affine layer, train it and evaluate",
        description="Dr. Frankenstein model stitching (and robust / cross-task "
        "stitching). Options not given come from --preset, then from the "
        "reference command line's defaults (init random, hard targets, "
        "Adam lr 1e-3, 30 epochs, batch 128, weight decay 1e-4, lr /10 at "
        "1/3 and 2/3). Layer names: `modelkin layers ARCH_OR_CHECKPOINT`.",
    )
    p.add_argument("checkpoint_a", metavar="CKPT_A", help="model 1 (the front)")
    p.add_argument(
        "checkpoint_b", metavar="CKPT_B", help="model 2 (the end; its head makes the predictions)"
    )
    p.add_argument("layer_a", metavar="LAYER_A")
    p.add_argument("layer_b", metavar="LAYER_B")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="result file RUN.json (RUN.safetensors is written beside it)",
    )
    p.add_argument(
        "--preset",
        choices=("paper", "cli-default"),
        help="paper: soft_2 targets + ps_inv init (the paper's figures)",
    )
    g = p.add_argument_group("stitching layer")
    g.add_argument("-i", "--init", choices=("random", "perm", "eye", "ps_inv", "ones-zeros"))
    g.add_argument(
        "-m", "--mask", choices=("identity", "semi-match", "abs-semi-match", "random-permutation")
    )
    g.add_argument(
        "-r",
        "--low-rank",
        type=int,
        help="maximum rank of T's weight (W = w1 w2); default full rank",
    )
    g.add_argument(
        "--flatten",
        action="store_true",
        default=None,
        help="linear map on flattened C*H*W activations",
    )
    g.add_argument(
        "--resize",
        choices=("bilinear", "nearest", "area"),
        help="interpolation when spatial sizes differ",
    )
    g = p.add_argument_group("loss")
    g.add_argument(
        "--target-type", choices=("hard", "soft_1", "soft_2", "soft_12", "soft_1_plus_2")
    )
    g.add_argument("--temperature", type=float)
    g.add_argument("--l1", type=float, help="weight of mean |W|")
    g.add_argument(
        "--cka-reg", type=float, help="weight of linear CKA(model 2's activation, T's output)"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=("adam", "sgd"))
    g.add_argument("-lr", "--lr", type=float)
    g.add_argument("--momentum", type=float, help="sgd only")
    g.add_argument("-wd", "--weight-decay", type=float)
    g.add_argument("-e", "--epochs", type=int)
    g.add_argument("-b", "--batch-size", type=int)
    g.add_argument(
        "--schedule",
        choices=("thirds", "constant"),
        help="thirds: lr /10 at 1/3 and 2/3 of the steps",
    )
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--augment", action="store_true", default=None, help="the data set's training augmentation"
    )
    g.add_argument("--train-limit", type=int, help="train on the first N images only")
    g.add_argument(
        "--train-bn",
        action="store_true",
        default=None,
        help="donors in train mode while T trains (batch-norm statistics re-estimated, "
        "as the references' submission code); default: donors frozen in eval mode",
    )
    g.add_argument(
        "--no-cache",
        action="store_true",
        help="recompute the front every step (benchmarks, checks)",
    )
    g = p.add_argument_group("robust stitching")
    adv = g.add_mutually_exclusive_group()
    adv.add_argument(
        "--madry",
        action="store_true",
        help="Madry PGD adversarial examples against the stitched network",
    )
    adv.add_argument("--robust", action="store_true", help="TRADES adversarial training of T")
    g.add_argument(
        "--epsilon", type=float, help="L-inf budget in [0, 1] pixels (default: the data set's)"
    )
    g.add_argument("--step-size", type=float, help="default epsilon / 4")
    g.add_argument("--attack-steps", type=int)
    g.add_argument("--beta", type=float, help="TRADES beta (default 10)")
    g.add_argument(
        "--attack-ratio", type=float, help="fraction of each batch replaced by adversarial examples"
    )
    g.add_argument(
        "--no-random-start",
        action="store_true",
        help="PGD without a random start (the robust-stitching code)",
    )
    g = p.add_argument_group("data and evaluation")
    g.add_argument(
        "--dataset", help="task T trains on: DATASET or DATASET:TRANSFORM[,..] (default: model A's)"
    )
    g.add_argument(
        "--eval-dataset",
        action="append",
        default=[],
        help="further task to evaluate on (cross-task; repeatable)",
    )
    g.add_argument(
        "--data-dir",
        default="results/data",
        help="prepared data sets (digits is prepared here when missing)",
    )
    g.add_argument(
        "--no-pinv", action="store_true", help="skip the least-squares (ps_inv) solution"
    )
    g.add_argument(
        "--measure", action="append", help="similarity measure (repeatable; default cka and mse)"
    )
    g.add_argument("--measure-images", type=int)
    g.add_argument(
        "--robust-eval",
        choices=("auto", "yes", "no"),
        help="PGD robust accuracy (auto: with a robust donor)",
    )
    g.add_argument("--eval-epsilon", type=float)
    g.add_argument("--eval-steps", type=int)
    g.add_argument("--max-robust-images", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(handler=_stitch)

    p = subparsers.add_parser(
        "eval-stitch", help="evaluate the stitched network of a stitching result"
    )
    p.add_argument("result", help="RUN.json written by `modelkin stitch` or the workflow")
    p.add_argument(
        "variant",
        nargs="?",
        default="after",
        choices=VARIANT_CHOICES,
        help="T at init (before), trained (after) or least squares (ps_inv); default after",
    )
    p.add_argument(
        "--dataset",
        action="append",
        help="task to evaluate on (default: the run's tasks; repeatable)",
    )
    p.add_argument("--data-dir", default="results/data")
    p.add_argument("--robust", action="store_true", help="also PGD robust accuracy")
    p.add_argument("--epsilon", type=float, help="default: the data set's budget")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--max-robust-images", type=int)
    p.add_argument(
        "--checkpoints", nargs=2, metavar=("CKPT_A", "CKPT_B"), help="donor files if they moved"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_eval_stitch)


def _options(args: argparse.Namespace) -> dict:
    names = (
        "init",
        "mask",
        "low_rank",
        "flatten",
        "resize",
        "target_type",
        "temperature",
        "l1",
        "cka_reg",
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "epochs",
        "batch_size",
        "schedule",
        "seed",
        "augment",
        "train_limit",
        "train_bn",
        "epsilon",
        "step_size",
        "attack_steps",
        "attack_ratio",
        "measure_images",
        "eval_epsilon",
        "eval_steps",
        "max_robust_images",
    )
    out = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.beta is not None:
        out["trades_beta"] = args.beta
    if args.madry:
        out["adversary"] = "madry"
    if args.robust:
        out["adversary"] = "trades"
    if args.no_random_start:
        out["random_start"] = False
    if args.no_pinv:
        out["ps_inv"] = False
    if args.no_cache:
        out["cache_front"] = False
    if args.measure:
        out["measures"] = args.measure
    if args.robust_eval:
        out["robust_eval"] = {"auto": "auto", "yes": True, "no": False}[args.robust_eval]
    if args.preset:
        out["preset"] = args.preset
    return out


def _data_files(data_dir: str, datasets) -> dict[str, Path]:
    """Prepared files of ``datasets`` in ``data_dir``;
    offline data sets (digits) are prepared when missing."""
    from ..data import prepare_dataset
    from ..datasets import get_dataset_info

    out = {}
    for name in dict.fromkeys(datasets):
        path = Path(data_dir) / f"{name}.safetensors"
        if not path.exists():
            if get_dataset_info(name).source != "sklearn":
                raise MissingFileError(
                    f"prepared data set {path} does not exist; run `modelkin "
                    f"prepare-data {name} -o {path}` (or pass --data-dir)"
                )
            prepare_dataset(name, path)
        out[name] = path
    return out


def _stitch(args: argparse.Namespace) -> int:
    from ..checkpoint import read_metadata
    from ..stitching import stitch_models
    from ..stitching.tasks import parse_task, task_of_checkpoint

    train_task = (
        parse_task(args.dataset)
        if args.dataset
        else task_of_checkpoint(read_metadata(args.checkpoint_a))
    )
    eval_tasks = [parse_task(t) for t in args.eval_dataset]
    data = _data_files(args.data_dir, [t.dataset for t in [train_task, *eval_tasks]])
    payload = stitch_models(
        args.checkpoint_a,
        args.checkpoint_b,
        args.layer_a,
        args.layer_b,
        output=args.output,
        data=data,
        options=_options(args),
        train_task=train_task,
        eval_tasks=eval_tasks,
        device=args.device,
        provenance={"command": "modelkin stitch"},
    )
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    _print_summary(payload)
    print(f"result: {args.output}")
    return 0


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_summary(payload: dict) -> None:
    m1, m2 = payload["model1"], payload["model2"]
    print(
        f"{m1['name']}:{m1['layer']} -> T "
        f"({payload['geometry']['kind']}) -> {m2['name']}:{m2['layer']}"
    )
    for task, ev in payload["evaluations"].items():
        print(f"  on {task} ({ev['test_images']} test images):")
        robust = "robust_accuracy" in ev["model2"]
        header = f"    {'network':<16}{'accuracy':>10}{'relative':>10}" + (
            f"{'robust':>10}" if robust else ""
        )
        print(header)
        for key in ("model1", "model2", "before", "after", "ps_inv"):
            if key not in ev:
                continue
            row = ev[key]
            line = (
                f"    {key:<16}{_fmt(row['accuracy']):>10}{_fmt(row.get('relative_accuracy')):>10}"
            )
            if robust:
                line += f"{_fmt(row.get('robust_accuracy')):>10}"
            print(line)
        sim = ev.get("similarity", {})
        for key, values in sim.items():
            if isinstance(values, dict):
                print(f"    {key:<20} " + "  ".join(f"{m}={_fmt(v)}" for m, v in values.items()))


def _eval_stitch(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..device import resolve_device
    from ..stitching.evaluate import classification_metrics, robust_metrics
    from ..stitching.results import load_result, load_stitched
    from ..stitching.tasks import load_task_split, parse_task

    device = resolve_device(args.device)
    payload, _ = load_result(args.result, with_tensors=False)
    stitched = load_stitched(args.result, args.variant, device=device, checkpoints=args.checkpoints)
    model2 = load_checkpoint(
        args.checkpoints[1] if args.checkpoints else payload["model2"]["checkpoint"], device
    ).model
    named = {t["name"]: t for t in (ev["task"] for ev in payload["evaluations"].values())}
    tasks = [parse_task(t, named) for t in (args.dataset or list(payload["evaluations"]))]
    data = _data_files(args.data_dir, [t.dataset for t in tasks])
    out = {"result": args.result, "variant": args.variant, "tasks": {}}
    for task in tasks:
        test = load_task_split(data[task.dataset], task, "test")
        metrics: dict[str, Any] = classification_metrics(
            stitched, test, reference=model2, device=device
        )
        reference = classification_metrics(model2, test, device=device)
        metrics["model2_accuracy"] = reference["accuracy"]
        metrics["relative_accuracy"] = (
            metrics["accuracy"] / reference["accuracy"] if reference["accuracy"] else None
        )
        if args.robust:
            eps = test.info.default_epsilon if args.epsilon is None else args.epsilon
            metrics.update(
                robust_metrics(
                    stitched,
                    test,
                    epsilon=eps,
                    step_size=None,
                    steps=args.steps,
                    max_images=args.max_robust_images,
                    device=device,
                )
            )
        out["tasks"][task.name] = metrics
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    for task, m in out["tasks"].items():
        line = (
            f"{args.variant} on {task}: accuracy {m['accuracy']:.4f} (model 2: "
            f"{m['model2_accuracy']:.4f}, relative {_fmt(m['relative_accuracy'])}), "
            f"agreement with model 2 {m['agreement_with_model2']:.4f}"
        )
        if args.robust:
            line += (
                f", robust accuracy {_fmt(m['robust_accuracy'])} (eps {m['robust_epsilon']:.3g})"
            )
        print(line)
    return 0
