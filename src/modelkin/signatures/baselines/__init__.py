"""The baselines the Zest and ModelGiF papers compare against, as registered signature methods.

- :mod:`.weights`: the flattened parameters (l2, cos; one architecture only);
- :mod:`.outputs`: softmax outputs on a probe of blended images (prediction disagreement,
  symmetric KL);
- :mod:`.fingerprint`: the correlation matrix of a model's outputs over a probe (compared by
  1 - Pearson correlation of the matrices; any architecture and class order);
- :mod:`.penultimate`: activations feeding the classification head (1 - linear CKA).

They share one kind of probe, :mod:`.images` (the first N images of a split).
"""
