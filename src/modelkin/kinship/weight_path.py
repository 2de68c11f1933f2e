"""Whether a relative lies on the way from a family's root to a model, in weight space.

Two fine-tuned copies ``u`` and ``v`` of one root ``r`` moved the same way (a drift ``m`` shared
by every copy made with one recipe) plus their own noise (data order, seed): ``u - r = m + n_u``,
``v - r = m + n_v``. A copy of the copy moved on from ``u``: ``v - u = m' + n'``. In the many
dimensions of a network's weights independent noises are nearly orthogonal, so the angle at
``u`` between ``r - u`` and ``v - u`` tells the two apart:

- ``v`` is ``u``'s child: ``(r - u) . (v - u) = -(m + n_u) . (m' + n') ~ -m . m'``, negative
  (the second fine-tuning goes on the way the first went): **obtuse**, ``u`` lies between;
- ``v`` is ``u``'s sibling: ``(r - u) . (v - u) = -(m + n_u) . (n_v - n_u) ~ |n_u|^2``,
  positive: **acute**.

Behavioural distances cannot make this distinction: siblings are nearer each other than their
parent, and on the default run the two legs root -> sibling -> sibling added up to 0.94 of the
direct distance where the true grandchildren's added up to 0.92-0.93 (docs/lineage.md).
Measured on digits LeNets (fine-tuning at a tenth of the learning rate for 3 epochs): the cosine
at ``u`` is -0.81 and -0.70 for two parent-grandchild pairs, +0.06 to +0.22 between fine-tuned
siblings, +0.68 between two class-subset transfers, and -0.01 to -0.21 for an uncle (the
parent's sibling) of a grandchild, whose drift it shares but not its noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def cosine_at(
    middle: Mapping[str, np.ndarray],
    first: Mapping[str, np.ndarray],
    last: Mapping[str, np.ndarray],
) -> float:
    """The cosine of the angle at ``middle`` between ``first - middle`` and ``last - middle``,
    over the tensors that all three have with one name and shape (a transfer's new head is left
    out). NaN when they share no tensor or a leg has length 0."""
    dot = to_first = to_last = 0.0
    shared = False
    for name, centre in middle.items():
        a, b = first.get(name), last.get(name)
        if a is None or b is None or not (a.shape == centre.shape == b.shape):
            continue
        shared = True
        centre64 = np.asarray(centre, dtype=np.float64).ravel()
        leg_a = np.asarray(a, dtype=np.float64).ravel() - centre64
        leg_b = np.asarray(b, dtype=np.float64).ravel() - centre64
        dot += float(leg_a @ leg_b)
        to_first += float(leg_a @ leg_a)
        to_last += float(leg_b @ leg_b)
    if not shared or to_first <= 0 or to_last <= 0:
        return math.nan
    return dot / math.sqrt(to_first * to_last)
