"""Foundation commands: prepare-data, export-digits-folder, train, evaluate, import-checkpoint,
info, inspect (layers: see ``layers.py``)."""

from __future__ import annotations

import argparse
import json

from ..models.preprocessing import VALUE_RANGES as VALUE_RANGE_CHOICES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare-data", help="prepare a data set (download torchvision ones into --data-root)"
    )
    p.add_argument("dataset")
    p.add_argument("-o", "--output", help="default: results/data/DATASET.safetensors")
    p.add_argument("--data-root", default="data")
    p.add_argument(
        "--config",
        help="workflow config whose datasets: section defines DATASET (a user data set); "
        "its data_root and results then replace the defaults",
    )
    p.set_defaults(handler=_prepare_data)

    p = subparsers.add_parser(
        "export-digits-folder",
        help="write the built-in digits data set as an image folder (OUT/train/<digit>/*.png, "
        "OUT/test/<digit>/*.png): offline example data for the config's datasets: section",
    )
    p.add_argument("out", help="a new (or empty) directory")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1: L, 3: RGB")
    p.set_defaults(handler=_export_digits_folder)

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
        "import-checkpoint",
        help="wrap a plain PyTorch state dict (a zoo architecture's, or a torchvision, timm or "
        "own network's) as a modelkin checkpoint",
    )
    p.add_argument("state_dict", help=".pt/.pth (read with weights_only=True) or .safetensors")
    p.add_argument(
        "--arch",
        required=True,
        help="a zoo architecture (resnet20_w1), or a model source: torchvision:NAME, timm:NAME "
        "(pip install 'modelkin[timm]'), or [factory:]package.module:callable (imports and runs "
        "your code); sources are built untrained, never downloaded",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="the data set the model is bound to (a model source may name your own data set)",
    )
    p.add_argument("--num-classes", type=int, help="default: the data set's")
    add_source_options(
        p,
        input_size="images are resized to it; default: as given",
        channels="the data set's, else 3",
    )
    p.add_argument(
        "--value-range",
        choices=sorted(VALUE_RANGE_CHOICES),
        help="the range a model source's pipeline scaled pixels to before normalising "
        "(default 0-1); --mean/--std are in its units",
    )
    norm = p.add_mutually_exclusive_group()
    norm.add_argument(
        "--mean",
        type=float,
        nargs="+",
        help="per-channel mean the model's own pipeline subtracts from [0, 1] images (with --std; "
        "default: the data set's statistics; a model source needs it or --no-normalisation)",
    )
    norm.add_argument(
        "--no-normalisation",
        action="store_true",
        help="the model takes [0, 1] images as they are (no mean/std)",
    )
    p.add_argument("--std", type=float, nargs="+", help="per-channel std (with --mean)")
    p.add_argument(
        "--class-names", nargs="+", metavar="NAME", help="one name per class, in output order"
    )
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


def add_source_options(p: argparse.ArgumentParser, *, input_size: str, channels: str) -> None:
    """``--kwargs``, ``--input-size`` and ``--channels``: how a model source is built (shared by
    every command that builds one; ``input_size`` and ``channels`` end their help)."""
    p.add_argument(
        "--kwargs",
        help="JSON keyword arguments for a model source, e.g. '{\"image_size\": 32}'",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help=f"a model source's input size ({input_size})",
    )
    p.add_argument(
        "--channels", type=int, help=f"a model source's input channels (default: {channels})"
    )


def _prepare_data(args: argparse.Namespace) -> int:
    from ..data import prepare_dataset
    from ..datasets import prepared_path

    results, data_root = "results", args.data_root
    if args.config:
        from ..config import load_config

        config = load_config(args.config)  # registers its datasets: section
        results, data_root = config["results"], config["data_root"]
    out = prepare_dataset(
        args.dataset,
        args.output or prepared_path(results, args.dataset),
        data_root=data_root,
    )
    print(out)
    return 0


def _export_digits_folder(args: argparse.Namespace) -> int:
    from ..data_sources.digits_folder import write_digits_image_folder

    print(write_digits_image_folder(args.out, channels=args.channels))
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
    from ..errors import InputError
    from ..models.sources import is_external

    if is_external(args.arch):
        ckpt = _import_external(args)
    else:
        given = [
            f"--{k.replace('_', '-')}"
            for k in ("kwargs", "input_size", "channels", "value_range")
            if getattr(args, k) is not None
        ]
        if given:
            raise InputError(
                f"{', '.join(given)} only apply to a model source (--arch torchvision:NAME, "
                f"timm:NAME or package.module:callable); {args.arch!r} is a zoo architecture, "
                "which takes its data set's images as they are"
            )
        extra = {"class_names": list(args.class_names)} if args.class_names else None
        ckpt = import_state_dict(
            args.state_dict,
            args.arch,
            args.dataset,
            args.num_classes,
            meta=extra,
            normalisation=_normalisation_argument(args),
        )
        if args.class_names and len(args.class_names) != ckpt.meta["num_classes"]:
            raise InputError(
                f"{len(args.class_names)} class names given for a model with "
                f"{ckpt.meta['num_classes']} classes; give one name per class"
            )
    print(save_checkpoint(args.output, ckpt.model, ckpt.meta))
    return 0


def _import_external(args: argparse.Namespace):
    """import-checkpoint for a model source: the preprocessing from the options, and defaults
    from the data set where modelkin knows it."""
    from ..checkpoint import import_external
    from ..datasets import DATASETS
    from ..errors import InputError
    from ..models.preprocessing import Preprocessing, parse_value_range

    info = DATASETS.get(args.dataset)
    num_classes = args.num_classes or (info.num_classes if info is not None else None)
    if num_classes is None:
        raise InputError(f"data set {args.dataset!r} is not one modelkin knows; give --num-classes")
    normalisation = _normalisation_argument(args)
    if normalisation is None:
        raise InputError(
            f"give the normalisation {args.arch} was trained with: --mean and --std (in the "
            "value range's units, e.g. ImageNet's --mean 0.485 0.456 0.406 --std 0.229 0.224 "
            "0.225), or --no-normalisation"
        )
    kwargs = kwargs_argument(args.kwargs)
    preprocessing = Preprocessing(
        input_size=tuple(args.input_size) if args.input_size else None,
        channels=args.channels or (info.shape[0] if info is not None else 3),
        value_range=parse_value_range(args.value_range or "0-1"),
        normalisation=normalisation,
    )
    return import_external(
        args.arch,
        args.state_dict,
        num_classes,
        preprocessing,
        kwargs,
        dataset=args.dataset,
        class_names=args.class_names,
    )


def kwargs_argument(text: str | None) -> dict:
    """--kwargs as a dict (a JSON object; {} when not given)."""
    from ..errors import InputError

    if text is None:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"--kwargs is not valid JSON ({err.msg} at column {err.colno}); write it like "
            '\'{"image_size": 32, "patch_size": 8}\''
        ) from None
    if not isinstance(kwargs, dict):
        raise InputError(f"--kwargs must be a JSON object, got {text!r}")
    return kwargs


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
