"""Derived models ("suspects"): copies, compressions, extractions, transfers and unlearned versions of a parent.

Each derivation takes a parent checkpoint and produces a new checkpoint whose
metadata records ``parent`` (the parent's model id), ``parent_sha256``,
``derivation`` (the kind), ``algorithm`` (the configured derivation name),
``root`` / ``root_algorithm`` (the zoo model at the top of the lineage, whose
training algorithm picks the reference setting for distances) and the settings
and recipe used. The kinds follow the suspects of Zest and ModelGiF:

========================  ===================================================================
``finetune``              the parent trained further on its own task at a lower learning rate
``prune``                 global magnitude pruning of conv/linear weights to ``sparsity``, then
                          a short fine-tune with the mask held fixed (the result is a plain
                          state dict with exact zeros)
``extract_labels``        a fresh student (any architecture) trained on the parent's hard labels
                          of the query inputs (model extraction, "Extract-L")
``extract_probs``         the same on the parent's probabilities at ``temperature``
                          (distillation with soft targets, "Extract-P")
``transfer``              the parent's features with a new head, fine-tuned on another class
                          subset (relabelled 0..k-1) or another data set of the same input shape
``retrain_without_class`` a fresh model trained with the parent's recipe on data without one class
``unlearn_relabel``       the parent fine-tuned with that class's images relabelled at random
========================  ===================================================================

Derived model ids are ``derived/{dataset}/{derivation}/{parent id}/s{seed}``;
``dataset`` is the data set the derived model works on (the target of a
transfer). The student's torch seeds are drawn from a hash of that id, so no
student ever shares initial weights or batch order with its parent, with a zoo
model or with another student.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import Checkpoint, load_checkpoint, read_metadata, save_checkpoint
from .data import Split, get_dataset_info, load_split
from .device import resolve_device
from .io import file_sha256
from .models import seeded_model
from .train import TrainRecipe, fit, load_training_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DerivationKind:
    name: str
    description: str
    starts_from: str  # "parent" (its weights) or "scratch" (a fresh student)
    settings: dict[
        str, Any
    ]  # the kind's own settings and their defaults (None: required or "the parent's")
    recipe_defaults: dict[str, Any]  # applied over the parent's recipe, under the user's ``recipe``
    lr_factor: float | None = (
        None  # default multiplier of the parent's lr (None: keep the recipe's lr)
    )


KINDS: dict[str, DerivationKind] = {
    k.name: k
    for k in [
        DerivationKind(
            "finetune",
            "the parent trained further on its own task at a lower learning rate",
            "parent",
            {},
            {"epochs": 3, "schedule": "constant"},
            lr_factor=0.1,
        ),
        DerivationKind(
            "prune",
            "global magnitude pruning of conv/linear weights, then a short fine-tune with the mask fixed",
            "parent",
            {"sparsity": 0.5, "finetune": True},
            {"epochs": 2, "schedule": "constant"},
            lr_factor=0.1,
        ),
        DerivationKind(
            "extract_labels",
            "a fresh student trained on the parent's hard labels of the query inputs",
            "scratch",
            {"arch": None, "queries": "train", "mixup_queries": 0},
            {"adversary": "none", "augment": False, "planted_patch": None},
        ),
        DerivationKind(
            "extract_probs",
            "a fresh student trained on the parent's softmax probabilities (at a temperature) of the query inputs",
            "scratch",
            {"arch": None, "queries": "train", "temperature": 1.0, "mixup_queries": 0},
            {"adversary": "none", "augment": False, "planted_patch": None},
        ),
        DerivationKind(
            "transfer",
            "the parent's features with a new head, fine-tuned on another class subset or data set",
            "parent",
            {"classes": None, "dataset": None, "train_head_only": False},
            {"epochs": 5, "planted_patch": None},
            lr_factor=0.5,
        ),
        DerivationKind(
            "retrain_without_class",
            "a fresh model trained with the parent's recipe on the training data without one class",
            "scratch",
            {"forget_class": None, "arch": None},
            {},
        ),
        DerivationKind(
            "unlearn_relabel",
            "the parent fine-tuned with one class's training images relabelled at random (approximate unlearning)",
            "parent",
            {"forget_class": None},
            {"epochs": 3, "schedule": "constant"},
            lr_factor=0.5,
        ),
    ]
}

COMMON_SETTINGS = ("kind", "recipe", "lr_factor", "parents", "seeds")
DERIVED_PREFIX = "derived"
_DERIVED_ID = re.compile(
    r"^derived/(?P<dataset>[^/]+)/(?P<derivation>[^/]+)/(?P<parent>.+)/s(?P<seed>\d+)$"
)


class DerivationError(ValueError):
    """A derivation whose settings do not fit its kind, its parent or its data."""


# ---------------------------------------------------------------------------------------------
# Ids, seeds, settings


def derived_model_id(dataset: str, derivation: str, parent_id: str, seed: int) -> str:
    return f"{DERIVED_PREFIX}/{dataset}/{derivation}/{parent_id}/s{int(seed)}"


def parse_derived_model_id(model_id: str) -> dict[str, Any]:
    """``derived/{dataset}/{derivation}/{parent}/s{seed}`` -> its parts (ValueError for anything else)."""
    match = _DERIVED_ID.match(model_id)
    if not match:
        raise ValueError(
            f"{model_id!r} is not a derived model id (derived/DATASET/DERIVATION/PARENT_ID/sSEED)"
        )
    parts = match.groupdict()
    parts["seed"] = int(parts["seed"])
    return parts


def is_derived_id(model_id: str) -> bool:
    return model_id.startswith(DERIVED_PREFIX + "/")


def student_seeds(model_id: str) -> tuple[int, int]:
    """(init_seed, data_seed) of a derived model: two 31-bit numbers hashed from its id.

    Seeding from the id (not from the configured student seed alone) keeps students of different
    parents or derivations apart; a student that started from its parent's initial weights would
    look related for the wrong reason.
    """
    digest = hashlib.sha256(model_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF, int.from_bytes(
        digest[4:8], "big"
    ) & 0x7FFFFFFF


def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The kind's defaults filled in; unknown or inapplicable keys and missing required ones are errors."""
    if "kind" not in settings:
        raise DerivationError(
            f"derivation settings {settings} lack 'kind'; choose one of {', '.join(KINDS)}"
        )
    kind = KINDS.get(settings["kind"])
    if kind is None:
        raise DerivationError(
            f"unknown derivation kind {settings['kind']!r}; choose one of {', '.join(KINDS)}"
        )
    allowed = set(COMMON_SETTINGS) | set(kind.settings)
    if kind.lr_factor is None:
        allowed.discard("lr_factor")
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise DerivationError(
            f"setting(s) {unknown} do not apply to a {kind.name} derivation; its settings: {sorted(allowed)}"
        )
    out = {
        **kind.settings,
        **{k: v for k, v in settings.items() if v is not None or k not in kind.settings},
    }
    out.setdefault("recipe", {})
    out["recipe"] = dict(out["recipe"] or {})
    if kind.lr_factor is not None:
        out.setdefault("lr_factor", kind.lr_factor)
    if (
        kind.name in ("retrain_without_class", "unlearn_relabel")
        and out.get("forget_class") is None
    ):
        raise DerivationError(
            f"a {kind.name} derivation needs 'forget_class' (the class to forget)"
        )
    for workflow_only in (
        "parents",
        "seeds",
    ):  # which models to derive, not how: not part of the recipe
        out.pop(workflow_only, None)
    if kind.name == "prune" and not 0.0 < float(out["sparsity"]) < 1.0:
        raise DerivationError(f"prune sparsity must be in (0, 1), got {out['sparsity']}")
    if kind.name == "extract_probs" and float(out["temperature"]) <= 0:
        raise DerivationError(
            f"extract_probs temperature must be positive, got {out['temperature']}"
        )
    if kind.name in ("extract_labels", "extract_probs"):
        if out["queries"] not in ("train", "test"):
            raise DerivationError(f"queries must be 'train' or 'test', got {out['queries']!r}")
        if int(out["mixup_queries"]) < 0:
            raise DerivationError(f"mixup_queries must be 0 or more, got {out['mixup_queries']}")
    if kind.name == "transfer":
        if out["classes"] is None and out["dataset"] is None:
            raise DerivationError(
                "a transfer derivation needs 'classes' (a class subset, relabelled 0..k-1) and/or 'dataset' "
                "(another data set with the parent's input shape)"
            )
        classes = out["classes"]
        if classes is not None and (len(classes) < 2 or len(set(classes)) != len(classes)):
            raise DerivationError(
                f"transfer classes must be at least two distinct classes, got {classes}"
            )
    return out


