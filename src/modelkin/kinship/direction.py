"""Which of two related models is the parent: cues that order a pair, and their combined score.

Each cue votes in [-1, 1] for "``u`` is the parent of ``v``" (positive) or the reverse, or
abstains; the direction score is the weighted mean of the votes that do not abstain
(``lineage.direction.weights``), so a score near 0 is either no evidence or evidence both ways.

- **task**: a model whose classes are a strict subset of the other's is the child (a transfer to
  a class subset; a model does not learn classes its parent never had). Vote +-1.
- **sparsity**: the model with markedly more exact zeros among its weights is the child: pruning
  makes exact zeros and training from a dense model never does. Vote +-1 when the fractions differ
  by more than ``sparsity_margin``.
- **kurtosis**: MoTHer's weight statistic (Horwitz et al., ICLR 2025): the excess kurtosis of each
  weight tensor with two or more dimensions (conv kernels, linear matrices; biases left out),
  summed over the tensors. It moves monotonically with training; MoTHer orients a fine-tuning edge
  towards the model with fewer weight outliers, while models trained from a uniform (Kaiming)
  initialisation, as here, start at the uniform's -1.2 per tensor and grow heavier tails as they
  train, so that a child trained further is the *more* kurtotic one (``kurtosis_order:
  child_higher``, the default; ``parent_higher`` is MoTHer's). Only for models with the same
  parameter shapes whose weights are related (the ``weights`` method's verdict, where it judged
  the pair): a student trained from scratch shares no training path with its victim, and its
  kurtosis has either sign against it. Vote ``tanh(difference / kurtosis_scale)``.
- **centrality**: the member of a family closer on average to the rest of it is the parent (a
  parent sits in the middle of a star of children that each moved away from it). Vote
  ``tanh(relative difference of the two mean weights / centrality_scale)``.

The ``mask`` cue casts no vote: it chooses among a pruned model's candidate parents
(:mod:`.pruning`, :mod:`.tree`).

Model statistics come from checkpoint files (:func:`model_statistics`, torch-free) or are given
directly (tests, other formats).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import DirectionSettings


@dataclass(frozen=True)
class ModelStatistics:
    """What the direction cues read of one model: its class set, the shapes of its parameters,
    the fraction of exact zeros among its weights and its summed weight kurtosis."""

    classes: frozenset[int] | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    sparsity: float | None = None
    kurtosis: float | None = None


def weight_statistics(state: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """(fraction of exact zeros, summed excess kurtosis) of the tensors of ``state`` with two or
    more dimensions."""
    from scipy.stats import kurtosis

    weights = [np.asarray(v, dtype=np.float64).ravel() for v in state.values() if v.ndim >= 2]
    if not weights:
        return math.nan, math.nan
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    total = sum(float(kurtosis(w)) for w in weights if w.size > 3 and np.ptp(w) > 0)
    return float(zeros), float(total)


def model_statistics(checkpoint: str | Path) -> ModelStatistics:
    """The statistics of a modelkin checkpoint (safetensors, read with numpy: no torch)."""
    from safetensors.numpy import load_file

    from ..checkpoint import read_lineage

    lineage = read_lineage(checkpoint)
    state = load_file(str(checkpoint))
    sparsity, kurt = weight_statistics(state)
    classes = lineage.classes if lineage.classes is not None else range(int(lineage.num_classes))
    shapes = tuple(sorted((k, tuple(int(s) for s in v.shape)) for k, v in state.items()))
    return ModelStatistics(frozenset(int(c) for c in classes), shapes, sparsity, kurt)


def cue_votes(
    u: str,
    v: str,
    stats: Mapping[str, ModelStatistics],
    centrality: Mapping[str, float],
    settings: DirectionSettings,
    shared_weights: bool | None = None,
) -> dict[str, float]:
    """Each cue's vote for "``u`` is the parent of ``v``" (cues that abstain are left out);
    ``shared_weights`` False (the weights of the two are unrelated) silences kurtosis."""
    a, b = stats.get(u, ModelStatistics()), stats.get(v, ModelStatistics())
    votes: dict[str, float] = {}
    for cue in settings.cues:
        vote = None
        if cue == "task" and a.classes is not None and b.classes is not None:
            if b.classes < a.classes:
                vote = 1.0
            elif a.classes < b.classes:
                vote = -1.0
        elif cue == "sparsity" and _finite(a.sparsity, b.sparsity):
            gap = float(b.sparsity) - float(a.sparsity)  # type: ignore[arg-type]
            if abs(gap) > settings.sparsity_margin:
                vote = math.copysign(1.0, gap)
        elif (
            cue == "kurtosis"
            and shared_weights is not False
            and _finite(a.kurtosis, b.kurtosis)
            and a.shapes == b.shapes
        ):
            gap = float(b.kurtosis) - float(a.kurtosis)  # type: ignore[arg-type]
            if settings.kurtosis_order == "parent_higher":
                gap = -gap
            vote = math.tanh(gap / settings.kurtosis_scale)
        elif cue == "centrality" and _finite(centrality.get(u), centrality.get(v)):
            cu, cv = float(centrality[u]), float(centrality[v])
            scale = (cu + cv) / 2
            if scale > 0:
                vote = math.tanh((cv - cu) / scale / settings.centrality_scale)
        if vote is not None:
            votes[cue] = vote
    return votes


def direction_score(votes: Mapping[str, float], settings: DirectionSettings) -> float:
    """The weighted mean of the votes (0 when every cue abstains)."""
    total = sum(settings.weight(c) for c in votes)
    if total <= 0:
        return 0.0
    return sum(settings.weight(c) * v for c, v in votes.items()) / total


def describe_votes(votes: Mapping[str, float]) -> str:
    """``cue:+0.83;cue:-1.00`` (for the edge table)."""
    return ";".join(f"{c}:{v:+.2f}" for c, v in votes.items())


def _finite(*values) -> bool:
    return all(x is not None and np.isfinite(x) for x in values)
