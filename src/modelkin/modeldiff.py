"""ModelDiff (Shah, Park, Ilyas, Madry, ICML 2023): training-set directions that set two learning algorithms apart.

Given attribution scores of two algorithms on the same training and test examples, as matrices
A and B [n_test × n_train] (row x: how much each training example supports test example x):

1. **Residuals** (A-minus-B). The paper's analysis code L2-normalises each row, â_x = a_x / ‖a_x‖,
   b̂_x = b_x / ‖b_x‖, and removes from â_x its projection on that same example's b̂_x:
   r_x = â_x − ⟨â_x, b̂_x⟩ b̂_x. ``normalize_rows=False`` gives the ``modeldiff`` package's
   unnormalised variant, r_x = a_x − (⟨a_x, b_x⟩ / ⟨b_x, b_x⟩) b_x.
2. **PCA** of the residual matrix (scikit-learn, centred): the top k principal axes are the
   *distinguishing directions* [k × n_train]; the *projections* [n_test × k] place each test example.
3. **Explained variance** of each direction in A's and in B's row-normalised, centred scores,
   Var(X̂ v) = ‖X̂ v‖² / n_test. A good A-minus-B direction explains much of A's variance and little of B's.

B-minus-A swaps the roles. Every result says which it is (``kind``) and labels variances by algorithm:
``explained_variance["A"]`` is always algorithm A's, whichever direction was computed (the
``modeldiff`` package's B-minus-A output calls B's values 'A').

**Orientation.** A principal axis has no sign; modelkin flips each direction so that the third moment of
its test projections is positive: the test examples with the largest positive projections are the
subpopulation the direction describes, and the training examples with the largest positive weights
are those the first algorithm relies on for that subpopulation more than the second (for A-minus-B:
z supports A's predictions on those test examples more than B's).

The ``ModelDiff`` class mirrors the published API: ``ModelDiff(modelA, modelB, ckptsA, ckptsB,
train_loader)``, ``get_A_minus_B(val_loader, num_pca_comps)``, ``get_B_minus_A(...)`` and
``get_A_minus_B_from_scores`` / ``get_B_minus_A_from_scores``; it computes TRAK scores with
``modelkin.attribution`` on any device (the package needs CUDA).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("A-minus-B", "B-minus-A")


# ---------------------------------------------------------------------------------------------
# Residual PCA


def _as_array(scores, name: str) -> np.ndarray:
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a [n_test x n_train] matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def _normalize_rows(scores: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(scores, axis=1, keepdims=True)
    zero = int((norms[:, 0] == 0).sum())
    if zero:
        raise ValueError(
            f"{zero} test examples have all-zero {name} scores and cannot be row-normalised; drop those rows "
            "(or use normalize_rows=False)"
        )
    return scores / norms


def residual_scores(scores_first, scores_second, *, normalize_rows: bool = True) -> np.ndarray:
    """Residuals [n_test × n_train] of the first algorithm's scores after removing, per test example, their
    projection on the second algorithm's scores for that example."""
    first = _as_array(scores_first, "scores of the first algorithm")
    second = _as_array(scores_second, "scores of the second algorithm")
    if first.shape != second.shape:
        raise ValueError(
            f"score matrices differ in shape, {first.shape} vs {second.shape}; both must be [n_test x n_train] "
            "on the same test and training examples"
        )
    if normalize_rows:
        first = _normalize_rows(first, "first-algorithm")
        second = _normalize_rows(second, "second-algorithm")
    dot = np.einsum("ij,ij->i", first, second)
    norm2 = np.einsum("ij,ij->i", second, second)
    coefficient = np.divide(dot, norm2, out=np.zeros_like(dot), where=norm2 > 0)
    return first - coefficient[:, None] * second


