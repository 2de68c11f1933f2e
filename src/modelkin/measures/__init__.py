"""Representational similarity measures between two activation matrices.

Every measure takes X (n x p1) and Y (n x p2) — numpy arrays, torch tensors or
anything ``np.asarray`` accepts, rows = the same n inputs — computes in float64
and returns a Python float. Convolutional activations (n, c, h, w) must first
be turned into matrices with ``to_matrix(acts, mode="flatten" | "spatial")``.

Registry names (``compute(name, X, Y, **params)``; metadata in ``REGISTRY``):

* ``cka`` - ``linear_cka(X, Y)``: linear CKA, biased HSIC (Kornblith et al. 2019).
* ``rbf_cka`` - ``rbf_cka(X, Y, threshold=0.5)``: CKA with RBF kernels, bandwidth
  = threshold x median inter-sample distance (the CKA authors' notebook).
* ``debiased_cka`` - ``debiased_linear_cka(X, Y)``: linear CKA, unbiased HSIC.
* ``minibatch_cka`` - ``minibatch_cka(X, Y, batch_size=256)``: linear CKA from the unbiased
  HSIC of consecutive minibatches (Nguyen et al. 2021); what the similarity stage streams when
  the activations exceed the memory budget.
* ``cca`` - ``mean_squared_cca(X, Y, center=True)``: mean squared canonical
  correlation; ``center=False`` is the notebook's uncentred variant.
* ``svcca`` - ``svcca(X, Y, keep_variance=0.99, keep_dims=None)``: SVD reduction,
  then mean canonical correlation (Raghu et al. 2017).
* ``pwcca`` - ``pwcca(X, Y)``: projection-weighted CCA (Morcos et al. 2018).
* ``procrustes`` - ``procrustes_distance(X, Y)``: orthogonal Procrustes
  *distance* (a metric, not its square) of centred unit-norm inputs, in [0, sqrt 2].
* ``mse`` - ``mean_squared_error(X, Y)``: mean squared error, equal shapes only.
* ``reference_cka`` - ``reference_cka(X, Y)``: the reference codebases' CKA
  (linear, biased, per-sample flattened features; identical to ``cka`` there).
* ``reference_cca`` - ``reference_cca(X, Y)``: the references' CCA (mean
  squared CCA without centring, flattened features).
* ``reference_l2`` - ``reference_l2(X, Y)``: the references' "l2", which is a
  mean squared error (not a norm), on arrays of any equal shape.

Similarities (``higher_is_similar``) and distances are mixed in the registry;
read ``MeasureInfo.higher_is_similar`` before ranking. Degenerate inputs either
give a finite value (rank deficiency only removes directions) or raise an
InputError (a ValueError) saying why; CCA-family measures additionally emit a
``DegenerateCCAWarning`` when there are too few samples for their ranks.
"""

from ._validation import DegenerateCCAWarning
from .basic import mean_squared_error, reference_l2
from .cca import canonical_correlations, mean_squared_cca, pwcca, reference_cca, svcca
from .cka import debiased_linear_cka, linear_cka, rbf_cka, reference_cka
from .convert import to_matrix
from .minibatch import MinibatchCKA, minibatch_cka
from .procrustes import procrustes_distance
from .registry import INVARIANCES, REGISTRY, MeasureInfo, compute, get_measure

__all__ = [
    "DegenerateCCAWarning",
    "INVARIANCES",
    "MeasureInfo",
    "MinibatchCKA",
    "REGISTRY",
    "canonical_correlations",
    "compute",
    "debiased_linear_cka",
    "get_measure",
    "linear_cka",
    "mean_squared_cca",
    "mean_squared_error",
    "minibatch_cka",
    "procrustes_distance",
    "pwcca",
    "rbf_cka",
    "reference_cca",
    "reference_cka",
    "reference_l2",
    "svcca",
    "to_matrix",
]
