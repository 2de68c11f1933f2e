"""Family-tree command: ``modelkin lineage MODEL_FILES... --reference REF`` (docs/lineage.md)."""

from __future__ import annotations

import argparse
import json
import math

from .signatures import add_allow_insufficient


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lineage",
        help="families and family trees of your own checkpoints, from calibrated verdicts "
        "against the workflow's references",
        description="Each checkpoint's signature on every reference's probe, each pair's "
        "calibrated p-value against the reference's unrelated models, then the kinship graph "
        "(an edge where the Holm-combined p-value is below alpha), its families and a directed "
        "tree per family, as the workflow's lineage stage makes them.",
    )
    p.add_argument("checkpoints", nargs="+", metavar="MODEL", help="modelkin checkpoints")
    p.add_argument(
        "--reference",
        action="append",
        required=True,
        metavar="REF",
        help="a reference file of the distance stage, results/distances/METHOD_reference.json "
        "(repeatable: one per method; all of one data set)",
    )
    p.add_argument(
        "--alpha", type=float, help="edge threshold on the combined p-value (default: the "
        "schema's lineage.alpha, stricter than a single verdict's, since one false edge merges "
        "two families)",
    )  # fmt: skip
    p.add_argument(
        "-o", "--output", metavar="DIR", help="write edges.csv, families.csv and trees.png here"
    )
    p.add_argument("--device", default="auto")
    add_allow_insufficient(p, "its pairs get no p-value from that method, with a warning")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_lineage)


def _lineage(args: argparse.Namespace) -> int:
    from ..kinship.folder import folder_lineage, write_folder_lineage

    found = folder_lineage(
        args.checkpoints,
        args.reference,
        alpha=args.alpha,
        device=args.device,
        allow_insufficient_reference=args.allow_insufficient_reference,
    )
    written = write_folder_lineage(found, args.output) if args.output else []
    if args.json:
        document = found.to_dict()
        document["written"] = [str(p) for p in written]
        print(json.dumps(document, indent=2))
        return 0
    for line in describe(found):
        print(line)
    for path in written:
        print(f"wrote {path}")
    return 0


def describe(found) -> list[str]:
    """The families, the tree edges and (with a recorded lineage) the scores, as text."""
    settings = found.result.settings
    families = found.families()
    edges = found.edges()
    lines = [
        f"{len(families)} checkpoints, methods {', '.join(found.result.methods)}; an edge where "
        f"the {settings.combine}-combined p-value < {settings.alpha:g}",
        "families:",
    ]
    for name, group in families.groupby("family", sort=True):
        members = sorted(group["model"])
        if len(members) == 1:
            lines.append(f"  {name}: no relatives")
        else:
            lines.append(f"  {name} ({len(members)} models): {', '.join(members)}")
    tree = edges[edges["in_tree"].astype(bool)]
    lines.append("tree edges:" if len(tree) else "tree edges: none")
    for edge in tree.to_dict("records"):
        confidence = edge["confidence"]
        score = f"{confidence:+.2f}" if math.isfinite(confidence) else "n/a"
        evidence = edge["direction_evidence"] or "no cue"
        if edge["directed"]:
            link = f"{edge['parent']} -> {edge['child']}"
            how = f"direction decided, confidence {score}"
        else:
            link = f"{edge['model_a']} -- {edge['model_b']}"
            how = f"undirected ({edge['direction']}, score {score})"
        lines.append(
            f"  {link}   p = {edge['p_value']:.2g} ({edge['evidence'] or edge['strongest']}); "
            f"{how}: {evidence}"
        )
    others = edges[~edges["in_tree"].astype(bool)]
    for edge in others.to_dict("records"):
        lines.append(f"  ({edge['model_a']} -- {edge['model_b']}: an edge outside the tree, "
                     f"p = {edge['p_value']:.2g})")  # fmt: skip
    for method, settings_ in found.unjudged.items():
        lines.append(f"no {method} reference for setting(s) {', '.join(settings_)}")
    if found.scored:
        lines.append("against the lineage the checkpoints record:")
        for row in found.result.scores:
            if row["scope"] == "all":
                lines.append(f"  {row['metric']:<22} {row['value']:.3f}   (n = {row['n']})")
    return lines