def explained_variance(scores, directions: np.ndarray) -> np.ndarray:
    """Variance of the row-normalised, centred ``scores`` along each unit direction (its share of a total ≤ 1)."""
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
        return "A" if self.kind == "A-minus-B" else "B"

    @property
    def second(self) -> str:
        return "B" if self.kind == "A-minus-B" else "A"

    @property
    def num_components(self) -> int:
        return self.directions.shape[0]

    def __getitem__(self, key: str):
        """Dictionary access with the ``modeldiff`` package's keys (variances correctly labelled)."""
        compatible = {
            "directions": self.directions,
            "projections": self.projections,
            "variances": self.explained_variance,
            "scores": self.scores,
        }
        if key not in compatible:
            raise KeyError(f"{key!r}; keys: {', '.join(compatible)}")
        return compatible[key]

    def top_train(self, component: int, n: int, *, bottom: bool = False) -> np.ndarray:
        """Training indices with the largest (or, with ``bottom``, most negative) weights in a direction."""
        order = np.argsort(self.directions[component], kind="stable")
        return order[:n] if bottom else order[::-1][:n]

    def top_test(self, component: int, n: int, *, bottom: bool = False) -> np.ndarray:
        order = np.argsort(self.projections[:, component], kind="stable")
        return order[:n] if bottom else order[::-1][:n]

    def summary(self) -> list[dict[str, Any]]:
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
    from sklearn.decomposition import PCA

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    a = _as_array(scores_a, "scores A")
    b = _as_array(scores_b, "scores B")
    first, second = (a, b) if kind == "A-minus-B" else (b, a)
    residuals = residual_scores(first, second, normalize_rows=normalize_rows)
    limit = min(residuals.shape)
    if not 1 <= num_pca_comps <= limit:
        raise ValueError(
            f"num_pca_comps must be between 1 and {limit} (min of n_test, n_train), not {num_pca_comps}"
        )
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
    """Share of the k training examples with the largest (``bottom``: most negative) weights that are ``relevant``."""
    relevant = set(int(i) for i in relevant)
    order = np.argsort(np.asarray(direction), kind="stable")
    chosen = order[:k] if bottom else order[::-1][:k]
    return float(np.mean([int(i) in relevant for i in chosen]))


# ---------------------------------------------------------------------------------------------
# The published API


