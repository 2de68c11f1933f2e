"""Unlearning trajectories: an unlearned model measured at every epoch against the original.

An unlearning method is a derivation kind (:data:`~modelkin.unlearning.plan.METHOD_KINDS`):
relabelling the forgotten class at random or gradient ascent on it (approximate unlearning,
starting from the original's weights), or retraining from scratch without it (exact unlearning).
:func:`unlearning_trajectory` derives the model as :func:`modelkin.derive.run.derive_model` does and
measures each snapshot in memory (before training, epoch 0, and after every epoch): its signature
of every configured method on the shared probe (:func:`modelkin.signatures.compute
.compute_signature`), every distance of the method to the original's signature (the method's
``pairwise``), and its accuracy on the forgotten class and on the others. No checkpoint is written
per epoch; the record says what was measured (probes with their hashes, settings, seeds). Every row
also carries the model's lineage relation to the original (:func:`modelkin.lineage.relation`) and
whether that makes it a derived positive: the retrained model is ``retrained``, never a positive.

:func:`independent_rows` measures independent zoo models the same way: the distance of a model
that shares nothing with the original. A retrained model should look like one of them; an
approximately unlearned one should stay close to the original (METHODS.md section 5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..checkpoint import Checkpoint, load_checkpoint
from ..data import Split, load_split
from ..device import resolve_device
from ..evaluate import class_accuracies, predict
from ..io import atomic_path, write_json
from ..lineage import Lineage, group_of, relation
from ..signatures.compute import compute_signature
from ..signatures.registry import get_method
from ..signatures.store import Probe, read_probe
from .plan import INDEPENDENT, METHOD_KINDS, UnlearningError

log = logging.getLogger(__name__)


def distance_column(method: str, metric: str) -> str:
    """The trajectory table's column of one distance (``zest_cos``, ``gradfield_cos``, ...)."""
    return f"{method}_{metric}"


@dataclass
class Measurement:
    """How every snapshot is measured: the original's signatures on the probes, the test split
    and the forgotten class's training images."""

    signature_methods: tuple[str, ...]
    probes: Mapping[str, Probe | None]
    settings: Mapping[str, Mapping[str, Any]]  # per method: signature settings and chunk_size
    originals: dict[str, np.ndarray]
    test: Split
    forget_train: Split
    forget_class: int
    device: torch.device

    @classmethod
    def of(
        cls,
        original: nn.Module,
        *,
        signature_methods: Sequence[str],
        probes: Mapping[str, Probe | None],
        settings: Mapping[str, Mapping[str, Any]],
        test: Split,
        train: Split,
        forget_class: int,
        device: torch.device,
    ) -> Measurement:
        forget_train = train.subset(torch.nonzero(train.y == int(forget_class)).flatten())
        if len(forget_train) == 0 or not bool((test.y == int(forget_class)).any()):
            raise UnlearningError(
                f"class {forget_class} has no training or no test images in {test.info.name}"
            )
        measure = cls(
            tuple(signature_methods),
            probes,
            settings,
            {},
            test,
            forget_train,
            int(forget_class),
            device,
        )
        measure.originals = {
            m: measure.signature(m, original, "the original") for m in signature_methods
        }
        return measure

    def signature(self, method: str, model: nn.Module, what: str) -> np.ndarray:
        settings = dict(self.settings.get(method) or {})
        chunk_size = settings.pop("chunk_size", None)
        computed = compute_signature(
            method,
            model,
            self.probes.get(method),
            device=self.device,
            chunk_size=chunk_size,
            what=what,
            **settings,
        )
        return np.asarray(computed.data)

    def __call__(self, model: nn.Module, what: str) -> dict[str, float]:
        """Accuracies and every distance to the original of ``model`` (its weights and training
        flag are left as they were; the time it took is logged, never stored)."""
        was_training = model.training
        start = time.perf_counter()
        try:
            model.eval()
            row: dict[str, float] = dict(  # forget_class, forget/retain accuracy
                class_accuracies(model, self.test, self.forget_class, self.device)
            )
            forgotten = predict(model, self.forget_train.x, device=self.device)
            row["forget_train_accuracy"] = float((forgotten == self.forget_train.y).float().mean())
            for method in self.signature_methods:
                entry = get_method(method)
                current = self.signature(method, model, what)
                matrices = entry.pairwise([self.originals[method], current])
                for metric, matrix in matrices.items():
                    row[distance_column(method, metric)] = float(matrix[0, 1])
        finally:
            model.train(was_training)
        log.info("measured %s in %.1f s", what, time.perf_counter() - start)
        return row


