"""Foundation commands: prepare-data, train, evaluate, import-checkpoint, info, inspect (layers: see
``layers.py``)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare-data", help="prepare a data set (download torchvision ones into --data-root)"
    )
    p.add_argument("dataset")
    p.add_argument("-o", "--output", help="default: results/data/DATASET.safetensors")
    p.add_argument("--data-root", default="data")
    p.set_defaults(handler=_prepare_data)

    p = subparsers.add_parser("train", help="train one model and write its checkpoint")
    p.add_argument("--data", required=True, help="prepared data set file (see prepare-data)")
    p.add_argument("--arch", required=True)
    p.add_argument("--algorithm", default="standard", help="a name recorded in the checkpoint")
    p.add_argument(
        "--recipe",
        default="{}",
        help='JSON training settings, e.g. \'{"epochs": 5, "adversary": "madry"}\'',
    )
    p.add_argument("--init-seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=_train)

    p = subparsers.add_parser("evaluate", help="clean and PGD robust accuracy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="prepared data set file")
    p.add_argument("--epsilon", type=float)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="write the metrics JSON here")
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "import-checkpoint", help="wrap a plain PyTorch state dict as a modelkin checkpoint"
    )
    p.add_argument("state_dict", help=".pt/.pth (read with weights_only=True) or .safetensors")
    p.add_argument("--arch", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--num-classes", type=int)
    norm = p.add_mutually_exclusive_group()
    norm.add_argument(
        "--mean",
        type=float,
        nargs="+",
        help="per-channel mean the model's own pipeline subtracts from [0, 1] images (with --std; "
        "default: the data set's statistics)",
    )
    norm.add_argument(
        "--no-normalisation",
        action="store_true",
        help="the model takes [0, 1] images as they are (no mean/std)",
    )
    p.add_argument("--std", type=float, nargs="+", help="per-channel std (with --mean)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=_import_checkpoint)

    p = subparsers.add_parser("info", help="print a checkpoint's metadata as JSON")
    p.add_argument("checkpoint")
    p.set_defaults(handler=_info)

    p = subparsers.add_parser(
        "inspect",
        help="print an HDF5 artifact's tree, attributes "
        "and provenance (or a checkpoint's metadata)",
    )
    p.add_argument("file")
    p.set_defaults(handler=_inspect)


def _prepare_data(args: argparse.Namespace) -> int:
    from ..data import prepare_dataset
    from ..datasets import prepared_path

    out = prepare_dataset(
        args.dataset,
        args.output or prepared_path("results", args.dataset),
        data_root=args.data_root,
    )
    print(out)
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..config import validate_recipe
    from ..errors import InputError
    from ..train import train_checkpoint

    try:
        recipe = json.loads(args.recipe)
    except json.JSONDecodeError as err:
        raise InputError(
            f"--recipe is not valid JSON ({err.msg} at column {err.colno}); "
            'write it like \'{"epochs": 5, "adversary": "madry"}\''
        ) from None
    out = train_checkpoint(
        args.output,
        prepared=args.data,
        arch=args.arch,
        algorithm=args.algorithm,
        recipe=validate_recipe(recipe, "--recipe"),
        init_seed=args.init_seed,
        data_seed=args.data_seed,
        device=args.device,
    )
    print(out)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_split
    from ..evaluate import evaluate_model
    from ..io import write_json

    ckpt = load_checkpoint(args.checkpoint, "cpu")
    metrics = evaluate_model(
        ckpt.model,
        load_split(args.data, "test"),
        epsilon=args.epsilon,
        steps=args.steps,
        device=args.device,
    )
    if args.output:
        write_json(args.output, metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def _import_checkpoint(args: argparse.Namespace) -> int:
    from ..checkpoint import import_state_dict, save_checkpoint

    ckpt = import_state_dict(
        args.state_dict,
        args.arch,
        args.dataset,
        args.num_classes,
        normalisation=_normalisation_argument(args),
    )
    print(save_checkpoint(args.output, ckpt.model, ckpt.meta))
    return 0


def _normalisation_argument(args: argparse.Namespace):
    """--mean/--std or --no-normalisation as a Normalisation (None: the data set's)."""
    from ..errors import InputError
    from ..models.normalisation import Normalisation

    if args.no_normalisation:
        if args.std is not None:
            raise InputError("--no-normalisation takes no --std; give one or the other")
        return Normalisation.none()
    if (args.mean is None) != (args.std is None):
        raise InputError(
            "give --mean and --std together (one value, or one per channel), or "
            "--no-normalisation, or neither for the data set's statistics"
        )
    if args.mean is None:
        return None
    return Normalisation.of(args.mean, args.std)


def _info(args: argparse.Namespace) -> int:
    from ..checkpoint import read_metadata

    meta = read_metadata(args.checkpoint)
    meta.pop("history", None)
    print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from ..inspect import describe

    for line in describe(args.file):
        print(line)
    return 0
