"""What the ``lineage`` section asks the workflow for, without torch: whether the stage runs, and
which distance tables it combines at which ``alpha``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .settings import KinshipError

OUTPUTS = ("edges.csv", "families.csv", "scores.csv", "trees.png")


@dataclass(frozen=True)
class LineagePlan:
    """The family-tree stage of a configuration."""

    methods: tuple[str, ...]
    alpha: float
    settings: dict[str, Any]  # the lineage section, for the library

    def outputs(self, results: str) -> dict[str, str]:
        return {name.split(".")[0]: f"{results}/lineage/{name}" for name in OUTPUTS}


def lineage_plan(config: dict[str, Any], catalog: Any) -> LineagePlan | None:
    """The stage's plan, or None when it is off (``enabled: false``, or ``auto`` without derived
    models or distance methods); :class:`KinshipError` for ``enabled: true`` without them, or a
    method whose distance table the workflow does not build."""
    section = dict(config.get("lineage") or {})
    enabled = section.get("enabled", "auto")
    if enabled is False:
        return None
    built = list((config.get("distances") or {}).get("methods") or [])
    methods = list(section.get("methods") or built)
    missing = [m for m in methods if m not in built]
    if missing:
        raise KinshipError(
            f"lineage.methods: {', '.join(missing)} not in distances.methods ({', '.join(built)}); "
            "add them there (their tables are what the family trees read) or leave them out"
        )
    if not methods or not catalog.derived:
        if enabled is True:
            raise KinshipError(
                "lineage.enabled is true but there are no "
                + ("distance methods" if not methods else "derived models")
                + " (distances.methods, derived.derivations); add some or set lineage.enabled: auto"
            )
        return None
    alpha = section.get("alpha")
    if alpha is None:
        alpha = ((config.get("distances") or {}).get("calibration") or {}).get("alpha", 0.01)
    return LineagePlan(tuple(methods), float(alpha), section)
