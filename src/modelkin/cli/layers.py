"""``modelkin layers MODEL``: a model's named layers, activation shapes, cut points and how
stitching would split it at each (docs/stitching.md).

MODEL is a modelkin checkpoint file, a zoo architecture name or a model source
(``torchvision:resnet18``, ``timm:resnet10t``, ``factory:pkg.mod:fn``), the last two built untrained
for ``--dataset``'s image size and classes. This is the one place that lists layers: the error
messages for unknown layer names point here instead of listing hundreds of names.
"""

from __future__ import annotations

import argparse
import json

from .core import add_source_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "layers",
        help="list a model's named layers with activation shapes, cut points and how stitching "
        "would split it there",
    )
    p.add_argument(
        "model",
        help="a modelkin checkpoint file, an architecture name, or a model source "
        "(torchvision:NAME, timm:NAME, [factory:]package.module:callable)",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="input space of an architecture name or model source (default: digits; a "
        "checkpoint has its own)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        help="outputs of an architecture or source (default: the data set's)",
    )
    add_source_options(
        p,
        input_size="default: the data set's image size",
        channels="the data set's, or the network's first layer's when it takes another number",
    )
    p.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="input shape to run the model on (default: the model's in_shape)",
    )
    p.add_argument(
        "--cut-points", action="store_true", help="only layers where a model can be split"
    )
    p.add_argument("--json", action="store_true", help="print the table as a JSON list")
    p.set_defaults(handler=_layers)


def _load(args: argparse.Namespace):
    from pathlib import Path

    from ..errors import InputError
    from ..models.sources import is_external

    model = args.model
    if Path(model).is_file():
        from ..checkpoint import load_checkpoint

        return load_checkpoint(model).model
    if is_external(model):
        return _external(args)
    given = [
        f"--{k.replace('_', '-')}"
        for k in ("kwargs", "input_size", "channels")
        if getattr(args, k) is not None
    ]
    if given:
        raise InputError(
            f"{', '.join(given)} only apply to a model source (torchvision:NAME, timm:NAME or "
            f"package.module:callable); {model!r} is a zoo architecture"
        )
    from ..models import build_model

    return build_model(model, args.dataset, args.num_classes)


def _external(args: argparse.Namespace):
    """A model source built untrained for the data set's image size and classes (no download).

    A network whose first layer takes another number of channels than the data set's images
    (torchvision's resnet18 and the 1-channel digits) is listed on images of its own channel
    count, with a note, unless ``--channels`` is given: its layers do not depend on it."""
    import sys

    from torch import nn

    from ..datasets import DATASETS
    from ..errors import InputError
    from ..models.external import ExternalModel, build_external, check_input_fits
    from ..models.preprocessing import Preprocessing
    from .core import kwargs_argument

    info = DATASETS.get(args.dataset)
    num_classes = args.num_classes or (info.num_classes if info is not None else None)
    if num_classes is None:
        raise InputError(
            f"data set {args.dataset!r} is not one modelkin knows; give --num-classes (and "
            "--input-size) or a data set it knows"
        )
    image_size = tuple(info.shape[1:]) if info is not None else None
    channels = args.channels or (info.shape[0] if info is not None else 3)
    kwargs = kwargs_argument(args.kwargs)
    input_size = (int(args.input_size[0]), int(args.input_size[1])) if args.input_size else None
    pre = Preprocessing(input_size=input_size, channels=channels)
    model = build_external(args.model, num_classes, pre, kwargs, image_size=image_size, check=False)
    first = next((m for m in model.net.modules() if isinstance(m, nn.Conv2d)), None)
    if args.channels is None and first is not None and first.in_channels != channels:
        pre = Preprocessing(input_size=input_size, channels=first.in_channels)
        print(
            f"note: {model.source} takes {first.in_channels}-channel images, {args.dataset} has "
            f"{channels}-channel ones; listing its layers on {first.in_channels}-channel images "
            "(import it with --channels and a matching data set to compare it)",
            file=sys.stderr,
        )
        model = ExternalModel(
            model.net,
            source=model.source,
            num_classes=num_classes,
            preprocessing=pre,
            in_shape=pre.in_shape(image_size),
            source_kwargs=kwargs,
            data_shape=(pre.channels, *image_size) if image_size is not None else None,
        ).eval()
    check_input_fits(model.net, model.source, pre.in_shape(image_size), num_classes)
    return model


def _layers(args: argparse.Namespace) -> int:
    from ..models.layers import layer_table

    model = _load(args)
    rows = [
        row for row in layer_table(model, args.input_shape) if row.cut_point or not args.cut_points
    ]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "type": r.kind,
                        "shape": list(r.shape),
                        "cut_point": r.cut_point,
                        "stitching_end": r.end,
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
        return 0
    if not rows:
        print("no layers" + (" that are cut points" if args.cut_points else ""))
        return 0
    name_w = max(5, *(len(r.name) for r in rows))
    kind_w = max(4, *(len(r.kind) for r in rows))
    shape_w = max(5, *(len(str(tuple(r.shape))) for r in rows))
    print(
        f"{'layer':<{name_w}}  {'type':<{kind_w}}  {'shape':<{shape_w}}  cut point  stitching end"
    )
    for r in rows:
        print(
            f"{r.name:<{name_w}}  {r.kind:<{kind_w}}  {str(tuple(r.shape)):<{shape_w}}  "
            f"{'yes' if r.cut_point else 'no':<9}  {_end(r.end)}"
        )
    return 0


def _end(text: str) -> str:
    """``torch.fx split: layer X is a cut point of M`` -> ``fx split``; the reason only when the
    whole model has to run (the column would repeat the layer name otherwise)."""
    mode, _, reason = text.partition(": ")
    if mode == "torch.fx split":
        return "fx split"
    if " is not a cut point " in reason:
        return "whole model (skip connection)"
    return f"whole model ({reason})"