class ModelDiff:
    """Compare two learning algorithms through TRAK scores of their checkpoints (published API, any device).

    ``modelA``/``modelB``: architectures (their weights are not used); ``modelA_ckpts``/``modelB_ckpts``:
    state dicts or checkpoint files; ``train_loader``: the training set in a fixed order, unaugmented
    (a DataLoader with shuffle=False, a modelkin Split, or an (x, y) pair of tensors).
    ``train_loader_B``: the training set as algorithm B saw it, when that differs (default: the same).
    ``trak``: TRAK settings (a ``TrakSettings`` or a dict). Given as a dict or left out, ``out_to_loss``
    defaults to False: unweighted TRAK scores, with which ModelDiff finds what the traker weighting hides
    (docs/modeldiff.md); pass ``out_to_loss=True`` for traker's scores.
    """

    def __init__(
        self,
        modelA=None,
        modelB=None,
        modelA_ckpts: Sequence = (),
        modelB_ckpts: Sequence = (),
        train_loader=None,
        scores_save_dir: str | Path | None = None,
        *,
        train_loader_B=None,
        trak=None,
        device: str = "auto",
        normalize_rows: bool = True,
        names: Mapping[str, str] | None = None,
    ) -> None:
        from .attribution import TrakSettings

        self.modelA, self.modelB = modelA, modelB
        self.modelA_ckpts, self.modelB_ckpts = list(modelA_ckpts), list(modelB_ckpts)
        self.train_loader = train_loader
        self.train_loader_B = train_loader_B if train_loader_B is not None else train_loader
        self.scores_save_dir = Path(scores_save_dir) if scores_save_dir is not None else None
        self.trak = (
            trak
            if isinstance(trak, TrakSettings)
            else TrakSettings.from_dict({"out_to_loss": False, **(trak or {})})
        )
        self.device = device
        self.normalize_rows = normalize_rows
        self.names = dict(names or {"A": "A", "B": "B"})
        self._scores: dict[tuple[int, str], np.ndarray] = {}
        if (modelA is None) != (modelB is None):
            raise ValueError(
                "give both modelA and modelB (to compute scores), or neither (to work from scores)"
            )
        if modelA is not None:
            if not self.modelA_ckpts or not self.modelB_ckpts:
                raise ValueError(
                    "ModelDiff needs at least one checkpoint per algorithm (modelA_ckpts, modelB_ckpts)"
                )
            if train_loader is None:
                raise ValueError("ModelDiff needs the train_loader the checkpoints were trained on")

    def _models(self, which: str):
        import torch

        from .checkpoint import load_checkpoint

        template = self.modelA if which == "A" else self.modelB
        for ckpt in self.modelA_ckpts if which == "A" else self.modelB_ckpts:
            if isinstance(ckpt, (str, Path)):
                yield load_checkpoint(ckpt, device="cpu").model
                continue
            model = copy.deepcopy(template)
            if isinstance(ckpt, torch.nn.Module):
                ckpt = ckpt.state_dict()
            model.load_state_dict(ckpt)
            yield model

    def attribute(self, val_loader, which: str) -> np.ndarray:
        """TRAK scores of algorithm ``which`` ("A" or "B") as [n_test × n_train] (cached per val_loader)."""
        from .attribution import trak_scores

        if self.modelA is None:
            raise ValueError(
                "this ModelDiff was built without models; use get_A_minus_B_from_scores"
            )
        key = (id(val_loader), which)
        if key not in self._scores:
            train = self.train_loader if which == "A" else self.train_loader_B
            scores = trak_scores(
                self._models(which),
                train,
                val_loader,
                self.trak,
                device=self.device,
                desc=f"TRAK {self.names[which]}",
            )
            self._scores[key] = scores.T.numpy()
            if self.scores_save_dir is not None:
                self.scores_save_dir.mkdir(parents=True, exist_ok=True)
                np.save(self.scores_save_dir / f"scores_{which}.npy", self._scores[key])
        return self._scores[key]

    def _compare(self, scoresA, scoresB, num_pca_comps: int, kind: str) -> DistinguishingDirections:
        return residual_pca(
            scoresA,
            scoresB,
            num_pca_comps,
            kind=kind,
            normalize_rows=self.normalize_rows,
            names=self.names,
            keep_scores=True,
        )

    def get_A_minus_B(self, val_loader, num_pca_comps: int) -> DistinguishingDirections:
        """Directions important for algorithm A but not B, on the examples of ``val_loader``."""
        return self._compare(
            self.attribute(val_loader, "A"),
            self.attribute(val_loader, "B"),
            num_pca_comps,
            "A-minus-B",
        )

    def get_B_minus_A(self, val_loader, num_pca_comps: int) -> DistinguishingDirections:
        """Directions important for algorithm B but not A, on the examples of ``val_loader``."""
        return self._compare(
            self.attribute(val_loader, "A"),
            self.attribute(val_loader, "B"),
            num_pca_comps,
            "B-minus-A",
        )

    def get_A_minus_B_from_scores(
        self, scoresA, scoresB, num_pca_comps: int
    ) -> DistinguishingDirections:
        """A-minus-B from precomputed scores, each [n_test × n_train]."""
        return self._compare(scoresA, scoresB, num_pca_comps, "A-minus-B")

    def get_B_minus_A_from_scores(
        self, scoresA, scoresB, num_pca_comps: int
    ) -> DistinguishingDirections:
        """B-minus-A from precomputed scores (A's first, as the arguments say), each [n_test × n_train]."""
        return self._compare(scoresA, scoresB, num_pca_comps, "B-minus-A")


# ---------------------------------------------------------------------------------------------
# Counterfactual: apply the transformation a direction suggests, compare the algorithms' models


