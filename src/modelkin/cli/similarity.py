"""Representational similarity commands: compare-layers (docs/similarity.md)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-layers",
        help="layer-by-layer representational similarity (CKA, "
        "CCA, ...) of two checkpoints on a probe set",
        description="Compares every chosen layer of model A with every chosen layer of model B "
        "on the first --images images of a prepared split and prints one layer x layer "
        "table per measure. Layers: 'relu' (ReLU outputs that are cut points, the default), "
        "'cut', 'all' or comma-separated names (see `modelkin layers CHECKPOINT`).",
    )
    p.add_argument("checkpoint_a", metavar="CKPT_A")
    p.add_argument("checkpoint_b", metavar="CKPT_B")
    p.add_argument("--data", required=True, help="prepared data set file (modelkin prepare-data)")
    p.add_argument(
        "--layers-a",
        default="relu",
        help="relu, cut, all or comma-separated layer names (default relu)",
    )
    p.add_argument("--layers-b", help="as --layers-a (default: the same as --layers-a)")
    p.add_argument(
        "--measures",
        default="cka,cca",
        help="comma-separated measure names (default cka,cca); see --list-measures",
    )
    p.add_argument(
        "--images",
        type=int,
        default=500,
        help="probe images: the first N of the split (default 500)",
    )
    p.add_argument(
        "--split", choices=("train", "test"), default="test", help="probe split (default test)"
    )
    p.add_argument(
        "--conv-mode",
        choices=("flatten", "spatial"),
        default="flatten",
        help="conv activations as (N, C*H*W) or (N*H*W, C) matrices (default flatten)",
    )
    p.add_argument(
        "--max-spatial-samples",
        type=int,
        help="spatial mode: keep this many (image, position) rows",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the spatial subsample (default 0)")
    p.add_argument(
        "--degenerate",
        choices=("nan", "flag"),
        default="nan",
        help="degenerate CCA values (more directions than "
        "samples): record NaN (default) or keep, flagged",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="write the long table (CSV) here")
    p.add_argument("--heatmap", help="write layer x layer heatmaps (PNG) here")
    p.add_argument(
        "--list-measures",
        action="store_true",
        help="list the measures with their direction and exit",
    )
    p.set_defaults(handler=_compare_layers)


def _layers(value: str):
    from ..similarity import LAYER_SELECTORS

    if value in LAYER_SELECTORS:
        return value
    return [name.strip() for name in value.split(",") if name.strip()]


def _compare_layers(args: argparse.Namespace) -> int:
    from ..similarity import (
        compare_checkpoints_layers,
        format_layer_tables,
        plot_layer_heatmaps,
        write_table,
    )

    if args.list_measures:
        from ..measures import REGISTRY

        for info in REGISTRY.values():
            direction = "higher = more alike" if info.higher_is_similar else "lower = more alike"
            print(f"{info.name:<14} {direction:<20} {info.description}")
        return 0
    table = compare_checkpoints_layers(
        args.checkpoint_a,
        args.checkpoint_b,
        args.data,
        _layers(args.layers_a),
        _layers(args.layers_b or args.layers_a),
        [m.strip() for m in args.measures.split(",") if m.strip()],
        args.images,
        args.split,
        conv_mode=args.conv_mode,
        batch_size=args.batch_size,
        device=args.device,
        max_spatial_samples=args.max_spatial_samples,
        seed=args.seed,
        degenerate=args.degenerate,
    )
    print(format_layer_tables(table))
    if args.output:
        print(f"table: {write_table(table, args.output)}")
    if args.heatmap:
        print(f"heatmaps: {plot_layer_heatmaps(table, args.heatmap)}")
    return 0
