"""Lineage: what a model is and where it comes from, and how two models are related.

A checkpoint's metadata holds its lineage (architecture, data set, classes,
algorithm, seeds, parent, derivation, root); every artifact computed from a
checkpoint (a signature, an evaluation) carries the same record, so later
stages learn how two models are related without opening checkpoints again.

Relations of two models (:func:`relation`), first match wins:

- ``same-model``: the same id or the same checkpoint bytes;
- ``retrained`` (``retrained-shared-seed`` when it reuses a seed of the model it was
  retrained from): the lineage that links them passes through a model trained from scratch on
  its parent's data (``retrain_without_class``): it shares the data and recipe but learnt
  nothing from the parent itself, so it is a negative control, never a derived positive;
- ``derived-by-<kinds>``: one descends from the other (the derivation kinds along the
  way, oldest first, joined by ``+``);
- ``common-ancestor``: they share an ancestor (siblings, cousins);
- ``shared-seed``: their root models share an init or data seed (e.g. one seed trained
  by two algorithms);
- ``independent``: nothing shared.

This module needs neither torch nor numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

# The metadata keys of a checkpoint that make up its lineage record.
LINEAGE_KEYS = (
    "name",
    "arch",
    "dataset",
    "num_classes",
    "classes",
    "forget_class",
    "algorithm",
    "init_seed",
    "data_seed",
    "parent",
    "derivation",
    "root",
    "root_algorithm",
)


@dataclass(frozen=True)
class Lineage:
    """One model's lineage record (see the module
    docstring); ``sha256`` is its checkpoint's hash."""

    name: str
    arch: str
    dataset: str
    num_classes: int
    classes: tuple[int, ...] | None = None
    forget_class: int | None = None
    algorithm: str | None = None
    init_seed: int | None = None
    data_seed: int | None = None
    parent: str | None = None
    derivation: str | None = None
    root: str | None = None
    root_algorithm: str | None = None
    sha256: str | None = None

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, Any], *, name: str | None = None, sha256: str | None = None
    ) -> Lineage:
        """The lineage part of checkpoint metadata; ``name``
        (the model id) overrides the stored one."""
        known = {f.name for f in fields(cls)}
        values = {k: meta[k] for k in LINEAGE_KEYS if k in known and meta.get(k) is not None}
        values["name"] = name or values.get("name") or "model"
        if values.get("classes") is not None:
            values["classes"] = tuple(int(c) for c in values["classes"])
        if sha256 is not None:
            values["sha256"] = sha256
        elif meta.get("sha256"):
            values["sha256"] = meta["sha256"]
        return cls(**values)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Lineage:
        return cls.from_metadata(values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["classes"] is not None:
            out["classes"] = list(out["classes"])
        return out

    @property
    def derived(self) -> bool:
        return bool(self.derivation)

    @property
    def profile(self) -> tuple[str, str]:
        """(architecture, algorithm) that picks a reference setting: a derived model counts as its
        own architecture trained with its root model's algorithm."""
        algorithm = self.root_algorithm if self.derived else self.algorithm
        return str(self.arch), str(algorithm or self.algorithm or "imported")

    @property
    def task_classes(self) -> tuple[int, ...] | None:
        """The classes the model was made to predict: its class subset (None: every class of its
        head) less the class it was retrained without or made to forget (``forget_class``).

        Two models that both never predict class 3 agree on every image of a 3 by construction,
        so they are compared against models of the same class set, not against 10-class ones."""
        if self.forget_class is None:
            return self.classes
        classes = self.classes if self.classes is not None else range(int(self.num_classes))
        return tuple(c for c in classes if c != self.forget_class)

    @property
    def task(self) -> tuple[str, int, tuple[int, ...] | None]:
        """What the model predicts: data set, number of classes and class subset."""
        return self.dataset, int(self.num_classes), self.classes


def ancestry(lineages: Mapping[str, Lineage], model: str) -> list[str]:
    """``model`` and its ancestors, nearest first, as far as ``lineages`` knows them."""
    chain = [model]
    seen = {model}
    while True:
        record = lineages.get(chain[-1])
        parent = record.parent if record is not None else None
        if not parent or parent in seen:
            return chain
        chain.append(parent)
        seen.add(parent)


def relation(lineages: Mapping[str, Lineage], a: str, b: str) -> str:
    """How models ``a`` and ``b`` are related (see the module docstring)."""
    la_rec, lb_rec = lineages[a], lineages[b]
    if a == b or (la_rec.sha256 and la_rec.sha256 == lb_rec.sha256):
        return "same-model"
    chain_a, chain_b = ancestry(lineages, a), ancestry(lineages, b)
    for child_chain, ancestor in ((chain_a, b), (chain_b, a)):
        if ancestor in child_chain:
            steps = child_chain[: child_chain.index(ancestor)]
            retrained = _retrained(lineages, steps)
            if retrained is not None:
                return retrained
            kinds = [str(lineages[s].derivation or "unknown") for s in reversed(steps)]
            return "derived-by-" + "+".join(kinds)
    common = [m for m in chain_a if m in set(chain_b)]
    if common:
        link = chain_a[: chain_a.index(common[0])] + chain_b[: chain_b.index(common[0])]
        return _retrained(lineages, link) or "common-ancestor"
    root_a, root_b = lineages.get(chain_a[-1]), lineages.get(chain_b[-1])
    if root_a is not None and root_b is not None:
        for key in ("init_seed", "data_seed"):
            seed_a, seed_b = getattr(root_a, key), getattr(root_b, key)
            if seed_a is not None and seed_a == seed_b:
                return "shared-seed"
    return "independent"


def _retrained(lineages: Mapping[str, Lineage], steps: list[str]) -> str | None:
    """``retrained`` (or ``retrained-shared-seed``) if a model on ``steps`` (each with its parent
    next in its chain) was trained from scratch on its parent's data; else None."""
    from .derive.kinds import KINDS

    for model in steps:
        record = lineages[model]
        kind = KINDS.get(str(record.derivation))
        if kind is not None and not kind.inherits:
            parent = lineages.get(record.parent or "")
            shared = parent is not None and any(
                getattr(record, k) is not None and getattr(record, k) == getattr(parent, k)
                for k in ("init_seed", "data_seed")
            )
            return "retrained-shared-seed" if shared else "retrained"
    return None


def ancestor_of_pair(lineages: Mapping[str, Lineage], a: str, b: str) -> str:
    """Of two models where one descends from the other, the ancestor."""
    return b if b in ancestry(lineages, a) else a


def group_of(relation_name: str) -> str:
    """``derived`` (one descends from the other), ``siblings`` (a common ancestor),
    ``retrained``, else the relation itself."""
    if relation_name.startswith("derived-by-"):
        return "derived"
    if relation_name == "common-ancestor":
        return "siblings"
    if relation_name.startswith("retrained"):
        return "retrained"
    return relation_name


def family(lineages: Mapping[str, Lineage], model: str) -> str:
    """The first model of ``model``'s lineage as far as ``lineages`` knows it (its family)."""
    return ancestry(lineages, model)[-1]
