"""The ``import_model`` rule: one entry of the ``models`` section -> a modelkin checkpoint.

The checkpoint records the source, the preprocessing and the data set, so every later stage
loads it with :func:`modelkin.checkpoint.load_checkpoint` like a zoo model. Its hash follows the
weights file's content: replacing the weights re-runs exactly what depends on the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError


def preprocessing_from_config(section: Mapping[str, Any], dataset: str):
    """A config entry's ``preprocessing`` as a
    :class:`~modelkin.models.preprocessing.Preprocessing` with the data set's channels;
    ``normalisation: dataset`` means its mean and std, expressed in the model's value range."""
    from ..datasets import get_dataset_info
    from ..models.normalisation import Normalisation
    from ..models.preprocessing import Preprocessing

    info = get_dataset_info(dataset)
    scale = float(section.get("value_range", 1))
    chosen = section.get("normalisation", "dataset")
    if chosen == "dataset":
        normalisation = Normalisation.of(
            [m * scale for m in info.mean], [s * scale for s in info.std]
        )
    elif chosen == "none":
        normalisation = Normalisation.none()
    else:
        normalisation = Normalisation.of(chosen["mean"], chosen["std"])
    size = section.get("size")
    return Preprocessing(
        input_size=(int(size[0]), int(size[1])) if size else None,
        channels=info.shape[0],
        value_range=(0.0, scale),
        normalisation=normalisation,
    )


def import_model(
    weights: str | Path,
    output: str | Path,
    *,
    name: str,
    source: str,
    dataset: str,
    num_classes: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
) -> Path:
    """Import ``weights`` as the model ``name`` of the ``models`` section and write ``output``."""
    from ..checkpoint import import_external, load_checkpoint, save_checkpoint
    from ..datasets import get_dataset_info
    from ..ids import ExternalId

    info = get_dataset_info(dataset)
    model_id = str(ExternalId(name))
    if source == "checkpoint":
        checkpoint = load_checkpoint(weights)
        if checkpoint.meta.get("dataset") != dataset:
            raise InputError(
                f"models.{name}: the checkpoint {weights} is for data set "
                f"{checkpoint.meta.get('dataset')!r}, not {dataset!r}; set models.{name}.dataset"
            )
        meta = {**checkpoint.meta, "name": model_id, "source": str(weights)}
        return save_checkpoint(output, checkpoint.model, meta)
    classes = num_classes or info.num_classes
    names = list(class_names) if class_names else list(info.class_names) or None
    checkpoint = import_external(
        source,
        weights,
        classes,
        preprocessing_from_config(preprocessing or {}, dataset),
        dict(kwargs or {}),
        dataset=dataset,
        class_names=names if names and len(names) == classes else None,
        name=model_id,
    )
    return save_checkpoint(output, checkpoint.model, checkpoint.meta)
