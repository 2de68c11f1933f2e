"""TRAK's random projection of per-sample gradients: a P x k matrix generated block by block from
fixed seeds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .settings import AttributionError

log = logging.getLogger(__name__)

# Rows of the projection matrix drawn from one seed. Small enough that the blocks of one tensor
# (LeNet's fc1: 48,000 rows) are drawn in parallel: a generator is sequential, so one block per
# tensor keeps all but one core idle (0.32 s vs 0.20 s for LeNet's 61,706 x 1,024 on 2 cores).
BLOCK_ROWS = 1 << 12
IDENTITY_MAX_PARAMS = 20_000  # without projection the kernel is P x P


def _rademacher(
    rows: int, cols: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """±1 entries from the bits of uniform random bytes: 8 signs per draw (3x faster than bernoulli_
    on CPU)."""
    nbytes = (cols + 7) // 8
    packed = torch.randint(
        0, 256, (rows, nbytes), dtype=torch.uint8, generator=generator, device=device
    )
    shifts = torch.arange(8, dtype=torch.uint8, device=device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(rows, nbytes * 8)[:, :cols].to(torch.float32).mul_(2).sub_(1)


def _block_seed(seed: int, index: int, tensor: int, block: int) -> int:
    return int(
        np.random.SeedSequence([seed, index, tensor, block]).generate_state(1, dtype=np.uint64)[0]
        >> 1
    )


class GradientProjector:
    """A P × k random matrix, generated once per checkpoint, block by block from fixed seeds.

    ``groups`` partitions the parameter tensors so that each group's rows of M fit in
    ``max_mib``; the featuriser computes gradients for one group at a time.
    """

    def __init__(
        self,
        param_sizes: Sequence[tuple[str, int]],
        proj_dim: int | None,
        proj_type: str,
        seed: int,
        index: int,
        device: torch.device,
        max_mib: float = 1024.0,
    ) -> None:
        self.param_sizes = list(param_sizes)
        self.proj_dim = proj_dim
        self.proj_type = proj_type
        self.seed = seed
        self.index = index
        self.device = device
        self.num_params = sum(n for _, n in self.param_sizes)
        self.tensor_index = {name: i for i, (name, _) in enumerate(self.param_sizes)}
        if proj_dim is None:
            if self.num_params > IDENTITY_MAX_PARAMS:
                raise AttributionError(
                    f"without a projection the TRAK kernel is P x P with P = {self.num_params:,} "
                    f"parameters (at most {IDENTITY_MAX_PARAMS:,} allowed); set proj_dim (e.g. "
                    "2048)"
                )
            self.groups = [[name for name, _ in self.param_sizes]]
            return
        budget = max_mib * 2**20 / (4 * proj_dim)  # rows of M per group
        groups: list[list[str]] = [[]]
        rows = 0
        for name, n in self.param_sizes:
            if groups[-1] and rows + n > budget:
                groups.append([])
                rows = 0
            groups[-1].append(name)
            rows += n
        self.groups = groups
        if len(groups) > 1:
            log.info(
                "projection matrix (%s x %d, %.0f MiB) exceeds max_projection_mib=%s: %d parameter "
                "groups, one pass over the data each",
                f"{self.num_params:,}",
                proj_dim,
                self.num_params * proj_dim * 4 / 2**20,
                max_mib,
                len(groups),
            )

    @property
    def output_dim(self) -> int:
        return self.num_params if self.proj_dim is None else self.proj_dim

    def matrix(self, names: Sequence[str]) -> torch.Tensor | None:
        """Rows of M for the tensors ``names`` (in that order); None for the identity."""
        proj_dim = self.proj_dim
        if proj_dim is None:
            return None
        sizes = dict(self.param_sizes)
        # filled in place, block by block: a concatenation would copy the whole matrix once more
        matrix = torch.empty(sum(sizes[name] for name in names), proj_dim, device=self.device)
        blocks = []
        row = 0
        for name in names:
            t = self.tensor_index[name]
            rows = sizes[name]
            for index, start in enumerate(range(0, rows, BLOCK_ROWS)):
                n = min(BLOCK_ROWS, rows - start)
                blocks.append((row, n, _block_seed(self.seed, self.index, t, index)))
                row += n

        def fill(block: tuple[int, int, int]) -> None:
            start, n, seed = block
            generator = torch.Generator(device=self.device).manual_seed(seed)
            if self.proj_type == "gaussian":
                matrix[start : start + n].normal_(generator=generator)
            else:
                matrix[start : start + n] = _rademacher(n, proj_dim, generator, self.device)

        workers = torch.get_num_threads() if self.device.type == "cpu" else 1
        if workers > 1 and len(blocks) > 1:
            # torch's generators release the GIL; each block has its own generator, so the
            # matrix is the same for any number of workers
            with ThreadPoolExecutor(min(workers, len(blocks))) as pool:
                list(pool.map(fill, blocks))
        else:
            for block in blocks:
                fill(block)
        return matrix