def counterfactual_probabilities(
    models: Mapping[str, Sequence[tuple[str, Any]]],
    images,
    transform: Callable,
    target_class: int,
    *,
    device: str = "auto",
    batch_size: int = 512,
) -> list[dict[str, Any]]:
    """P(target_class) before and after ``transform`` for every model, one row per model.

    ``models``: {algorithm label: [(checkpoint name, model), ...]}; ``images``: [N, C, H, W] in [0, 1].
    """
    import torch

    from .device import resolve_device

    device = resolve_device(device)
    transformed = transform(images)
    if transformed.shape != images.shape:
        raise ValueError(
            f"the transformation changed the image shape {tuple(images.shape)} -> {tuple(transformed.shape)}"
        )
    rows = []
    for algorithm, entries in models.items():
        for name, model in entries:
            model.to(device).eval()
            probs = {}
            with torch.no_grad():
                for label, x in (("before", images), ("after", transformed)):
                    parts = []
                    for start in range(0, len(x), batch_size):
                        parts.append(
                            torch.softmax(
                                model(x[start : start + batch_size].to(device)), dim=1
                            ).cpu()
                        )
                    probs[label] = torch.cat(parts)
            if not 0 <= target_class < probs["before"].shape[1]:
                raise ValueError(
                    f"target class {target_class} does not exist for {name} ({probs['before'].shape[1]} classes)"
                )
            before = probs["before"][:, target_class]
            after = probs["after"][:, target_class]
            rows.append(
                {
                    "algorithm": algorithm,
                    "checkpoint": name,
                    "target_class": target_class,
                    "n_images": len(images),
                    "p_target_before": float(before.mean()),
                    "p_target_after": float(after.mean()),
                    "delta_p_target": float((after - before).mean()),
                    "predicted_target_before": float(
                        (probs["before"].argmax(1) == target_class).float().mean()
                    ),
                    "predicted_target_after": float(
                        (probs["after"].argmax(1) == target_class).float().mean()
                    ),
                }
            )
    return rows


