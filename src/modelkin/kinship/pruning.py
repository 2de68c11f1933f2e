"""Which denser relative a pruned model came from: its zeros are that model's smallest weights.

Magnitude pruning, global or per tensor, zeroes the weights of smallest magnitude; training on
with the mask fixed keeps them at zero. So the zeros of a pruned child are exactly the smallest
weights of its parent, tensor by tensor, while a relative that moved away from the parent (a
fine-tuned sibling) orders its small weights a little differently. On the default configuration
every pruned copy agrees with its parent to 1.000 and with the parent's fine-tuned copies to
0.997 (an extracted student's unrelated weights: about 0.52, the density), although the
fine-tuned copies are nearer in behaviour (pruning, then training on, moves the copy the way
fine-tuning does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

WeightReader = Callable[[str], Mapping[str, np.ndarray]]


def mask_agreement(parent: Mapping[str, np.ndarray], child: Mapping[str, np.ndarray]) -> float:
    """The share of ``child``'s exact zeros that are among ``parent``'s smallest-magnitude weights
    of the same tensor, taking per tensor as many as the child has zeros there (tensors of two or
    more dimensions). 1 for a magnitude-pruned copy of ``parent``; NaN when the child has no zeros
    in such tensors or a tensor's shape differs."""
    hits = total = 0
    for name, weights in child.items():
        if weights.ndim < 2:
            continue
        other = parent.get(name)
        if other is None or other.shape != weights.shape:
            return math.nan
        zeros = weights.ravel() == 0
        count = int(zeros.sum())
        if count == 0:
            continue
        magnitude = np.abs(other.ravel())
        smallest = (
            np.arange(magnitude.size)
            if count >= magnitude.size
            else np.argpartition(magnitude, count - 1)[:count]
        )
        hits += int(zeros[smallest].sum())
        total += count
    return hits / total if total else math.nan


def checkpoint_weights(checkpoints: Mapping[str, str | Path], cache: int = 8) -> WeightReader:
    """A reader of the weight tensors (two or more dimensions) of each model's safetensors
    checkpoint, with numpy (no torch), keeping the last ``cache`` read."""
    from safetensors.numpy import load_file

    @functools.lru_cache(maxsize=cache)
    def read(model: str) -> Mapping[str, np.ndarray]:
        return {k: v for k, v in load_file(str(checkpoints[model])).items() if v.ndim >= 2}

    return read
