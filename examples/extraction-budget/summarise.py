"""Per attack variant of the extraction-budget study: how often each method finds the victim.

    python examples/extraction-budget/summarise.py RESULTS [--alpha 0.01] [--strict 0.0001]

RESULTS is the study's results folder (examples/extraction-budget/config.yaml). For every
derivation name (one attack variant, 8 students) and every distance table of RESULTS/distances/,
the share of students whose pair with their own victim is called related at ``--alpha`` (the
verdicts' false-positive rate) and at ``--strict`` (the family trees' edge threshold), the median
and largest p-value and the median normalised distance (the headline metric of each method,
ranked null); then each variant's fidelity (the share of the test images where a student
predicts its victim's class) and test accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from modelkin.checkpoint import load_checkpoint
from modelkin.data import load_split
from modelkin.ids import DerivedId, checkpoint_path, parse_model_id
from modelkin.signatures import get_method


def victim_pairs(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each student's row with its own victim (its parent): derivation, student, p, normalised."""
    rows = []
    for a, b, p, normalised in zip(
        table.model_a, table.model_b, table[f"{metric}_p_value"], table[f"{metric}_normalised"],
        strict=True,
    ):  # fmt: skip
        for student, victim in ((a, b), (b, a)):
            model = parse_model_id(student)
            if isinstance(model, DerivedId) and str(model.parent) == victim:
                rows.append((model.derivation, student, p, normalised))
    return pd.DataFrame(rows, columns=["derivation", "student", "p_value", "normalised"])


def detection(results: Path, alpha: float, strict: float) -> pd.DataFrame:
    frames = []
    for path in sorted((results / "distances").glob("*.csv")):
        method = path.stem
        metric = get_method(method).headline.metric
        pairs = victim_pairs(pd.read_csv(path), metric)
        summary = pairs.groupby("derivation").agg(
            n=("p_value", "size"),
            tpr_alpha=("p_value", lambda p: (p < alpha).mean()),
            tpr_strict=("p_value", lambda p: (p < strict).mean()),
            median_p=("p_value", "median"),
            max_p=("p_value", "max"),
            normalised=("normalised", "median"),
        )
        summary.insert(0, "method", f"{method} ({metric})")
        frames.append(summary.reset_index())
    return pd.concat(frames, ignore_index=True)


@torch.no_grad()
def fidelity(results: Path) -> pd.DataFrame:
    test = load_split(results / "data" / "digits.safetensors", "test")
    predictions: dict[str, torch.Tensor] = {}

    def predict(model: str) -> torch.Tensor:
        if model not in predictions:
            network = load_checkpoint(checkpoint_path(model, str(results))).model.eval()
            predictions[model] = network(test.x).argmax(1)
        return predictions[model]

    rows = []
    for path in sorted((results / "models" / "derived").rglob("s*.safetensors")):
        model = parse_model_id(str(path.relative_to(results / "models").with_suffix("")))
        assert isinstance(model, DerivedId)
        student, victim = predict(str(model)), predict(str(model.parent))
        rows.append(
            (
                model.derivation,
                float((student == victim).float().mean()),
                float((student == test.y).float().mean()),
            )
        )
    table = pd.DataFrame(rows, columns=["derivation", "fidelity", "accuracy"])
    return table.groupby("derivation").agg(["mean", "min"]).round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--strict", type=float, default=0.0001)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    print(
        detection(args.results, args.alpha, args.strict).to_string(
            index=False, float_format=lambda v: f"{v:.3g}"
        )
    )
    print()
    print(fidelity(args.results).to_string())


if __name__ == "__main__":
    main()
