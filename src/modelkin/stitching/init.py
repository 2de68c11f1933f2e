"""Initialisations of T, masks on its weight, and the least-squares ("ps_inv") solution.

Least squares runs in bounded memory: one pass over the training batches
accumulates float64 moments of the design rows X (T's input; every pixel is a
sample for a 1x1 convolution) and the targets Y (model 2's activation at L2),
shifted by the first batch's means so that the centred moments keep their
precision. The affine map (W, b) minimising sum |W x + b - y|^2 is then solved
jointly from those moments: W from the centred normal equations, b from the
means, which is exactly the least-squares solution with a bias column.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from .model import StitchError, StitchingLayer
from .options import INITS, MASKS

MOMENTS_LIMIT_BYTES = 8 << 30


class Moments:
    """Running float64 first and second moments of paired rows (X, Y), bounded memory.

    Memory: (p + q)^2 float64 numbers for p input and q output features,
    whatever the number of samples.
    """

    def __init__(self, p: int, q: int, *, with_yy: bool = False):
        needed = 8 * (p * p + p * q)
        if needed > MOMENTS_LIMIT_BYTES:
            raise StitchError(
                f"least squares for a {p} -> {q} stitching layer needs {needed / 2**30:.1f} GiB of "
                f"float64 moments (limit {MOMENTS_LIMIT_BYTES / 2**30:.0f} GiB); skip it (ps_inv: "
                "false / --no-pinv, an init other than ps_inv, mask identity or "
                "random-permutation) or stitch without flatten"
            )
        self.p, self.q = p, q
        self.n = 0
        self.shift_x: torch.Tensor | None = None
        self.shift_y: torch.Tensor | None = None
        self.sx = torch.zeros(p, dtype=torch.float64)
        self.sy = torch.zeros(q, dtype=torch.float64)
        self.sxx = torch.zeros(p, p, dtype=torch.float64)
        self.sxy = torch.zeros(p, q, dtype=torch.float64)
        self.syy = (
            torch.zeros(q, dtype=torch.float64) if with_yy else None
        )  # diagonal only (correlations)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[0] != y.shape[0] or x.shape[1] != self.p or y.shape[1] != self.q:
            raise InputError(
                f"rows of shape {tuple(x.shape)} / {tuple(y.shape)} do not fit moments of "
                f"({self.p}, {self.q})"
            )
        x, y = x.detach().double(), y.detach().double()
        if self.shift_x is None or self.shift_y is None:
            self.shift_x, self.shift_y = x.mean(0).cpu(), y.mean(0).cpu()
        # The products run on x's device (GPU when there is one); only the small sums come back.
        x = x - self.shift_x.to(x.device)
        y = y - self.shift_y.to(y.device)
        self.n += x.shape[0]
        self.sx += x.sum(0).cpu()
        self.sy += y.sum(0).cpu()
        self.sxx += (x.T @ x).cpu()
        self.sxy += (x.T @ y).cpu()
        if self.syy is not None:
            self.syy += (y * y).sum(0).cpu()

    def _check(self) -> None:
        if self.n < 2:
            raise StitchError(
                "least squares needs at least two samples; the training split is empty or tiny"
            )

    def _shifts(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shift_x is None or self.shift_y is None:
            raise StitchError("the moments have no rows yet")
        return self.shift_x, self.shift_y

    @property
    def mean_x(self) -> torch.Tensor:
        return self._shifts()[0] + self.sx / self.n

    @property
    def mean_y(self) -> torch.Tensor:
        return self._shifts()[1] + self.sy / self.n

    def covariances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Cxx, Cxy): centred second moments divided by n."""
        self._check()
        mx, my = self.sx / self.n, self.sy / self.n  # means of the shifted data
        cxx = self.sxx / self.n - torch.outer(mx, mx)
        cxy = self.sxy / self.n - torch.outer(mx, my)
        return cxx, cxy

    def correlations(self) -> torch.Tensor:
        """Pearson correlation of every X feature with every Y feature, (p, q); 0 where one is
        constant."""
        if self.syy is None:
            raise InputError("these moments were accumulated without with_yy=True")
        cxx, cxy = self.covariances()
        my = self.sy / self.n
        var_y = (self.syy / self.n - my * my).clamp_min(0)
        std_x, std_y = cxx.diagonal().clamp_min(0).sqrt(), var_y.sqrt()
        denom = torch.outer(std_x, std_y)
        return torch.where(denom > 0, cxy / denom.clamp_min(1e-300), torch.zeros_like(cxy))


@dataclass
class AffineSolution:
    weight: torch.Tensor  # (q, p) float64
    bias: torch.Tensor  # (q,) float64
    samples: int
    rank: int | None = None  # of the solution when low rank was asked for


def _solve_psd(a: torch.Tensor, b: torch.Tensor, ridge: float) -> torch.Tensor:
    """Minimum-norm solution of a z = b for a symmetric PSD ``a``, with a ridge relative to its mean
    diagonal."""
    p = a.shape[0]
    scale = float(a.diagonal().mean()) if p else 0.0
    if ridge > 0 and scale > 0:
        a = a + ridge * scale * torch.eye(p, dtype=a.dtype)
    # gelsd (SVD based) handles rank deficiency (dead ReLU channels, constant features) gracefully.
    return torch.linalg.lstsq(a, b, driver="gelsd").solution