def derived_dataset(parent_dataset: str, settings: dict[str, Any]) -> str:
    """The data set a derived model works on: the parent's, or a transfer's target."""
    if settings["kind"] == "transfer" and settings.get("dataset"):
        return settings["dataset"]
    return parent_dataset


def derived_recipe(parent_meta: dict[str, Any], settings: dict[str, Any]) -> TrainRecipe:
    """The parent's recipe, then the kind's defaults, then ``lr_factor`` x the parent's lr, then ``recipe``."""
    kind = KINDS[settings["kind"]]
    base = dict(parent_meta.get("recipe") or {})
    recipe = {**base, **kind.recipe_defaults}
    lr_factor = settings.get("lr_factor")
    if lr_factor is not None:
        recipe["lr"] = float(base.get("lr", TrainRecipe().lr)) * float(lr_factor)
    recipe.update(settings.get("recipe") or {})
    return TrainRecipe.from_dict(recipe)


# ---------------------------------------------------------------------------------------------
# Data


def relabel_classes(split: Split, classes: list[int]) -> Split:
    """The images of ``classes`` only, labelled by their position in ``classes`` (0..k-1)."""
    classes = [int(c) for c in classes]
    top = int(split.y.max()) + 1 if len(split) else 0
    missing = [c for c in classes if not (split.y == c).any()]
    if missing:
        raise DerivationError(
            f"class(es) {missing} have no images in this {split.info.name} split (classes 0..{top - 1})"
        )
    mapping = torch.full((max(top, max(classes) + 1),), -1, dtype=torch.long)
    mapping[torch.as_tensor(classes)] = torch.arange(len(classes))
    keep = torch.nonzero(mapping[split.y] >= 0).flatten()
    return Split(split.x[keep], mapping[split.y[keep]], split.info)


