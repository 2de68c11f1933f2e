"""Distinguishing directions: residual scores, their PCA, how much of each algorithm they explain.

Given attribution scores of two algorithms on the same training and test examples, as matrices
A and B [n_test × n_train] (row x: how much each training example supports test example x):

1. **Residuals** (A-minus-B). The paper's analysis code L2-normalises each row, â_x = a_x / ‖a_x‖,
   b̂_x = b_x / ‖b_x‖, and removes from â_x its projection on that same example's b̂_x:
   r_x = â_x − ⟨â_x, b̂_x⟩ b̂_x. ``normalize_rows=False`` gives the ``modeldiff`` package's
   unnormalised variant, r_x = a_x − (⟨a_x, b_x⟩ / ⟨b_x, b_x⟩) b_x.
2. **PCA** of the residual matrix (scikit-learn, centred): the top k principal axes are the
   *distinguishing directions* [k × n_train]; the *projections* [n_test × k] place each test
   example.
3. **Explained variance** of each direction in A's and in B's row-normalised, centred scores,
   Var(X̂ v) = ‖X̂ v‖² / n_test. A good A-minus-B direction explains much of A's variance and
   little of B's.

B-minus-A swaps the roles. Every result says which it is (``kind``) and labels variances by
algorithm: ``explained_variance["A"]`` is always algorithm A's, whichever direction was computed
(the ``modeldiff`` package's B-minus-A output calls B's values 'A').

**Orientation.** A principal axis has no sign; modelkin flips each direction so that the third
moment of its test projections is positive: the test examples with the largest positive projections
are the subpopulation the direction describes, and the training examples with the largest positive
weights are those the first algorithm relies on for that subpopulation more than the second (for
A-minus-B: z supports A's predictions on those test examples more than B's).

Needs numpy and scikit-learn only (no torch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

KINDS = ("A-minus-B", "B-minus-A")


class ModelDiffError(InputError):
    """Scores, files or settings that ModelDiff cannot compare; the message says why."""


class ResultKeyError(ModelDiffError, KeyError):
    """A key that a :class:`DistinguishingDirections` does not have (a ``KeyError`` too, as for
    any mapping)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


def _as_array(scores: Any, name: str) -> np.ndarray:
    """``scores`` (numpy, torch or nested lists) as a finite float64 [n_test × n_train] matrix."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ModelDiffError(f"{name} must be a [n_test x n_train] matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ModelDiffError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def _normalize_rows(scores: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(scores, axis=1, keepdims=True)
    zero = int((norms[:, 0] == 0).sum())
    if zero:
        raise ModelDiffError(
            f"{zero} test examples have all-zero {name} scores and cannot be row-normalised; "
            "drop those rows (or use normalize_rows=False)"
        )
    return scores / norms


def residual_scores(scores_first, scores_second, *, normalize_rows: bool = True) -> np.ndarray:
    """Residuals [n_test × n_train] of the first algorithm's scores after removing, per test
    example, their projection on the second algorithm's scores for that example."""
    first = _as_array(scores_first, "scores of the first algorithm")
    second = _as_array(scores_second, "scores of the second algorithm")
    if first.shape != second.shape:
        raise ModelDiffError(
            f"score matrices differ in shape, {first.shape} vs {second.shape}; both must be "
            "[n_test x n_train] on the same test and training examples"
        )
    if normalize_rows:
        first = _normalize_rows(first, "first-algorithm")
        second = _normalize_rows(second, "second-algorithm")
    dot = np.einsum("ij,ij->i", first, second)
    norm2 = np.einsum("ij,ij->i", second, second)
    coefficient = np.divide(dot, norm2, out=np.zeros_like(dot), where=norm2 > 0)
    return first - coefficient[:, None] * second


def explained_variance(scores, directions: np.ndarray) -> np.ndarray:
    """Variance of the row-normalised, centred ``scores`` along each unit direction (its share of
    a total ≤ 1)."""
    x = _normalize_rows(_as_array(scores, "scores"), "these")
    x = x - x.mean(axis=0)
    projected = x @ np.asarray(directions, dtype=np.float64).T
    return (projected**2).sum(axis=0) / len(x)