def summarise_counterfactual(
    rows: Sequence[dict[str, Any]], roles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Mean and spread over checkpoints per algorithm; ``roles`` maps algorithm name -> "A" or "B"."""
    out = []
    for algorithm, role in roles.items():
        mine = [r for r in rows if r["algorithm"] == algorithm]
        if not mine:
            continue
        delta = np.array([r["delta_p_target"] for r in mine])
        out.append(
            {
                "role": role,
                "algorithm": algorithm,
                "n_checkpoints": len(mine),
                "target_class": mine[0]["target_class"],
                "p_target_before": float(np.mean([r["p_target_before"] for r in mine])),
                "p_target_after": float(np.mean([r["p_target_after"] for r in mine])),
                "delta_p_target": float(delta.mean()),
                "delta_p_target_std": float(delta.std(ddof=1)) if len(delta) > 1 else 0.0,
                "predicted_target_before": float(
                    np.mean([r["predicted_target_before"] for r in mine])
                ),
                "predicted_target_after": float(
                    np.mean([r["predicted_target_after"] for r in mine])
                ),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# The workflow's steps, on files

DIRECTIONS_KIND = "modelkin-modeldiff"
GROUPS = {"A-minus-B": "A_minus_B", "B-minus-A": "B_minus_A"}


def compare_score_files(
    output: str | Path,
    output_csv: str | Path,
    *,
    scores_a: str | Path,
    scores_b: str | Path,
    num_components: int = 3,
    normalize_rows: bool = True,
) -> dict[str, DistinguishingDirections]:
    """A-minus-B and B-minus-A from two TRAK score files; HDF5 (one group each) and a CSV of explained variances."""
    import pandas as pd

    from .attribution.jobs import read_scores
    from .attribution.store import write_arrays
    from .io import atomic_path

    stored = {"A": read_scores(scores_a), "B": read_scores(scores_b)}
    for key in (
        "n_train",
        "n_targets",
        "targets",
        "target_patch",
        "train_limit",
        "prepared_sha256",
    ):
        va, vb = stored["A"].attrs["data"].get(key), stored["B"].attrs["data"].get(key)
        if va != vb:
            raise ValueError(
                f"the two score files attribute different examples ({key}: {va!r} in {scores_a} vs {vb!r} in "
                f"{scores_b}); ModelDiff compares algorithms on the same training and test examples"
            )
    if not np.array_equal(stored["A"]["train_labels"], stored["B"]["train_labels"]):
        raise ValueError(
            f"{scores_a} and {scores_b} list different training labels; they cover different examples"
        )
    names = {role: str(s.attrs.get("algorithm") or role) for role, s in stored.items()}
    # TRAK scores are [n_train x n_targets]; ModelDiff works on their transpose, one row per test example.
    matrices = {role: s["scores"].T for role, s in stored.items()}
    results = {
        kind: residual_pca(
            matrices["A"],
            matrices["B"],
            num_components,
            kind=kind,
            normalize_rows=normalize_rows,
            names=names,
        )
        for kind in KINDS
    }
    groups = {
        GROUPS[kind]: {
            "directions": r.directions.astype(np.float32),
            "projections": r.projections.astype(np.float32),
            "explained_variance_A": r.explained_variance["A"],
            "explained_variance_B": r.explained_variance["B"],
            "residual_variance_ratio": r.residual_variance_ratio,
        }
        for kind, r in results.items()
    }
    axes = {}
    for group in groups:
        axes.update(
            {
                f"{group}/directions": ("component", "train"),
                f"{group}/projections": ("target", "component"),
                f"{group}/explained_variance_A": ("component",),
                f"{group}/explained_variance_B": ("component",),
                f"{group}/residual_variance_ratio": ("component",),
            }
        )
    write_arrays(
        output,
        {
            "train_labels": stored["A"]["train_labels"],
            "target_labels": stored["A"]["target_labels"],
        },
        kind=DIRECTIONS_KIND,
        method="modeldiff",
        params={
            "num_components": num_components,
            "normalize_rows": normalize_rows,
            "orientation": "positive third moment",
        },
        axes={"train_labels": ("train",), "target_labels": ("target",), **axes},
        attrs={
            "algorithm_A": names["A"],
            "algorithm_B": names["B"],
            "scores_A": str(scores_a),
            "scores_B": str(scores_b),
            "data_A": stored["A"].attrs["data"],
            "data_B": stored["B"].attrs["data"],
            "groups": {GROUPS[k]: k for k in KINDS},
        },
        groups=groups,
    )
    rows = []
    for kind, r in results.items():
        for c in range(r.num_components):
            rows.append(
                {
                    "kind": kind,
                    "label": f"{names[r.first]} minus {names[r.second]}",
                    "component": c,
                    "algorithm_A": names["A"],
                    "algorithm_B": names["B"],
                    "explained_variance_A": float(r.explained_variance["A"][c]),
                    "explained_variance_B": float(r.explained_variance["B"][c]),
                    "residual_variance_ratio": float(r.residual_variance_ratio[c]),
                }
            )
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return results


@dataclass
class StoredComparison:
    results: dict[str, DistinguishingDirections]
    train_labels: np.ndarray
    target_labels: np.ndarray
    attrs: dict[str, Any]


def read_comparison(path: str | Path) -> StoredComparison:
    from .attribution.store import read_arrays

    stored = read_arrays(path, DIRECTIONS_KIND, f"make it with `snakemake --cores 2 {path}`")
    names = {"A": stored.attrs["algorithm_A"], "B": stored.attrs["algorithm_B"]}
    results = {}
    for kind, group in GROUPS.items():
        results[kind] = DistinguishingDirections(
            kind=kind,
            directions=stored[f"{group}/directions"],
            projections=stored[f"{group}/projections"],
            explained_variance={
                "A": stored[f"{group}/explained_variance_A"],
                "B": stored[f"{group}/explained_variance_B"],
            },
            residual_variance_ratio=stored[f"{group}/residual_variance_ratio"],
            normalize_rows=bool(stored.params["normalize_rows"]),
            names=names,
        )
    return StoredComparison(results, stored["train_labels"], stored["target_labels"], stored.attrs)


def _training_split(data: Mapping[str, Any], with_patch: bool):
    from .train import TrainRecipe, load_training_split

    recipe = {
        "train_limit": data.get("train_limit"),
        "planted_patch": data.get("planted_patch") if with_patch else None,
    }
    return load_training_split(data["prepared"], TrainRecipe.from_dict(recipe))


def planted_indices(data: Mapping[str, Any]) -> np.ndarray | None:
    """Training indices that carry an algorithm's planted patch (None when it plants none)."""
    from .data import PlantedPatch

    patch = data.get("planted_patch")
    if not patch:
        return None
    train = _training_split(data, with_patch=False)
    return PlantedPatch.from_config(patch).chosen_indices(train.y).numpy()


def surface_directions(
    comparison: str | Path,
    output_csv: str | Path,
    grids: Mapping[tuple[str, int], str | Path],
    *,
    n_examples: int = 16,
) -> list[dict[str, Any]]:
    """For each direction: its top and bottom training examples (weights) and test examples (projections).

    Writes one CSV of indices and one PNG image grid per (kind, component) in ``grids``. Training images
    are shown as the direction's first algorithm trained on them (with its planted patch, if any).
    """
    import pandas as pd

    from .attribution.jobs import target_split
    from .io import atomic_path

    stored = read_comparison(comparison)
    data = {"A": stored.attrs["data_A"], "B": stored.attrs["data_B"]}
    planted = {role: planted_indices(d) for role, d in data.items()}
    test = target_split(
        data["A"]["prepared"],
        data["A"]["targets"],
        data["A"]["n_targets"],
        data["A"].get("target_patch"),
    )
    train_images = {role: _training_split(d, with_patch=True) for role, d in data.items()}
    rows = []
    for kind, result in stored.results.items():
        train = train_images[result.first]
        for c in range(result.num_components):
            picks = {
                "train_top": (result.top_train(c, n_examples), result.directions[c]),
                "train_bottom": (
                    result.top_train(c, n_examples, bottom=True),
                    result.directions[c],
                ),
                "test_top": (result.top_test(c, n_examples), result.projections[:, c]),
                "test_bottom": (
                    result.top_test(c, n_examples, bottom=True),
                    result.projections[:, c],
                ),
            }
            for role, (indices, values) in picks.items():
                labels = (train.y if role.startswith("train") else test.y).numpy()
                for rank, index in enumerate(indices):
                    row = {
                        "kind": kind,
                        "component": c,
                        "role": role,
                        "rank": rank,
                        "index": int(index),
                        "label": int(labels[index]),
                        "value": float(values[index]),
                    }
                    if role.startswith("train"):
                        for owner, chosen in planted.items():
                            if chosen is not None:
                                row[f"planted_in_{result.names[owner]}"] = bool(
                                    np.isin(index, chosen)
                                )
                    rows.append(row)
            if (kind, c) in grids:
                _save_grid(grids[(kind, c)], result, c, picks, train, test)
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    missing = sorted(
        set(grids) - {(k, c) for k, r in stored.results.items() for c in range(r.num_components)}
    )
    if missing:
        raise ValueError(f"image grids requested for directions that do not exist: {missing}")
    return rows


def _save_grid(path, result: DistinguishingDirections, component: int, picks, train, test) -> None:
    from .plotting import pyplot, save_figure

    plt = pyplot()
    n = max(len(idx) for idx, _ in picks.values())
    fig, axes = plt.subplots(
        len(picks), n, figsize=(1.1 * n, 1.35 * len(picks) + 0.6), squeeze=False
    )
    titles = {
        "train_top": "train, largest weights",
        "train_bottom": "train, most negative weights",
        "test_top": "test, largest projections",
        "test_bottom": "test, most negative projections",
    }
    for row, (role, (indices, values)) in enumerate(picks.items()):
        split = train if role.startswith("train") else test
        for col in range(n):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(indices):
                ax.axis("off")
                continue
            index = int(indices[col])
            image = split.x[index].permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"#{index} y={int(split.y[index])}\n{values[index]:+.3f}", fontsize=6)
        axes[row, 0].set_ylabel(titles[role], fontsize=6)
    names = result.names
    fig.suptitle(
        f"{names[result.first]} minus {names[result.second]} ({result.kind}), direction {component}: explained variance "
        f"{names['A']} {result.explained_variance['A'][component]:.3f}, {names['B']} {result.explained_variance['B'][component]:.3f}",
        fontsize=8,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def resolve_patch(
    patch: Mapping[str, Any] | None, data_a: Mapping[str, Any], data_b: Mapping[str, Any]
):
    """The counterfactual patch: the configured one, else algorithm B's planted patch, else A's."""
    from .data import PlantedPatch

    chosen = patch or data_b.get("planted_patch") or data_a.get("planted_patch")
    if not chosen:
        raise ValueError(
            "no counterfactual transformation: neither algorithm plants a patch; set modeldiff.counterfactual.patch "
            "to {target_class, size, color, position}"
        )
    return PlantedPatch.from_config(chosen)


def counterfactual_files(
    output_csv: str | Path,
    summary_csv: str | Path,
    *,
    comparison: str | Path,
    checkpoints_a: Sequence[str | Path],
    checkpoints_b: Sequence[str | Path],
    patch: Mapping[str, Any] | None = None,
    exclude_target_class: bool = True,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Apply the patch to the test images; P(target class) before and after for every checkpoint of A and B."""
    import pandas as pd

    from .checkpoint import load_checkpoint
    from .data import load_split
    from .io import atomic_path

    stored = read_comparison(comparison)
    data_a, data_b = stored.attrs["data_A"], stored.attrs["data_B"]
    transform = resolve_patch(patch, data_a, data_b)
    # The whole test split: the counterfactual is cheap, and TRAK's target subset is no reason to shrink it.
    test = load_split(data_a["prepared"], "test")
    if exclude_target_class:
        test = test.subset(np.flatnonzero(test.y.numpy() != transform.target_class))
    names = {"A": stored.attrs["algorithm_A"], "B": stored.attrs["algorithm_B"]}
    models = {}
    for role, paths in (("A", checkpoints_a), ("B", checkpoints_b)):
        loaded = [load_checkpoint(p, device="cpu") for p in paths]
        models[names[role]] = [(c.name, c.model) for c in loaded]
    rows = counterfactual_probabilities(
        models, test.x, transform.apply, transform.target_class, device=device
    )
    for row in rows:
        row["role"] = "A" if row["algorithm"] == names["A"] else "B"
    summary = summarise_counterfactual(rows, {names["A"]: "A", names["B"]: "B"})
    with atomic_path(output_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(summary_csv) as tmp:
        pd.DataFrame(summary).to_csv(tmp, index=False)
    return summary


def summarise_files(
    output_json: str | Path,
    *,
    comparison: str | Path,
    counterfactual_summary: str | Path,
    lds: str | Path | None = None,
    precision_k: int = 20,
) -> dict[str, Any]:
    """One JSON with what a reader wants first: precision@k of each direction against planted images
    (when an algorithm plants a patch), explained variances, the counterfactual and the LDS."""
    import pandas as pd

    from .io import read_json, write_json

    stored = read_comparison(comparison)
    data = {"A": stored.attrs["data_A"], "B": stored.attrs["data_B"]}
    names = {"A": stored.attrs["algorithm_A"], "B": stored.attrs["algorithm_B"]}
    planted = {role: planted_indices(d) for role, d in data.items()}
    directions = []
    for kind, result in stored.results.items():
        for c in range(result.num_components):
            entry = {
                "kind": kind,
                "label": f"{names[result.first]} minus {names[result.second]}",
                "component": c,
                "explained_variance": {
                    names["A"]: float(result.explained_variance["A"][c]),
                    names["B"]: float(result.explained_variance["B"][c]),
                },
                "residual_variance_ratio": float(result.residual_variance_ratio[c]),
            }
            for role, chosen in planted.items():
                if chosen is not None:
                    entry[f"precision_at_{precision_k}_planted_in_{names[role]}"] = {
                        "top": precision_at_k(result.directions[c], chosen, precision_k),
                        "bottom": precision_at_k(
                            result.directions[c], chosen, precision_k, bottom=True
                        ),
                    }
            directions.append(entry)
    summary = {
        "algorithms": names,
        "n_train": data["A"]["n_train"],
        "n_targets": data["A"]["n_targets"],
        "planted_images": {names[r]: (len(c) if c is not None else 0) for r, c in planted.items()},
        "directions": directions,
        "counterfactual": pd.read_csv(counterfactual_summary).to_dict(orient="records"),
        "lds": read_json(lds) if lds else None,
    }
    write_json(output_json, summary)
    return summary


def plot_summary(
    output_png: str | Path, *, comparison: str | Path, counterfactual_csv: str | Path
) -> None:
    """Explained variance of each direction in A's and B's scores, and the counterfactual per checkpoint."""
    import pandas as pd

    from .plotting import pyplot, save_figure

    plt = pyplot()
    stored = read_comparison(comparison)
    names = {"A": stored.attrs["algorithm_A"], "B": stored.attrs["algorithm_B"]}
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (kind, result) in zip(axes[:2], stored.results.items()):
        c = np.arange(result.num_components)
        ax.bar(c - 0.2, result.explained_variance["A"], 0.4, label=names["A"])
        ax.bar(c + 0.2, result.explained_variance["B"], 0.4, label=names["B"])
        ax.set_xticks(c)
        ax.set_xlabel("direction")
        ax.set_ylabel("explained variance")
        ax.set_title(f"{names[result.first]} minus {names[result.second]}", fontsize=9)
        ax.legend(fontsize=7)
    table = pd.read_csv(counterfactual_csv)
    ax = axes[2]
    for i, (algorithm, rows) in enumerate(table.groupby("algorithm", sort=False)):
        ax.scatter(
            np.full(len(rows), i),
            rows["p_target_before"],
            marker="o",
            color="grey",
            label="before" if i == 0 else None,
        )
        ax.scatter(
            np.full(len(rows), i),
            rows["p_target_after"],
            marker="^",
            color="C3",
            label="after" if i == 0 else None,
        )
    ax.set_xticks(range(table["algorithm"].nunique()))
    ax.set_xticklabels(list(dict.fromkeys(table["algorithm"])))
    ax.set_ylabel(f"P(class {int(table['target_class'].iloc[0])})")
    ax.set_ylim(0, 1)
    ax.set_title("counterfactual: patch applied to test images", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, output_png, dpi=110)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a few readable lines (the workflow log and the CLI print this)."""
    names = summary["algorithms"]
    lines = [
        f"ModelDiff {names['A']} (A) vs {names['B']} (B): {summary['n_train']} training, {summary['n_targets']} test examples"
    ]
    for entry in summary["directions"]:
        ev = entry["explained_variance"]
        text = (
            f"  {entry['kind']} ({entry['label']}) direction {entry['component']}: explained variance "
            + ", ".join(f"{k} {v:.3f}" for k, v in ev.items())
        )
        for key, value in entry.items():
            if key.startswith("precision_at_"):
                text += f"; {key} top {value['top']:.2f} bottom {value['bottom']:.2f}"
        lines.append(text)
    for row in summary["counterfactual"]:
        lines.append(
            f"  counterfactual {row['role']} {row['algorithm']}: P(class {row['target_class']}) "
            f"{row['p_target_before']:.3f} -> {row['p_target_after']:.3f} (change {row['delta_p_target']:+.3f} "
            f"± {row['delta_p_target_std']:.3f} over {row['n_checkpoints']} checkpoints)"
        )
    lds = summary.get("lds")
    if lds:
        lines.append(
            f"  LDS of {lds['algorithm']}'s TRAK scores: {lds['lds']:.3f} ± {lds['lds_sem']:.3f} (s.e.m. over "
            f"{lds['num_targets_used']} targets; {lds['num_subsets']} subsets, alpha {lds['alpha']}, "
            f"{lds['num_checkpoints']} checkpoints"
            + ("" if lds.get("out_to_loss", True) else ", unweighted")
            + ")"
        )
        if lds.get("lds_with_out_to_loss") is not None:
            lines.append(
                f"  LDS of the same scores with traker's out-to-loss weighting: {lds['lds_with_out_to_loss']:.3f}"
            )
    return "\n".join(lines)