def without_class(split: Split, forget_class: int) -> Split:
    return split.subset(torch.nonzero(split.y != int(forget_class)).flatten())


def relabel_class_at_random(split: Split, forget_class: int, num_classes: int, seed: int) -> Split:
    """``forget_class``'s labels replaced by a uniformly drawn other class (seeded)."""
    y = split.y.clone()
    chosen = torch.nonzero(y == int(forget_class)).flatten()
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, num_classes - 1, (len(chosen),), generator=generator)
    y[chosen] = draw + (draw >= int(forget_class)).long()  # skip the forgotten class itself
    return Split(split.x, y, split.info)


def mixup_queries(x: torch.Tensor, copies: int, seed: int) -> torch.Tensor:
    """``x`` followed by ``copies`` blends of each image with a random other one, weight ~ U(0, 1).

    An extraction attacker is not limited to natural images: blends lie between the classes, where
    a model's own decision boundaries (not the data's labels) decide the answer.
    """
    if copies <= 0:
        return x
    generator = torch.Generator().manual_seed(seed)
    blends = [x]
    for _ in range(copies):
        partner = torch.randint(0, len(x), (len(x),), generator=generator)
        weight = torch.rand(len(x), 1, 1, 1, generator=generator)
        blends.append(weight * x + (1 - weight) * x[partner])
    return torch.cat(blends)


@torch.no_grad()
def query_parent(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device,
    probabilities: bool,
    temperature: float = 1.0,
    batch_size: int = 512,
) -> torch.Tensor:
    """The parent's answers on ``x``: hard labels (N,) or softmax(logits / temperature) rows (N, C)."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size].to(device)).float()
        out.append(
            (
                torch.softmax(logits / temperature, dim=1) if probabilities else logits.argmax(1)
            ).cpu()
        )
    return torch.cat(out)


def evaluation_split(meta: dict[str, Any], prepared: str | Path) -> Split:
    """The test split a (derived) model is evaluated on: a transfer's class subset relabelled as it was trained."""
    test = load_split(prepared, "test")
    if meta.get("classes"):
        test = relabel_classes(test, meta["classes"])
    return test


def class_accuracies(model: nn.Module, split: Split, forget_class: int, device) -> dict[str, float]:
    """Accuracy on the forgotten class's images and on the rest, and how often the class is predicted."""
    predictions = query_parent(model, split.x, device=device, probabilities=False)
    forget = split.y == int(forget_class)
    return {
        "forget_class": int(forget_class),
        "forget_accuracy": float((predictions[forget] == split.y[forget]).float().mean()),
        "retain_accuracy": float((predictions[~forget] == split.y[~forget]).float().mean()),
        "forget_class_predicted_fraction": float((predictions == int(forget_class)).float().mean()),
    }


# ---------------------------------------------------------------------------------------------
# Model surgery


