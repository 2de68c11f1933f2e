"""Unlearning verification (METHODS.md sections 2 and 5; docs/model-distance.md): is a model that
claims to have forgotten a class still the original underneath?

The original is unlearned three ways over several epochs (relabelling the forgotten class at
random and gradient ascent on it, both approximate, starting from its weights; retraining from
scratch without it, exact), and every epoch's model is measured against the original: each
signature method's distances (Zest, ModelGiF), and accuracy on the forgotten class and the rest.
Independent zoo models measured the same way give the distance of an unrelated model.

- :mod:`.plan`: what the ``unlearning`` config section plans (torch-free);
- :mod:`.probes`: the stage's probes (of every class, or of the forgotten class);
- :mod:`.trajectory`: training with a measured snapshot per epoch (torch);
- :mod:`.table`: the joined table and the figure (torch-free).
"""

from .._lazy import lazy_exports
from .plan import INDEPENDENT, METHOD_KINDS, UnlearningError, UnlearningPlan, unlearning_plan

__all__ = [
    "INDEPENDENT",
    "METHOD_KINDS",
    "Measurement",
    "UnlearningError",
    "UnlearningPlan",
    "unlearning_probe_file",
    "independent_files",
    "independent_rows",
    "plot_trajectory",
    "trajectory_files",
    "trajectory_table",
    "unlearning_plan",
    "unlearning_trajectory",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Measurement": ".trajectory",
        "unlearning_probe_file": ".probes",
        "independent_files": ".trajectory",
        "independent_rows": ".trajectory",
        "plot_trajectory": ".table",
        "trajectory_files": ".trajectory",
        "trajectory_table": ".table",
        "unlearning_trajectory": ".trajectory",
    },
)