def solve_affine(
    moments: Moments,
    *,
    ridge: float = 1e-10,
    mask: torch.Tensor | None = None,
    low_rank: int | None = None,
) -> AffineSolution:
    """The least-squares affine map from X to Y: W (q, p) and b (q,) jointly, in float64.

    ``mask`` (q, p) restricts each output to the inputs its row marks (per-row
    least squares on the marked columns). ``low_rank`` gives reduced-rank
    regression: the least-squares fit projected onto its top-r output directions,
    the best rank-r affine map in squared error.
    """
    cxx, cxy = moments.covariances()
    p, q = cxx.shape[0], cxy.shape[1]
    if mask is not None and low_rank is not None and not bool((mask != 0).all()):
        raise StitchError(
            "a low-rank least-squares solution with a sparse mask has no closed form; use one of "
            "the two"
        )
    if mask is None or bool((mask != 0).all()):
        w = _solve_psd(cxx, cxy, ridge).T  # (q, p)
    else:
        mask = mask.to(torch.bool).cpu()
        w = torch.zeros(q, p, dtype=torch.float64)
        for j in range(q):
            support = torch.nonzero(mask[j]).flatten()
            if len(support):
                sub = _solve_psd(cxx[support][:, support], cxy[support, j : j + 1], ridge)
                w[j, support] = sub[:, 0]
    rank = None
    if low_rank is not None:
        # Fitted outputs' covariance W Cxx W^T; its top-r eigenvectors span the best rank-r fit.
        fitted = w @ cxx @ w.T
        _, vectors = torch.linalg.eigh((fitted + fitted.T) / 2)
        top = vectors[:, -low_rank:]
        w = top @ (top.T @ w)
        rank = low_rank
    # Means in float64 (shift + mean of the shifted data) give the bias of the joint solution.
    b = moments.mean_y - w @ moments.mean_x
    return AffineSolution(w, b, moments.n, rank)


def accumulate_moments(batches, stitch: StitchingLayer, *, with_yy: bool = False) -> Moments:
    """Moments of (T's input rows, model 2's activation rows) over ``batches`` of (front act, end
    act)."""
    moments = Moments(stitch.in_features, stitch.out_features, with_yy=with_yy)
    for a1, a2 in batches:
        moments.update(stitch.samples(a1), stitch.target_samples(a2))
    return moments


# ---------------------------------------------------------------------------------------------
# Masks


def semi_match_mask(correlation: torch.Tensor, *, absolute: bool = False) -> torch.Tensor:
    """(q, p) mask: each output (end) feature keeps only its most correlated input (front) feature.

    Not a bijection: one input may feed several outputs, as in the reference.
    ``correlation`` is (p, q) (inputs x outputs).
    """
    score = correlation.abs() if absolute else correlation
    best = score.argmax(dim=0)  # (q,)
    mask = torch.zeros(correlation.shape[1], correlation.shape[0])
    mask[torch.arange(correlation.shape[1]), best] = 1.0
    return mask


def random_permutation_mask(q: int, p: int, generator: torch.Generator) -> torch.Tensor:
    """(q, p) mask with one entry per output row, spread over the inputs as evenly as possible.

    Square: a random permutation matrix. q < p: distinct random inputs. q > p:
    every input is used floor(q/p) or ceil(q/p) times, in random order. (The
    reference draws the argmax of a random matrix per row, which repeats inputs
    even when a permutation exists.)
    """
    repeats = -(-q // p)
    pool = torch.cat([torch.randperm(p, generator=generator) for _ in range(repeats)])[:q]
    chosen = pool[torch.randperm(q, generator=generator)]
    mask = torch.zeros(q, p)
    mask[torch.arange(q), chosen] = 1.0
    return mask


def make_mask(
    kind: str, stitch: StitchingLayer, *, moments: Moments | None, generator: torch.Generator
) -> torch.Tensor:
    if kind not in MASKS:
        raise InputError(f"mask must be one of {', '.join(MASKS)}, not {kind!r}")
    q, p = stitch.out_features, stitch.in_features
    if kind == "identity":
        return torch.ones(q, p)
    if kind == "random-permutation":
        return random_permutation_mask(q, p, generator)
    if moments is None:
        raise InputError(
            f"mask {kind!r} needs correlations on training data (moments with with_yy=True)"
        )
    return semi_match_mask(moments.correlations(), absolute=kind == "abs-semi-match")


# ---------------------------------------------------------------------------------------------
# Initialisations


def _require_square(stitch: StitchingLayer, init: str) -> None:
    if stitch.in_features != stitch.out_features:
        raise StitchError(
            f"init {init!r} needs as many input as output features, but T maps "
            f"{stitch.in_features} -> {stitch.out_features} ({stitch.geometry.in_shape} -> "
            f"{stitch.geometry.out_shape}); use random, ones-zeros or ps_inv"
        )


def initialise(
    stitch: StitchingLayer,
    init: str,
    *,
    generator: torch.Generator,
    solution: AffineSolution | None = None,
) -> None:
    """Set T's parameters for ``init`` (random, perm, eye, ps_inv, ones-zeros); the mask stays as it
    is."""
    if init not in INITS:
        raise InputError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    q, p = stitch.out_features, stitch.in_features
    if init == "random":
        stitch.reset_parameters(generator)
    elif init == "eye":
        _require_square(stitch, init)
        stitch.set_affine(torch.eye(q), torch.zeros(q))
    elif init == "perm":
        _require_square(stitch, init)
        stitch.set_affine(torch.eye(q)[torch.randperm(q, generator=generator)], torch.zeros(q))
    elif init == "ones-zeros":
        stitch.set_affine(torch.ones(q, p), torch.zeros(q))
    else:
        if solution is None:
            raise InputError("init 'ps_inv' needs the least-squares solution (solve_affine)")
        stitch.set_affine(solution.weight, solution.bias)