def head_name(model: nn.Module) -> str:
    """The classification head: the last ``nn.Linear`` in module order (every zoo architecture ends in one)."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise DerivationError(f"{type(model).__name__} has no nn.Linear head to replace")
    return linears[-1]


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def global_magnitude_prune(model: nn.Module, sparsity: float) -> list[tuple[nn.Module, str]]:
    """Zero the ``sparsity`` fraction of conv/linear weights with the smallest |w| over the whole model.

    Leaves torch's pruning re-parametrisation in place (weight = weight_orig * mask), so that a
    following fine-tune keeps the mask fixed; :func:`make_pruning_permanent` removes it.
    """
    from torch.nn.utils import prune

    targets = prunable_weights(model)
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return targets


def make_pruning_permanent(targets: list[tuple[nn.Module, str]]) -> None:
    from torch.nn.utils import prune

    for module, name in targets:
        prune.remove(module, name)


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries among all conv/linear weights."""
    zeros = total = 0
    for module, name in prunable_weights(model):
        weight = getattr(module, name)
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total


def transfer_model(
    parent: nn.Module, parent_meta: dict[str, Any], dataset: str, num_classes: int, init_seed: int
) -> tuple[nn.Module, str]:
    """A model of the parent's architecture for ``dataset`` with ``num_classes`` outputs: the parent's
    weights everywhere except a freshly initialised head. Returns (model, head name)."""
    info = get_dataset_info(dataset)
    parent_info = get_dataset_info(parent_meta["dataset"])
    if info.shape != parent_info.shape:
        raise DerivationError(
            f"cannot transfer a {parent_meta['dataset']} model (inputs {parent_info.shape}) to {dataset} "
            f"(inputs {info.shape}); choose a data set with the same input shape"
        )
    model = seeded_model(parent_meta["arch"], info, init_seed, num_classes=num_classes)
    head = head_name(model)
    state = {k: v for k, v in parent.state_dict().items() if not k.startswith(head + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(head + ".") for k in missing):
        raise DerivationError(
            f"parent weights do not fit the transfer model (missing {missing}, unexpected {unexpected})"
        )
    return model, head


# ---------------------------------------------------------------------------------------------
# Derivation


@dataclass
class Derived:
    model: nn.Module
    meta: dict[str, Any]


def derive_model(
    parent: Checkpoint,
    settings: dict[str, Any],
    *,
    prepared: str | Path,
    model_id: str,
    parent_id: str,
    derivation: str | None = None,
    device: str | torch.device = "auto",
    resume_path: str | Path | None = None,
) -> Derived:
    """Derive a model from ``parent`` (a loaded checkpoint) as ``settings`` say (see :data:`KINDS`).

    ``prepared`` is the prepared data set the derived model trains on (the transfer target's for a
    transfer to another data set, else the parent's). Returns the model (eval mode, on ``device``)
    and its checkpoint metadata.
    """
    settings = resolve_settings(settings)
    kind = settings["kind"]
    device = resolve_device(device)
    parent_meta = parent.meta
    init_seed, data_seed = student_seeds(model_id)
    recipe = derived_recipe(parent_meta, settings)
    dataset = derived_dataset(parent_meta["dataset"], settings)
    train = load_training_split(prepared, recipe)
    if train.info.name != dataset:
        raise DerivationError(
            f"{prepared} holds {train.info.name}, but this {kind} derivation trains on {dataset}"
        )
    parent_model = parent.model.to(device).eval()
    extra: dict[str, Any] = {}
    parameters = None
    train_model = True
    arch = settings.get("arch") or parent_meta["arch"]
    num_classes = parent_meta["num_classes"]

    if kind in ("finetune", "prune", "unlearn_relabel"):
        model = copy.deepcopy(parent_model)
        if kind == "prune":
            pruned = global_magnitude_prune(model, settings["sparsity"])
            train_model = bool(settings["finetune"])
        if kind == "unlearn_relabel":
            _check_class(settings["forget_class"], num_classes)
            train = relabel_class_at_random(train, settings["forget_class"], num_classes, data_seed)
    elif kind in ("extract_labels", "extract_probs"):
        if settings["queries"] == "test":
            queries = load_split(prepared, "test")
        else:
            queries = train
        probabilities = kind == "extract_probs"
        inputs = mixup_queries(queries.x, int(settings["mixup_queries"]), data_seed)
        labels = query_parent(
            parent_model,
            inputs,
            device=device,
            probabilities=probabilities,
            temperature=float(settings.get("temperature", 1.0)),
        )
        train = Split(inputs, labels, queries.info)
        model = seeded_model(arch, train.info, init_seed, num_classes=num_classes)
        extra["queries"] = {
            "split": settings["queries"],
            "n": len(train),
            "mixup_copies": int(settings["mixup_queries"]),
        }
        if not probabilities:
            extra["query_label_agreement"] = float(
                (labels[: len(queries)] == queries.y).float().mean()
            )
    elif kind == "transfer":
        classes = settings.get("classes")
        if classes:
            train = relabel_classes(train, classes)
            num_classes = len(classes)
            extra["classes"] = [int(c) for c in classes]
        else:
            num_classes = train.info.num_classes
        model, head = transfer_model(parent_model, parent_meta, dataset, num_classes, init_seed)
        if settings["train_head_only"]:
            parameters = list(model.get_submodule(head).parameters())
        extra["head"] = head
        extra["source_dataset"] = parent_meta["dataset"]
    elif kind == "retrain_without_class":
        _check_class(settings["forget_class"], num_classes)
        train = without_class(train, settings["forget_class"])
        model = seeded_model(arch, train.info, init_seed, num_classes=num_classes)
    else:  # pragma: no cover - resolve_settings rejects unknown kinds
        raise DerivationError(f"unknown derivation kind {kind!r}")

    history: list[dict[str, float]] = []
    if train_model:
        history = fit(
            model,
            train,
            recipe,
            data_seed=data_seed,
            device=device,
            resume_path=resume_path,
            parameters=parameters,
            desc=model_id,
        ).epochs
    if kind == "prune":
        make_pruning_permanent(pruned)
        extra["sparsity"] = weight_sparsity(model)
    model.eval()

    test = evaluation_split({"classes": extra.get("classes")}, prepared)
    accuracy = float(
        (query_parent(model, test.x, device=device, probabilities=False) == test.y).float().mean()
    )
    if "forget_class" in settings and settings.get("forget_class") is not None:
        extra.update(class_accuracies(model, test, settings["forget_class"], device))
    parent_lineage = {
        "root": parent_meta.get("root") or parent_meta.get("name") or parent_id,
        "root_algorithm": parent_meta.get("root_algorithm") or parent_meta.get("algorithm"),
    }
    meta = {
        "name": model_id,
        "arch": arch,
        "dataset": dataset,
        "num_classes": num_classes,
        "algorithm": derivation or kind,
        "derivation": kind,
        "derivation_settings": settings,
        "parent": parent_id,
        "parent_sha256": parent.sha256,
        **parent_lineage,
        "recipe": recipe.to_dict(),
        "init_seed": init_seed,
        "data_seed": data_seed,
        "student_seed": parse_derived_model_id(model_id)["seed"]
        if is_derived_id(model_id)
        else None,
        "epochs": recipe.epochs if train_model else 0,
        "history": history,
        "accuracy": accuracy,
        "test_images": len(test),
        **extra,
    }
    log.info("%s: %s of %s, test accuracy %.4f", model_id, kind, parent_id, accuracy)
    return Derived(model, meta)


def _check_class(cls: int, num_classes: int) -> None:
    if not 0 <= int(cls) < num_classes:
        raise DerivationError(
            f"forget_class {cls} is not a class of the parent (0..{num_classes - 1})"
        )


def derive_checkpoint(
    output: str | Path,
    *,
    parent: str | Path,
    prepared: str | Path,
    settings: dict[str, Any],
    model_id: str,
    parent_id: str,
    derivation: str | None = None,
    device: str = "auto",
) -> Path:
    """Derive a model from the checkpoint ``parent`` and save it to ``output`` (resumable per epoch)."""
    output = Path(output)
    torch_device = resolve_device(device)
    parent_ckpt = load_checkpoint(parent, torch_device)
    derived = derive_model(
        parent_ckpt,
        settings,
        prepared=prepared,
        model_id=model_id,
        parent_id=parent_id,
        derivation=derivation,
        device=torch_device,
        resume_path=output.with_name(output.name + ".resume.pt"),
    )
    return save_checkpoint(output, derived.model, derived.meta)


def lineage(meta_by_id: dict[str, dict[str, Any]], model_id: str) -> list[str]:
    """``model_id`` and its ancestors, nearest first, as far as ``meta_by_id`` knows them."""
    chain = [model_id]
    seen = {model_id}
    while True:
        parent = (meta_by_id.get(chain[-1]) or {}).get("parent")
        if not parent or parent in seen:
            return chain
        chain.append(parent)
        seen.add(parent)


def read_lineage_meta(checkpoint: str | Path) -> dict[str, Any]:
    """The metadata fields distances need (name, arch, dataset, algorithm, seeds, parent, derivation, root)."""
    meta = read_metadata(checkpoint)
    keys = (
        "name",
        "arch",
        "dataset",
        "num_classes",
        "algorithm",
        "init_seed",
        "data_seed",
        "parent",
        "derivation",
        "root",
        "root_algorithm",
        "classes",
    )
    out = {k: meta.get(k) for k in keys}
    out["sha256"] = file_sha256(checkpoint)
    return out


# ---------------------------------------------------------------------------------------------
# Planning from the workflow configuration


_ZOO_ID = re.compile(
    r"^(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<algorithm>[^/]+)/i(?P<init>\d+)-d(?P<data>\d+)$"
)


@dataclass(frozen=True)
class PlannedModel:
    """One derived model the workflow will build."""

    model_id: str
    derivation: str  # the configured name
    kind: str
    parent: str
    seed: int
    dataset: str
    arch: str
    root_algorithm: str
    settings: dict[str, Any]

    @property
    def profile(self) -> tuple[str, str, str]:
        """(dataset, arch, algorithm) of the zoo models that serve as its independent counterparts."""
        return self.dataset, self.arch, self.root_algorithm


def zoo_id_parts(model_id: str) -> dict[str, Any]:
    match = _ZOO_ID.match(model_id)
    if not match:
        raise ValueError(f"{model_id!r} is not a zoo model id (DATASET/ARCH/ALGORITHM/iINIT-dDATA)")
    parts = match.groupdict()
    parts["init"], parts["data"] = int(parts["init"]), int(parts["data"])
    return parts


def resolve_parents(entries: list[Any], config: dict[str, Any]) -> list[str]:
    """Parent model ids from config entries: model ids, or {dataset, arch, algorithm, seed | seeds}
    where ``seeds: all`` (the default) means every zoo seed."""
    from .config import zoo_seeds

    out: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry)
            continue
        entry = dict(entry)
        algorithm = entry.get("algorithm", "standard")
        if "seed" in entry and "seeds" in entry:
            raise DerivationError(f"parent entry {entry} gives both 'seed' and 'seeds'; use one")
        seeds = [entry["seed"]] if "seed" in entry else entry.get("seeds", "all")
        if seeds == "all":
            pairs = zoo_seeds(config)
        else:
            pairs = [(s, s) if isinstance(s, int) else (s["init"], s["data"]) for s in seeds]
        out.extend(f"{entry['dataset']}/{entry['arch']}/{algorithm}/i{i}-d{d}" for i, d in pairs)
    return list(dict.fromkeys(out))


