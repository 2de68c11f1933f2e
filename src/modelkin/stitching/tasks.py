"""Tasks for cross-task stitching: a prepared data set, optionally transformed.

Cross-task stitching needs donors trained on different tasks with the same
number of classes (the end model's head is reused). With torchvision data
that is e.g. MNIST vs Fashion-MNIST, or CIFAR-10 vs SVHN. Offline, the
bundled digits give a second task by a fixed transformation of the same
images:

* ``invert`` (x -> 1 - x): white-on-black digits become black-on-white. The
  labels mean the same, the input statistics differ completely: a digits
  front sees out-of-distribution images on the inverted task, just as a
  CIFAR-10 front sees SVHN images in the reference experiments.
* ``transpose`` (swap height and width): same statistics, different geometry.
* ``permute_labels``: the same images with a fixed random relabelling (seeded):
  the features are shared, the head's meaning is not.

A task is written ``DATASET`` or ``DATASET:TRANSFORM[,TRANSFORM...]`` (e.g.
``digits:invert``), or is named in the workflow config (``stitching.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datasets import DATASETS, get_dataset_info
from ..errors import InputError

if TYPE_CHECKING:  # tensors only in the methods that transform them: planning stays torch-free
    import torch

    from ..data import Split

TRANSFORMS = ("invert", "transpose", "permute_labels")


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    transforms: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0  # of permute_labels

    def __post_init__(self) -> None:
        get_dataset_info(self.dataset)
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown:
            raise InputError(
                f"task {self.name!r}: unknown transform(s) {unknown}; valid: "
                f"{', '.join(TRANSFORMS)}"
            )
        if "transpose" in self.transforms:
            _, h, w = get_dataset_info(self.dataset).shape
            if h != w:
                raise InputError(
                    f"task {self.name!r}: transpose needs square images, {self.dataset} has {h}x{w}"
                )

    @property
    def num_classes(self) -> int:
        return get_dataset_info(self.dataset).num_classes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "transforms": list(self.transforms),
            "seed": self.seed,
        }

    def label_permutation(self) -> torch.Tensor:
        import torch

        g = torch.Generator().manual_seed(self.seed)
        return torch.randperm(self.num_classes, generator=g)

    def apply(self, split: Split) -> Split:
        """The split as this task sees it (a new Split; the input is not modified)."""
        from ..data import Split

        x, y = split.x, split.y
        for transform in self.transforms:
            if transform == "invert":
                x = 1.0 - x
            elif transform == "transpose":
                x = x.transpose(-1, -2).contiguous()
            else:
                y = self.label_permutation()[y]
        return Split(x, y, split.info)


def parse_task(spec: str | dict[str, Any] | Task, named: dict[str, Any] | None = None) -> Task:
    """A Task from a data set name, ``DATASET:T1,T2``, a configured task name, or a dict."""
    if isinstance(spec, Task):
        return spec
    named = named or {}
    if isinstance(spec, dict):
        return Task(
            spec["name"] if "name" in spec else spec["dataset"],
            spec["dataset"],
            tuple(spec.get("transforms", ())),
            int(spec.get("seed", 0)),
        )
    if spec in named:
        entry = named[spec]
        return Task(
            spec, entry["dataset"], tuple(entry.get("transforms", ())), int(entry.get("seed", 0))
        )
    dataset, _, transforms = spec.partition(":")
    if dataset not in DATASETS:
        valid = ", ".join(list(DATASETS) + list(named))
        raise InputError(
            f"unknown task {spec!r}: not a data set or configured task ({valid}), nor "
            "DATASET:TRANSFORM"
        )
    return Task(spec, dataset, tuple(t for t in transforms.split(",") if t), 0)


def load_task_split(
    prepared: str | Path, task: Task, split: str, limit: int | None = None
) -> Split:
    """``split`` of the prepared file of ``task.dataset``, transformed for the task."""
    from ..data import load_split

    data = load_split(prepared, split, limit=limit)
    if data.info.name != task.dataset:
        raise InputError(
            f"{prepared} holds {data.info.name}, but task {task.name!r} is on {task.dataset}"
        )
    return task.apply(data)


def train_task_donor(
    output: str | Path,
    *,
    prepared: str | Path,
    task: Task | dict[str, Any],
    recipe: dict[str, Any],
    **settings: Any,
) -> Path:
    """Train a zoo architecture on a transformed task, exactly as the zoo trains on a data set.

    ``settings`` as for :func:`modelkin.train.train_on_splits` (arch, algorithm, seeds, ...). The
    checkpoint's ``dataset`` is the underlying data set (the input space the model is built for);
    ``task`` records the transformation.
    """
    from ..train import TrainRecipe, train_on_splits, with_planted_patch

    task = parse_task(task)
    train_recipe = TrainRecipe.from_dict(recipe)
    train = with_planted_patch(
        load_task_split(prepared, task, "train", limit=train_recipe.train_limit), train_recipe
    )
    extra_meta = {"task": task.to_dict()}
    return train_on_splits(
        output, train, recipe=train_recipe, task_name=task.name, extra_meta=extra_meta, **settings
    )


def task_of_checkpoint(meta: dict[str, Any]) -> Task:
    """The task a checkpoint was trained on (its data set, or the recorded transformed task)."""
    if meta.get("task"):
        return parse_task(meta["task"])
    return Task(meta["dataset"], meta["dataset"])