def lineage_columns(parent: Checkpoint, parent_id: str, meta: Mapping[str, Any], name: str):
    """``relation`` (:func:`modelkin.lineage.relation` of the model ``name`` with metadata
    ``meta`` to the original) and ``positive`` (whether it counts as derived from the original:
    the relatedness tables' positives; a retrained model never does)."""
    lineages = {
        parent_id: Lineage.from_metadata(parent.meta, name=parent_id, sha256=parent.sha256),
        name: Lineage.from_metadata(meta, name=name),
    }
    related = relation(lineages, name, parent_id)
    return {"relation": related, "positive": group_of(related) == "derived"}


def unlearning_trajectory(
    parent: Checkpoint,
    measure: Measurement,
    *,
    method: str,
    settings: Mapping[str, Any],
    prepared: str | Path,
    model_id: str,
    parent_id: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Unlearn ``parent`` with ``method`` (``settings``: its derivation settings) and measure every
    snapshot; returns the rows (one per epoch, 0 = before training) and the derived model's
    metadata (recipe, seeds, history)."""
    from ..derive.run import derive_model

    if method not in METHOD_KINDS or settings.get("kind") != METHOD_KINDS[method]:
        raise UnlearningError(
            f"unlearning method {method!r} needs derivation kind {METHOD_KINDS.get(method)!r}, "
            f"got settings {dict(settings)}"
        )
    rows: list[dict[str, Any]] = []

    def on_epoch(epoch: int, model: nn.Module) -> None:
        row = measure(model, f"{model_id} at epoch {epoch}")
        rows.append({"epoch": epoch, **row})
        log.info(
            "%s epoch %d: forget accuracy %.3f, retain accuracy %.3f, %s",
            method,
            epoch,
            row["forget_accuracy"],
            row["retain_accuracy"],
            ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.endswith("_cos")),
        )

    _, meta = derive_model(
        parent,
        dict(settings),
        prepared=prepared,
        model_id=model_id,
        parent_id=parent_id,
        derivation=f"unlearning_{method}",
        device=measure.device,
        on_epoch=on_epoch,
    )
    history = {int(h["epoch"]): h for h in meta.get("history") or []}
    lineage = lineage_columns(parent, parent_id, meta, model_id)
    out = []
    for row in rows:
        trained = history.get(int(row["epoch"]), {})
        out.append(
            {
                "unlearning": method,
                "kind": METHOD_KINDS[method],
                "model": model_id,
                "epoch": int(row["epoch"]),
                **lineage,
                "train_loss": trained.get("loss", float("nan")),
                "train_accuracy": trained.get("train_accuracy", float("nan")),
                **{k: v for k, v in row.items() if k != "epoch"},
            }
        )
    return out, meta


def independent_rows(
    models: Mapping[str, nn.Module],
    measure: Measurement,
    relations: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The same measurements of models that share nothing with the original (no epoch);
    ``relations``: per model, its :func:`lineage_columns` (default: independent, no positive)."""
    unrelated = {"relation": "independent", "positive": False}
    return [
        {
            "unlearning": INDEPENDENT,
            "kind": "",
            "model": name,
            "epoch": float("nan"),
            **((relations or {}).get(name) or unrelated),
            **measure(model, name),
        }
        for name, model in models.items()
    ]


# ---------------------------------------------------------------------------------------------
# Files


def _measurement(
    parent: Checkpoint,
    *,
    prepared: str | Path,
    probes: Mapping[str, str | Path],
    signature_methods: Sequence[str],
    signature_settings: Mapping[str, Mapping[str, Any]],
    forget_class: int,
    device: torch.device,
) -> Measurement:
    stored: dict[str, Probe | None] = {}
    for method in signature_methods:
        kind = get_method(method).probe_kind
        if kind is not None and method not in probes:
            raise UnlearningError(f"no probe given for signature method {method}")
        stored[method] = read_probe(probes[method], kind=kind) if kind is not None else None
    return Measurement.of(
        parent.model,
        signature_methods=signature_methods,
        probes=stored,
        settings=signature_settings,
        test=load_split(prepared, "test"),
        # the training images the original saw (a recipe may train on the first N only)
        train=load_split(
            prepared, "train", limit=(parent.meta.get("recipe") or {}).get("train_limit")
        ),
        forget_class=forget_class,
        device=device,
    )


def _record(
    parent: Checkpoint, measure: Measurement, *, parent_id: str, probe: str, **extra: Any
) -> dict[str, Any]:
    return {
        "modelkin_version": __version__,
        "parent": parent_id,
        "parent_checkpoint": str(parent.path),
        "parent_sha256": parent.sha256,
        "forget_class": measure.forget_class,
        "probe": probe,
        "probes": {
            m: None if p is None else {"path": str(p.path), "sha256": p.sha256, "params": p.params}
            for m, p in measure.probes.items()
        },
        "signature_methods": list(measure.signature_methods),
        "signature_settings": {m: dict(s) for m, s in measure.settings.items()},
        "test_images": len(measure.test),
        "forget_test_images": int((measure.test.y == measure.forget_class).sum()),
        "forget_train_images": len(measure.forget_train),
        "device": str(measure.device),
        **extra,
    }


def _write(rows: list[dict[str, Any]], record: dict[str, Any], csv: str | Path, json: str | Path):
    with atomic_path(csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    write_json(json, {**record, "columns": list(pd.DataFrame(rows).columns)})


def trajectory_files(
    output_csv: str | Path,
    output_json: str | Path,
    *,
    parent: str | Path,
    prepared: str | Path,
    probes: Mapping[str, str | Path],
    method: str,
    settings: Mapping[str, Any],
    model_id: str,
    parent_id: str,
    forget_class: int,
    signature_methods: Sequence[str],
    signature_settings: Mapping[str, Mapping[str, Any]],
    probe: str,
    device: str = "auto",
) -> Path:
    """One unlearning method's trajectory as a CSV (a row per epoch) and its record as JSON."""
    torch_device = resolve_device(device)
    original = load_checkpoint(parent, torch_device)
    measure = _measurement(
        original,
        prepared=prepared,
        probes=probes,
        signature_methods=signature_methods,
        signature_settings=signature_settings,
        forget_class=forget_class,
        device=torch_device,
    )
    rows, meta = unlearning_trajectory(
        original,
        measure,
        method=method,
        settings=settings,
        prepared=prepared,
        model_id=model_id,
        parent_id=parent_id,
    )
    recorded = ("derivation_settings", "recipe", "init_seed", "data_seed", "epochs", "history")
    record = _record(
        original,
        measure,
        parent_id=parent_id,
        probe=probe,
        unlearning=method,
        kind=METHOD_KINDS[method],
        model=model_id,
        measured_epochs=[int(r["epoch"]) for r in rows],
        **{key: meta.get(key) for key in recorded},
    )
    _write(rows, record, output_csv, output_json)
    return Path(output_csv)


def independent_files(
    output_csv: str | Path,
    output_json: str | Path,
    *,
    parent: str | Path,
    prepared: str | Path,
    probes: Mapping[str, str | Path],
    checkpoints: Sequence[str | Path],
    models: Sequence[str],
    parent_id: str,
    forget_class: int,
    signature_methods: Sequence[str],
    signature_settings: Mapping[str, Mapping[str, Any]],
    probe: str,
    device: str = "auto",
) -> Path:
    """The independent models' rows (CSV) and record (JSON)."""
    if len(checkpoints) != len(models):
        raise UnlearningError(f"{len(checkpoints)} checkpoints for {len(models)} model ids")
    torch_device = resolve_device(device)
    original = load_checkpoint(parent, torch_device)
    measure = _measurement(
        original,
        prepared=prepared,
        probes=probes,
        signature_methods=signature_methods,
        signature_settings=signature_settings,
        forget_class=forget_class,
        device=torch_device,
    )
    loaded = {
        name: load_checkpoint(path, torch_device)
        for name, path in zip(models, checkpoints, strict=True)
    }
    relations = {
        name: lineage_columns(original, parent_id, c.meta, name) for name, c in loaded.items()
    }
    rows = independent_rows({name: c.model for name, c in loaded.items()}, measure, relations)
    record = _record(
        original,
        measure,
        parent_id=parent_id,
        probe=probe,
        unlearning=INDEPENDENT,
        models={
            name: {"checkpoint": str(c.path), "sha256": c.sha256} for name, c in loaded.items()
        },
    )
    _write(rows, record, output_csv, output_json)
    return Path(output_csv)
