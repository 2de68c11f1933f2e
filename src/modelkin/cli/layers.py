"""``modelkin layers MODEL``: a model's named layers, activation shapes, cut points and how
stitching would split it at each (docs/stitching.md).

MODEL is a modelkin checkpoint file or a zoo architecture name (built for
``--dataset``). This is the one place that lists layers: the error messages for
unknown layer names point here instead of listing hundreds of names.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "layers",
        help="list a model's named layers with activation shapes, cut points and how stitching "
        "would split it there",
    )
    p.add_argument("model", help="a modelkin checkpoint file, or an architecture name")
    p.add_argument(
        "--dataset",
        default="digits",
        help="input space of an architecture name (default: digits; a checkpoint has its own)",
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


def _load(model: str, dataset: str):
    from pathlib import Path

    if Path(model).is_file():
        from ..checkpoint import load_checkpoint

        return load_checkpoint(model).model
    from ..models import build_model

    return build_model(model, dataset)


def _layers(args: argparse.Namespace) -> int:
    from ..models.layers import layer_table

    model = _load(args.model, args.dataset)
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
