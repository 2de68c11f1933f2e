"""Stitching speed: cached front vs both full networks
per step, and the least-squares solve vs layer width.

    python benchmarks/stitching.py [--device auto] [--images 1024] [--epochs 3] [--batch-size 128]

Part 1 trains T for a few epochs at several layers two ways and prints the
median epoch time of each and their ratio:

* reference: both full donors run every step (model 1 to its logits with a hook
  keeping L1, model 2 in full with L2 replaced), as the reference code does;
* cached: model 1's L1 activations computed once per run (the one-off cost is
  printed separately), then only T and model 2's end from L2 run.

Part 2 accumulates float64 moments over N*H*W pixel rows of width p and solves
the joint least-squares problem, printing the time of each and the memory the
moments take, next to the references' approach (pinv of the stacked
(N*H*W) x (p+1) matrix) where that fits: its time, memory and the largest
difference between the two solutions.
All numbers come from this one run, on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from modelkin.data import Split
from modelkin.datasets import get_dataset_info
from modelkin.device import resolve_device
from modelkin.models import seeded_model
from modelkin.stitching import Moments, StitchOptions, build_stitched, solve_affine, train_stitcher

CASES = {
    "lenet": ["relu1", "relu2", "relu3"],
    "resnet20_w1": ["layer1.2.relu2", "layer2.2.relu2", "layer3.1.relu2"],
    "tiny10": ["relu2", "relu5", "relu7"],
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def epoch_times(arch, layer, split, options, device, *, cached: bool) -> tuple[list[float], float]:
    model1, model2 = (
        seeded_model(arch, split.info, 0).to(device).eval(),
        seeded_model(arch, split.info, 1).to(device).eval(),
    )
    stitched = build_stitched(model1, layer, model2, layer, execution="auto" if cached else "hooks")
    _sync(device)
    log = train_stitcher(
        stitched, split, options, device=device, cache=cached, desc=f"{arch}:{layer}"
    )
    _sync(device)
    return log.epoch_seconds, log.seconds - sum(log.epoch_seconds)


def benchmark_training(args, device) -> None:
    info = get_dataset_info(args.dataset)
    g = torch.Generator().manual_seed(0)
    split = Split(
        torch.rand(args.images, *info.shape, generator=g),
        torch.randint(0, info.num_classes, (args.images,), generator=g),
        info,
    )
    options = StitchOptions(
        epochs=args.epochs, batch_size=args.batch_size, target_type=args.target_type, ps_inv=False
    )
    print(
        f"\n1. T training epoch time, {args.images} images, batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.target_type} targets (median epoch)"
    )
    print(
        f"{'architecture':<13} {'layer':<16} {'reference s':>12} "
        f"{'cached s':>10} {'cache once s':>13} {'speed-up':>9}"
    )
    for arch in args.archs:
        for layer in CASES[arch]:
            reference, _ = epoch_times(arch, layer, split, options, device, cached=False)
            cached, setup = epoch_times(arch, layer, split, options, device, cached=True)
            ref, fast = statistics.median(reference), statistics.median(cached)
            print(
                f"{arch:<13} {layer:<16} {ref:>12.3f} "
                f"{fast:>10.3f} {setup:>13.3f} {ref / fast:>8.1f}x"
            )


def benchmark_least_squares(args, device) -> None:
    print(
        f"\n2. least squares (ps_inv): {args.rows} pixel rows "
        f"in batches of {args.rows // 8}, square T of width p"
    )
    print(
        f"{'p':>6} {'moments MiB':>12} {'accumulate s':>13} "
        f"{'solve s':>9} {'pinv MiB':>9} {'pinv s':>8} {'max |diff|':>11}"
    )
    g = torch.Generator().manual_seed(0)
    for p in args.widths:
        w_true = torch.randn(p, p, generator=g, dtype=torch.float64) / p**0.5
        batches = []
        for _ in range(8):
            x = torch.relu(torch.randn(args.rows // 8, p, generator=g)) + 0.1
            batches.append(
                (
                    x.to(device),
                    (
                        x.double() @ w_true.T
                        + 0.01 * torch.randn(len(x), p, generator=g, dtype=torch.float64)
                    )
                    .float()
                    .to(device),
                )
            )
        _sync(device)
        start = time.perf_counter()
        moments = Moments(p, p)
        for x, y in batches:
            moments.update(x, y)
        _sync(device)
        accumulate = time.perf_counter() - start
        start = time.perf_counter()
        solution = solve_affine(moments, ridge=0.0)
        solve = time.perf_counter() - start
        memory = (moments.sxx.numel() + moments.sxy.numel()) * 8 / 2**20
        stacked_mib = args.rows * (p + 1) * 8 / 2**20
        if stacked_mib <= args.pinv_limit_mib:
            x = torch.cat([b[0] for b in batches]).double().cpu()
            y = torch.cat([b[1] for b in batches]).double().cpu()
            start = time.perf_counter()
            joint = (
                torch.linalg.pinv(torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)) @ y
            )
            pinv = f"{time.perf_counter() - start:>8.2f}"
            diff = max(
                (joint[:p].T - solution.weight).abs().max().item(),
                (joint[p] - solution.bias).abs().max().item(),
            )
            diff_text = f"{diff:>11.1e}"
        else:
            pinv, diff_text = f"{'-':>8}", f"{'-':>11}"
        print(
            f"{p:>6} {memory:>12.1f} {accumulate:>13.3f} "
            f"{solve:>9.3f} {stacked_mib:>9.0f} {pinv} {diff_text}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--dataset", default="digits", help="input shape and classes (the images are random)"
    )
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--target-type", default="hard", choices=("hard", "soft_2"))
    parser.add_argument("--archs", nargs="*", default=["lenet", "resnet20_w1"], choices=list(CASES))
    parser.add_argument(
        "--rows", type=int, default=200_000, help="pixel rows of the least-squares benchmark"
    )
    parser.add_argument("--widths", type=int, nargs="*", default=[16, 64, 256, 512, 1024])
    parser.add_argument(
        "--pinv-limit-mib",
        type=float,
        default=512,
        help="run the stacked pinv only below this size",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}")
    benchmark_training(args, device)
    benchmark_least_squares(args, device)


if __name__ == "__main__":
    main()
