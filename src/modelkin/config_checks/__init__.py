"""Cross-field checks of a validated configuration: what can be wrong before any job runs.

The schema (:func:`modelkin.config.validate_config`) checks each key on its own; these checks
compare keys with each other and with the registries, so that ``snakemake -n`` fails at once
with one line per problem instead of a job failing hours later:

- every model id of every config list goes through :meth:`ModelCatalog.resolve` (no ``..``, no
  absolute path, no seed outside ``zoo.seeds``, no algorithm the zoo does not train), and task
  donors name defined algorithms;
- algorithms named anywhere are defined in ``training.algorithms``; architectures exist;
- layer names exist in the named architectures (a torch-free table: :mod:`modelkin.models.names`);
- ``on_insufficient_reference: error`` has enough independent zoo pairs for every setting the
  distance tables will compare;
- ``device: cuda`` only where CUDA exists;
- image counts within the data set's split; class indices below its number of classes;
- each stage's own planning (similarity, ModelDiff, stitching, concordance, unlearning,
  lineage);
- ``results`` and ``data_root`` are directories (or do not exist yet);
- the config's own data sets (``datasets:``) exist and can be prepared as configured;
- your own models' weights exist and their sources have a known form; questions name planned
  models of one data set and enough independent references.

Torch-free: the workflow calls :func:`check_config` while Snakemake parses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..config import ConfigError, problems_message
from ..errors import ModelkinError
from ._common import _algorithms, _catalog_error, _datasets, _device, _paths, cuda_visible
from .external import _external
from .models import _layers, _model_ids, _parent_entries
from .plans import _plans
from .sizes import _references, _sizes_and_classes

__all__ = ["check_config", "config_problems", "cuda_visible"]


def check_config(
    config: dict[str, Any], *, source: str | None = None, check_device: bool = True
) -> None:
    """:class:`ConfigError` listing every problem of a validated ``config`` (none: returns).

    ``check_device``: whether ``device: cuda`` must find CUDA on this machine (False where jobs run
    elsewhere, e.g. submitted to a cluster).
    """
    problems = config_problems(config, check_device=check_device)
    if problems:
        raise ConfigError(problems_message(problems, source))


def config_problems(config: dict[str, Any], *, check_device: bool = True) -> list[str]:
    """One line per problem of a validated ``config``, in config order."""
    checks: list[Callable[[dict[str, Any]], Iterable[str]]] = [
        _paths,
        _datasets,
        _algorithms,
        _model_ids,
        _layers,
        _sizes_and_classes,
        _references,
        _plans,
        _external,
    ]
    if check_device:
        checks.insert(1, _device)
    problems: list[str] = []
    catalog_error = _catalog_error(config)
    if catalog_error:
        # Without a catalog the other checks cannot run: say what breaks it, by config key where
        # a check knows one, else in the catalog's own words.
        found = [
            *_paths(config),
            *_datasets(config),
            *_parent_entries(config),
            *_algorithms(config),
        ]
        return found or [catalog_error]
    for check in checks:
        try:
            found = list(check(config))
        except ModelkinError as err:
            found = [str(err)]
        # A stage's planning may repeat, without the config key, what a check already said.
        problems.extend(p for p in found if not any(_said(p, q) for q in problems))
    return list(dict.fromkeys(problems))


def _said(new: str, old: str) -> bool:
    """Whether problem ``old`` already says ``new`` (perhaps with another key in front)."""
    return new in old or new.split(": ", 1)[-1] in old