@dataclass
class DistinguishingDirections:
    """The result of one comparison; ``kind`` says which algorithm's residual it is."""

    kind: str  # "A-minus-B" or "B-minus-A"
    directions: np.ndarray  # [k × n_train], unit rows
    projections: np.ndarray  # [n_test × k]
    explained_variance: dict[str, np.ndarray]  # {"A": [k], "B": [k]}, always labelled by algorithm
    residual_variance_ratio: np.ndarray  # [k], share of the residuals' variance
    normalize_rows: bool = True
    names: dict[str, str] = field(default_factory=lambda: {"A": "A", "B": "B"})
    scores: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def first(self) -> str:
        """The role ("A" or "B") whose residual this is."""
        return "A" if self.kind == "A-minus-B" else "B"

    @property
    def second(self) -> str:
        """The role whose scores were projected out."""
        return "B" if self.kind == "A-minus-B" else "A"

    @property
    def num_components(self) -> int:
        return self.directions.shape[0]

    @property
    def label(self) -> str:
        """``"<first algorithm> minus <second algorithm>"``, by name."""
        return f"{self.names[self.first]} minus {self.names[self.second]}"

    def __getitem__(self, key: str):
        """Dictionary access with the ``modeldiff`` package's keys (variances correctly
        labelled)."""
        compatible = {
            "directions": self.directions,
            "projections": self.projections,
            "variances": self.explained_variance,
            "scores": self.scores,
        }
        if key not in compatible:
            raise ResultKeyError(f"no key {key!r}; keys: {', '.join(compatible)}")
        return compatible[key]

    def top_train(self, component: int, n: int, *, bottom: bool = False) -> np.ndarray:
        """Training indices with the largest (or, with ``bottom``, most negative) weights in a
        direction."""
        order = np.argsort(self.directions[component], kind="stable")
        return order[:n] if bottom else order[::-1][:n]

    def top_test(self, component: int, n: int, *, bottom: bool = False) -> np.ndarray:
        """Test indices with the largest (``bottom``: most negative) projections on a direction."""
        order = np.argsort(self.projections[:, component], kind="stable")
        return order[:n] if bottom else order[::-1][:n]

    def summary(self) -> list[dict[str, Any]]:
        """One row per direction: its explained variances and residual variance ratio."""
        return [
            {
                "kind": self.kind,
                "component": c,
                "algorithm_A": self.names["A"],
                "algorithm_B": self.names["B"],
                "explained_variance_A": float(self.explained_variance["A"][c]),
                "explained_variance_B": float(self.explained_variance["B"][c]),
                "residual_variance_ratio": float(self.residual_variance_ratio[c]),
            }
            for c in range(self.num_components)
        ]


def residual_pca(
    scores_a,
    scores_b,
    num_pca_comps: int,
    *,
    kind: str = "A-minus-B",
    normalize_rows: bool = True,
    names: Mapping[str, str] | None = None,
    keep_scores: bool = False,
) -> DistinguishingDirections:
    """Distinguishing directions of ``kind`` from A's and B's scores, both [n_test × n_train]."""
    if kind not in KINDS:
        raise ModelDiffError(f"kind must be one of {KINDS}, not {kind!r}")
    a = _as_array(scores_a, "scores A")
    b = _as_array(scores_b, "scores B")
    first, second = (a, b) if kind == "A-minus-B" else (b, a)
    residuals = residual_scores(first, second, normalize_rows=normalize_rows)
    limit = min(residuals.shape)
    if not 1 <= num_pca_comps <= limit:
        raise ModelDiffError(
            f"num_pca_comps must be between 1 and {limit} (min of n_test, n_train), "
            f"not {num_pca_comps}"
        )
    from sklearn.decomposition import PCA  # 1 s to import: only the jobs that fit a PCA pay it

    pca = PCA(n_components=num_pca_comps, svd_solver="full")
    projections = pca.fit_transform(residuals)
    directions = pca.components_.copy()
    signs = np.where((projections**3).sum(axis=0) < 0, -1.0, 1.0)
    directions *= signs[:, None]
    projections = projections * signs[None, :]
    variances = {"A": explained_variance(a, directions), "B": explained_variance(b, directions)}
    return DistinguishingDirections(
        kind=kind,
        directions=directions,
        projections=projections,
        explained_variance=variances,
        residual_variance_ratio=pca.explained_variance_ratio_.copy(),
        normalize_rows=normalize_rows,
        names=dict(names or {"A": "A", "B": "B"}),
        scores={"A": a, "B": b} if keep_scores else None,
    )


def precision_at_k(
    direction: np.ndarray, relevant: Iterable[int], k: int = 20, *, bottom: bool = False
) -> float:
    """Share of the k training examples with the largest (``bottom``: most negative) weights that
    are ``relevant``."""
    relevant = {int(i) for i in relevant}
    order = np.argsort(np.asarray(direction), kind="stable")
    chosen = order[:k] if bottom else order[::-1][:k]
    return float(np.mean([int(i) in relevant for i in chosen]))
