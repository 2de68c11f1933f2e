"""Signature commands: probe, signature, distance, compare (docs/model-distance.md)."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError
from ..signatures.plan import default_settings
from ..signatures.registry import METHODS, get_method


def _add_settings(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a {what} setting of the method (repeatable; VALUE in YAML), e.g. n_images=128; "
        "the keys are those of the method's config section (docs/signatures.md)",
    )


def _parse_settings(items: list[str], method: str, part: str) -> dict:
    """``KEY=VALUE`` items as settings of ``method``'s ``part`` (probe or signature)."""
    import yaml

    entry = get_method(method)
    allowed = {"probe": entry.probe_keys, "signature": entry.signature_keys}[part]
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r} is not KEY=VALUE")
        out[key] = yaml.safe_load(value)
    # A method whose probe settings are one nested section (ModelGiF's candidates) takes its keys.
    nested = [k for k in allowed if k not in out and len(allowed) == 1]
    if nested and out and not set(out) & set(allowed):
        out = {nested[0]: out}
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise InputError(
            f"{method} has no {part} setting(s) {', '.join(unknown)}; its {part} settings: "
            f"{', '.join(allowed) or 'none'}"
        )
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "probe",
        help="make a probe file (the fixed inputs every "
        "compared model sees) from a prepared data set",
        description="Zest: the first N images with superpixels and masks. "
        "gradfield: the first N images as candidate reference points "
        "(the workflow selects among them with independent models).",
    )
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument("--data", required=True, help="prepared data set file (modelkin prepare-data)")
    p.add_argument("-o", "--output", required=True)
    _add_settings(p, "probe")
    p.set_defaults(handler=_probe)

    p = subparsers.add_parser(
        "signature", help="compute a model's signature (on a probe, for the methods that read one)"
    )
    p.add_argument("checkpoint", metavar="MODEL", help="modelkin checkpoint (.safetensors)")
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument(
        "--probe",
        help="probe file, or 'auto' to make one from --data beside the output (not for a "
        "method that reads none, e.g. weights)",
    )
    p.add_argument("--data", help="prepared data set (needed with --probe auto)")
    p.add_argument("-o", "--output", required=True)
    _add_settings(p, "signature")
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
        help="the workflow's results/distances/METHOD_reference.json: also print normalised "
        "distances, p-values and calibrated verdicts",
    )
    p.add_argument(
        "--setting",
        help="reference setting DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM "
        "(default: from the signatures' lineage)",
    )
    add_allow_insufficient(p, "print the distances with a warning and no verdict")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_distance)

    p = subparsers.add_parser(
        "compare",
        help="compare two checkpoints: probe, both signatures "
        "and distances in one go (optionally with a verdict)",
    )
    p.add_argument("checkpoint_a")
    p.add_argument("checkpoint_b")
    p.add_argument("--method", default="zest", choices=list(METHODS))
    p.add_argument(
        "--data",
        help="prepared data set (default: results/data/DATASET.safetensors; "
        "digits is prepared on the fly)",
    )
    p.add_argument(
        "--probe",
        help="use this probe file (default with --reference: the reference's own probe; "
        "without: one made from --data)",
    )
    p.add_argument(
        "--reference",
        help="the workflow's results/distances/METHOD_reference.json: calibrated verdicts "
        "(p-value at the reference's alpha) against its unrelated models",
    )
    p.add_argument(
        "--setting",
        help="reference setting DATASET:ARCH/ALGORITHM~ARCH/ALGORITHM "
        "(default: from the checkpoints' lineage)",
    )
    p.add_argument("--metric", action="append", help="only this metric (repeatable)")
    _add_settings(p, "probe")
    p.add_argument("--keep", metavar="DIR", help="keep the probe and signatures in DIR")
    p.add_argument("--device", default="auto")
    add_allow_insufficient(p, "print the distances with a warning and no verdict")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_compare)


def add_allow_insufficient(parser: argparse.ArgumentParser, effect: str) -> None:
    """The ``--allow-insufficient-reference`` flag of the commands that read references."""
    parser.add_argument(
        "--allow-insufficient-reference",
        action="store_true",
        help=f"with a reference whose setting rests on too few independent models: {effect} "
        "(without it, such a reference is refused)",
    )


def _probe(args: argparse.Namespace) -> int:
    from ..distances import make_probe

    settings = {
        **default_settings(args.method, "probe"),
        **_parse_settings(args.set, args.method, "probe"),
    }
    print(make_probe(args.method, args.data, args.output, **settings))
    return 0


def _signature(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..distances import make_probe, make_signature

    options = {
        "chunk_size": args.chunk_size,
        **default_settings(args.method, "signature"),
        **_parse_settings(args.set, args.method, "signature"),
    }
    probe = args.probe
    made = None
    if probe == "auto":
        if not args.data:
            raise InputError(
                "--probe auto needs --data PREPARED (the prepared data set to draw the probe from)"
            )
        probe = Path(args.output).with_name(f"{Path(args.output).stem}.{args.method}_probe.h5")
        made = None if probe.exists() else probe
        make_probe(args.method, args.data, probe, **default_settings(args.method, "probe"))
        print(f"probe: {probe}")
    try:
        out = make_signature(
            args.method, args.checkpoint, probe, args.output, device=args.device, **options
        )
    except BaseException:
        if made is not None:  # a failed command leaves nothing behind
            made.unlink(missing_ok=True)
        raise
    print(out)
    return 0


def _distance(args: argparse.Namespace) -> int:
    from ..distances import signature_distances
    from ..distances.verdicts import describe_verdicts, load_reference, verdicts
    from ..signatures import read_signature

    a, b = read_signature(args.signature_a), read_signature(args.signature_b)
    distances = signature_distances(a, b, args.metric)
    judged: dict = {}
    key = None
    held_out = None
    if args.reference:
        reference = load_reference(args.reference, a.method)
        key, judged = verdicts(
            a,
            b,
            distances,
            reference,
            args.setting,
            allow_insufficient=args.allow_insufficient_reference,
        )
        held_out = reference.held_out(key).get("both")
    if args.json:
        document = {
            "method": a.method,
            "a": str(args.signature_a),
            "b": str(args.signature_b),
            "distances": distances,
            "setting": key,
            "verdicts": {m: vars(v) for m, v in judged.items()},
            "held_out": held_out.to_dict() if held_out else None,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"{a.method} distances between {a.name} and {b.name}:")
    for metric, value in distances.items():
        info = get_method(a.method).distance(metric)
        print(
            f"  {metric:<13} {value:.6g}   (range "
            f"{info.range[0]:g}..{info.range[1]:g}, lower = more alike)"
        )
    if judged:
        headline = get_method(a.method).headline.metric
        for line in describe_verdicts(str(key), judged, headline, held_out):
            print(line)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..distances import compare_checkpoints

    probe_options = {
        **default_settings(args.method, "probe"),
        **_parse_settings(args.set, args.method, "probe"),
    }
    comparison = compare_checkpoints(
        args.checkpoint_a,
        args.checkpoint_b,
        method=args.method,
        data=args.data,
        probe=args.probe,
        reference=args.reference,
        setting=args.setting,
        metrics=args.metric,
        device=args.device,
        workdir=args.keep,
        probe_options=probe_options,
        allow_insufficient_reference=args.allow_insufficient_reference,
    )
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else comparison.describe())
    return 0