def planned_derivations(config: dict[str, Any]) -> list[PlannedModel]:
    """Every derived model of the ``derived`` config section, parents before their descendants."""
    section = config.get("derived") or {}
    default_parents = resolve_parents(section.get("parents") or [], config)
    default_seeds = section.get("seeds") or [0]
    planned: dict[str, PlannedModel] = {}
    for name, raw in (section.get("derivations") or {}).items():
        settings = resolve_settings(raw)
        parents = resolve_parents(raw["parents"], config) if raw.get("parents") else default_parents
        seeds = raw.get("seeds") or default_seeds
        for parent in parents:
            if is_derived_id(parent):
                if parent not in planned:
                    raise DerivationError(
                        f"derivation {name!r} has parent {parent}, which no earlier derivation produces; list the "
                        f"derivation that makes it first (known: {', '.join(planned) or 'none'})"
                    )
                up = planned[parent]
                parent_dataset, parent_arch, root_algorithm = up.dataset, up.arch, up.root_algorithm
            else:
                parts = zoo_id_parts(parent)
                parent_dataset, parent_arch, root_algorithm = (
                    parts["dataset"],
                    parts["arch"],
                    parts["algorithm"],
                )
            dataset = derived_dataset(parent_dataset, settings)
            arch = settings.get("arch") or parent_arch
            for seed in seeds:
                model_id = derived_model_id(dataset, name, parent, seed)
                planned[model_id] = PlannedModel(
                    model_id,
                    name,
                    settings["kind"],
                    parent,
                    int(seed),
                    dataset,
                    arch,
                    root_algorithm,
                    settings,
                )
    return list(planned.values())
