"""The published ModelDiff API (Shah et al.'s ``modeldiff`` package), on any device.

``ModelDiff(modelA, modelB, ckptsA, ckptsB, train_loader)``, ``get_A_minus_B(val_loader,
num_pca_comps)``, ``get_B_minus_A(...)`` and ``get_A_minus_B_from_scores`` /
``get_B_minus_A_from_scores``. TRAK scores come from :mod:`modelkin.attribution` on the configured
device (the package needs CUDA).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..attribution.settings import TrakSettings
from ..attribution.trak import trak_scores
from ..checkpoint import load_checkpoint
from .directions import DistinguishingDirections, ModelDiffError, residual_pca


class ModelDiff:
    """Compare two learning algorithms through TRAK scores of their checkpoints (published API).

    ``modelA``/``modelB``: architectures (their weights are not used); ``modelA_ckpts``/
    ``modelB_ckpts``: state dicts or checkpoint files; ``train_loader``: the training set in a
    fixed order, unaugmented (a DataLoader with shuffle=False, a modelkin Split, or an (x, y) pair
    of tensors). ``train_loader_B``: the training set as algorithm B saw it, when that differs
    (default: the same). ``trak``: TRAK settings (a ``TrakSettings`` or a dict). Given as a dict or
    left out, ``out_to_loss`` defaults to False: unweighted TRAK scores, with which ModelDiff finds
    what the traker weighting hides (docs/modeldiff.md); pass ``out_to_loss=True`` for traker's
    scores.

    Scores are computed afresh on every call (nothing is cached per loader): a loader's identity
    says nothing about its content. To compare both ways without scoring twice, take
    :meth:`attribute` of each algorithm once and pass them to the ``*_from_scores`` methods.
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
        if (modelA is None) != (modelB is None):
            raise ModelDiffError(
                "give both modelA and modelB (to compute scores), or neither (to work from scores)"
            )
        if modelA is not None:
            if not self.modelA_ckpts or not self.modelB_ckpts:
                raise ModelDiffError(
                    "ModelDiff needs at least one checkpoint per algorithm "
                    "(modelA_ckpts, modelB_ckpts)"
                )
            if train_loader is None:
                raise ModelDiffError(
                    "ModelDiff needs the train_loader the checkpoints were trained on"
                )

    def _models(self, which: str) -> Iterator[torch.nn.Module]:
        """Algorithm ``which``'s checkpoints as models, one at a time."""
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
        """TRAK scores of algorithm ``which`` ("A" or "B") on ``val_loader``'s examples, as
        [n_test × n_train]; with ``scores_save_dir``, also saved there as ``scores_{which}.npy``."""
        if self.modelA is None:
            raise ModelDiffError(
                "this ModelDiff was built without models; use get_A_minus_B_from_scores"
            )
        if which not in ("A", "B"):
            raise ModelDiffError(f'which must be "A" or "B", not {which!r}')
        scores = trak_scores(
            self._models(which),
            self.train_loader if which == "A" else self.train_loader_B,
            val_loader,
            self.trak,
            device=self.device,
            desc=f"TRAK {self.names[which]}",
        ).T.numpy()
        if self.scores_save_dir is not None:
            self.scores_save_dir.mkdir(parents=True, exist_ok=True)
            np.save(self.scores_save_dir / f"scores_{which}.npy", scores)
        return scores

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
        """B-minus-A from precomputed scores (A's first, as the arguments say), each
        [n_test × n_train]."""
        return self._compare(scoresA, scoresB, num_pca_comps, "B-minus-A")
