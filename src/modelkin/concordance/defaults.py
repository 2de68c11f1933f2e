"""The ``concordance`` section's defaults, read from the configuration schema.

The workflow validates its configuration (filling in the schema's defaults) before it plans, so
planning reads every setting directly. Library functions called outside the workflow without a
setting take it from here, so that each default has one source: the ``concordance`` section of
``src/modelkin/schemas/config.schema.yaml``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any


@functools.cache
def _schema_section() -> dict[str, Any]:
    from ..config import validate_config

    return validate_config({})["concordance"]


def schema_defaults() -> dict[str, Any]:
    """The ``concordance`` section of an empty configuration after validation (a fresh copy)."""
    return copy.deepcopy(_schema_section())


def schema_default(key: str) -> Any:
    """One setting of :func:`schema_defaults` (``layer``, ``images``, ``stitch``, ...)."""
    return copy.deepcopy(_schema_section()[key])
