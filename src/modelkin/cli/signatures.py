"""Signature commands: probe, signature, distance, compare (docs/model-distance.md)."""

from __future__ import annotations

import argparse
import json

METHODS = ("zest", "gradfield")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "probe",
        help="make a probe file (the fixed inputs every compared model sees) from a prepared data set",
        description="Zest: the first N images with superpixels and masks. gradfield: the first N images as reference "
        "points (the workflow additionally selects them among candidates with independent models).",
    )
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--data", required=True, help="prepared data set file (modelkin prepare-data)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--n-images", type=int, help="zest: reference images (default 128)")
    p.add_argument("--n-samples", type=int, help="zest: perturbations per image (default 1000)")
    p.add_argument(
        "--kernel-size",
        type=float,
        help="zest: quickshift kernel size (default 4; the workflow uses 3 on digits)",
    )
    p.add_argument("--seed", type=int, help="zest: mask seed (default 0)")
    p.add_argument("--n-points", type=int, help="gradfield: reference points (default 128)")
    p.set_defaults(handler=_probe)

    p = subparsers.add_parser(
        "signature", help="compute a model's Zest or gradient-field signature on a probe"
    )
    p.add_argument("checkpoint", metavar="MODEL", help="modelkin checkpoint (.safetensors)")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument(
        "--probe",
        required=True,
        help="probe file, or 'auto' to make one from --data beside the output",
    )
    p.add_argument("--data", help="prepared data set (needed with --probe auto)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument(
        "--target",
        choices=("argmax", "label"),
        help="gradfield: logit of the model's prediction or the true label",
    )
    p.add_argument("--n-steps", type=int, help="gradfield: path steps (default 50)")
    p.add_argument("--chunk-size", type=int, help="images per forward pass (memory only)")
    p.add_argument("--device", default="auto")
    p.set_defaults(handler=_signature)

    p = subparsers.add_parser(
        "distance",
        help="distances between two signature files (every metric of the method by default)",
    )
    p.add_argument("signature_a")
    p.add_argument("signature_b")
    p.add_argument(
        "--metric", action="append", help="only this metric (repeatable), e.g. --metric cos"
    )
    p.add_argument(
        "--reference",
        help="reference JSON or distance CSV of the workflow: also print normalised distances",
    )
    p.add_argument(
        "--setting",
        help="reference setting DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM (default: from the signatures)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="normalised distance below which a pair is 'related' (default: the reference's, 1.0)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_distance)

    p = subparsers.add_parser(
        "compare",
        help="compare two checkpoints: probe, both signatures and distances in one go (optionally with a verdict)",
    )
    p.add_argument("checkpoint_a")
    p.add_argument("checkpoint_b")
    p.add_argument("--method", default="zest", choices=METHODS)
    p.add_argument(
        "--data",
        help="prepared data set (default: results/data/DATASET.safetensors; digits is prepared on the fly)",
    )
    p.add_argument(
        "--probe",
        help="use this probe file instead of making one (the workflow's, to match its references)",
    )
    p.add_argument(
        "--reference",
        help="reference JSON (results/distances/METHOD_reference.json) or distance CSV",
    )
    p.add_argument(
        "--setting",
        help="reference setting DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM (default: from the checkpoints)",
    )
    p.add_argument(
        "--threshold", type=float, help="normalised distance below which a pair is 'related'"
    )
    p.add_argument("--metric", action="append", help="only this metric (repeatable)")
    p.add_argument("--n-images", type=int, help="zest probe: reference images (default 128)")
    p.add_argument(
        "--n-samples", type=int, help="zest probe: perturbations per image (default 1000)"
    )
    p.add_argument("--n-points", type=int, help="gradfield probe: reference points (default 128)")
    p.add_argument("--keep", metavar="DIR", help="keep the probe and signatures in DIR")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_compare)


def _probe_options(args: argparse.Namespace) -> dict:
    if args.method == "zest":
        return {
            "split": getattr(args, "split", None),
            "n_images": args.n_images,
            "n_samples": args.n_samples,
            "kernel_size": getattr(args, "kernel_size", None),
            "seed": getattr(args, "seed", None),
        }
    return {
        "split": getattr(args, "split", None),
        "n_points": args.n_points if args.n_points is not None else 128,
    }


def _probe(args: argparse.Namespace) -> int:
    from ..distances import make_probe

    print(make_probe(args.method, args.data, args.output, **_probe_options(args)))
    return 0


def _signature(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..distances import make_probe, make_signature

    probe = args.probe
    if probe == "auto":
        if not args.data:
            raise ValueError(
                "--probe auto needs --data PREPARED (the prepared data set to draw the probe from)"
            )
        probe = Path(args.output).with_name(f"{Path(args.output).stem}.{args.method}_probe.h5")
        options = {"n_points": 128} if args.method == "gradfield" else {}
        make_probe(args.method, args.data, probe, **options)
        print(f"probe: {probe}")
    options = {"chunk_size": args.chunk_size}
    if args.method == "gradfield":
        options.update(target=args.target, n_steps=args.n_steps)
    elif args.target or args.n_steps:
        raise ValueError("--target and --n-steps apply to --method gradfield only")
    print(
        make_signature(
            args.method, args.checkpoint, probe, args.output, device=args.device, **options
        )
    )
    return 0


def _distance(args: argparse.Namespace) -> int:
    from ..distances import get_distance, load_reference, signature_distances
    from ..distances.compare import normalise_distances
    from ..distances.reference import Setting
    from ..signatures import read_signature

    a, b = read_signature(args.signature_a), read_signature(args.signature_b)
    distances = signature_distances(a, b, args.metric)
    normalised = {}
    key = None
    if args.reference:
        setting = args.setting
        if setting is None:
            ma, mb = a.model, b.model
            setting = Setting.of(
                ma.get("dataset", "?"),
                ma.get("arch", "?"),
                ma.get("algorithm", "imported"),
                mb.get("arch", "?"),
                mb.get("algorithm", "imported"),
            ).key
        key, refs, document = load_reference(args.reference, a.method, setting)
        dataset = Setting.from_key(key).dataset
        expected = (document.get("probe_sha256") or {}).get(dataset)
        if expected and expected != a.probe_sha256:
            raise ValueError(
                f"the reference in {args.reference} was computed on another probe (sha256 {expected[:12]}) than these "
                f"signatures ({a.probe_sha256[:12]}); compute them on the workflow's probe"
            )
        threshold = (
            args.threshold if args.threshold is not None else float(document.get("threshold", 1.0))
        )
        normalised = normalise_distances(distances, refs, a.method, threshold)
    if args.json:
        print(
            json.dumps(
                {
                    "method": a.method,
                    "a": str(args.signature_a),
                    "b": str(args.signature_b),
                    "distances": distances,
                    "setting": key,
                    "normalised": {m: vars(n) for m, n in normalised.items()},
                },
                indent=2,
            )
        )
        return 0
    print(f"{a.method} distances between {a.name} and {b.name}:")
    for metric, value in distances.items():
        info = get_distance(a.method, metric)
        print(
            f"  {metric:<13} {value:.6g}   (range {info.range[0]:g}..{info.range[1]:g}, lower = more alike)"
        )
    if normalised:
        print(f"against the reference of setting {key}:")
        for n in normalised.values():
            print("  " + n.describe())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..distances import compare_checkpoints

    probe_options = {k: v for k, v in _probe_options(args).items() if v is not None}
    comparison = compare_checkpoints(
        args.checkpoint_a,
        args.checkpoint_b,
        method=args.method,
        data=args.data,
        probe=args.probe,
        reference=args.reference,
        setting=args.setting,
        threshold=args.threshold,
        metrics=args.metric,
        device=args.device,
        workdir=args.keep,
        probe_options=probe_options,
    )
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else comparison.describe())
    return 0
