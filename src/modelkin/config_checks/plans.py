"""The errors each stage's own planning raises, so that all show at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..config import ConfigError
from ..errors import ModelkinError
from ._common import _catalog

# -- the stages' own planning -----------------------------------------------------------------


def _plans(config: dict[str, Any]) -> Iterable[str]:
    """The errors each stage's planning raises (one per stage), so that all show at once."""
    from ..distances.plan import distance_models
    from ..modeldiff.plan import ModelDiffPlan
    from ..similarity.pairs import plan_pairs

    catalog = _catalog(config)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("similarity", lambda: plan_pairs(config)),
        ("modeldiff", lambda: ModelDiffPlan.from_config(config)),
        ("stitching", lambda: _stitching_plan(config)),
        ("unlearning", lambda: _unlearning_plan(config, catalog)),
        ("lineage", lambda: _lineage_plan(config, catalog)),
    ]
    try:
        compared = distance_models(config, catalog)
    except ModelkinError:
        compared = None  # _model_ids reports the bad extra model
    if compared is not None:
        from ..concordance import plan_concordance

        steps.append(("concordance", lambda: plan_concordance(config, catalog, compared)))
    for _, step in steps:
        try:
            step()
        except ModelkinError as err:
            yield str(err)


def _unlearning_plan(config: dict[str, Any], catalog: Any) -> None:
    from ..unlearning.plan import unlearning_plan

    unlearning_plan(config, catalog)


def _lineage_plan(config: dict[str, Any], catalog: Any) -> None:
    from ..kinship.plan import lineage_plan

    lineage_plan(config, catalog)


def _stitching_plan(config: dict[str, Any]) -> None:
    """The stitching section's own checks (tasks, presets, options, the pairs' models), without
    planning ``layers: all`` (which builds models)."""
    from ..stitching.plan import check_experiments, experiment_options, named_tasks
    from ..stitching.tasks import parse_task

    check_experiments(config)
    section = config.get("stitching") or {}
    for name, experiment in (section.get("experiments") or {}).items():
        try:
            experiment_options(config, experiment)
            for task in [experiment.get("train_task"), *(experiment.get("eval_tasks") or [])]:
                if task:
                    parse_task(task, named_tasks(config))
        except (ModelkinError, ValueError) as err:
            raise ConfigError(f"stitching.experiments.{name}: {err}") from None
