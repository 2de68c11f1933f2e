"""TRAK featurise + score time: modelkin.attribution
vs the traker package, same device, data and proj_dim.

    # CPU, LeNet on digits, proj_dim 1024
    .venv/bin/python benchmarks/trak_attribution.py
    # on a GPU (traker uses fast_jl when installed)
    .venv/bin/python benchmarks/trak_attribution.py --device cuda

Both run on the prepared digits set (1,200 training, 597 target images), the same checkpoints
(seeded LeNets; timing does not depend on training), the same batch size and float32 (traker's fp16
is off: CPU matmuls in fp16 are not what anyone runs). On the CPU traker uses its BasicProjector
with Gaussian entries (its CPU default), so modelkin uses proj_type=gaussian too. Both pay
torch.func's one-time warm-up before the clock starts, and each library runs --repeats times,
alternating, the best run counting. On CUDA both run under the same TF32 switches (--precision):
PyTorch's default computes cuDNN convolutions in TF32, which modelkin's fp32 turns off. The script
prints each time and the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--proj-dim",
        type=int,
        default=1024,
        help="projection dimension: above 100 (traker's CPU projector) and "
        "below the 1,200 training images (otherwise the kernel is singular)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="examples per batch, both libraries")
    p.add_argument("--checkpoints", type=int, default=2)
    p.add_argument("--arch", default="lenet")
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--skip-traker", action="store_true", help="time modelkin only")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "tf32"),
        help="both libraries under the same TF32 switches: fp32 (off: PyTorch's default turns "
        "them on for cuDNN convolutions, which traker would otherwise get and modelkin's fp32 "
        "does not) or tf32 (on, CUDA only)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each library, alternating; the best is reported (the first run of "
        "either pays the device's one-time start-up: cuBLAS, cuSOLVER, kernel caches)",
    )
    return p.parse_args()


def time_modelkin(models, train, targets, args) -> tuple[float, np.ndarray]:
    from modelkin.attribution import TrakSettings, ensemble_scores, featurize

    proj_type = "gaussian" if args.device == "cpu" else "rademacher"
    settings = TrakSettings(
        proj_dim=args.proj_dim,
        proj_type=proj_type,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    _sync(args.device)
    start = time.perf_counter()
    features = [
        featurize(m, train, targets, settings, checkpoint_index=i, device=args.device)
        for i, m in enumerate(models)
    ]
    scores = ensemble_scores(features, device=args.device)
    _sync(args.device)
    return time.perf_counter() - start, scores.numpy()


def time_traker(models, train, targets, args) -> tuple[float, np.ndarray]:
    from trak import TRAKer

    from modelkin.precision import compute_precision

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp, compute_precision(args.precision, device):
        _sync(args.device)
        start = time.perf_counter()
        traker = TRAKer(
            model=models[0],
            task="image_classification",
            train_set_size=len(train[1]),
            save_dir=str(Path(tmp) / "traker"),
            device=args.device,
            proj_dim=args.proj_dim,
            use_half_precision=False,
            logging_level=logging.ERROR,
        )
        for model_id, model in enumerate(models):
            traker.load_checkpoint(model.state_dict(), model_id=model_id)
            for x, y in _batches(train, args):
                traker.featurize(batch=[x, y], num_samples=len(y))
        traker.finalize_features()
        for model_id, model in enumerate(models):
            traker.start_scoring_checkpoint(
                exp_name="bench",
                checkpoint=model.state_dict(),
                model_id=model_id,
                num_targets=len(targets[1]),
            )
            for x, y in _batches(targets, args):
                traker.score(batch=[x, y], num_samples=len(y))
        scores = np.asarray(traker.finalize_scores(exp_name="bench"))
        _sync(args.device)
        return time.perf_counter() - start, scores


def _batches(data, args):
    x, y = data
    for start in range(0, len(y), args.batch_size):
        yield (
            x[start : start + args.batch_size].to(args.device),
            y[start : start + args.batch_size].to(args.device),
        )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _warm_up(model, data, device) -> None:
    """torch.func imports a few hundred modules on its
    first call; neither library should pay that."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, x):
        return torch.func.functional_call(model, p, (x[None],)).sum()

    torch.func.vmap(torch.func.grad(f), in_dims=(None, 0))(params, data[0][:4].to(device))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from modelkin.data import load_split, prepare_dataset
    from modelkin.models import seeded_model

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_dataset("digits", Path(tmp) / "digits.safetensors")
        train_split, test_split = load_split(prepared, "train"), load_split(prepared, "test")
    train = (train_split.x, train_split.y)
    targets = (test_split.x, test_split.y)
    models = [
        seeded_model(args.arch, train_split.info, seed).to(args.device).eval()
        for seed in range(args.checkpoints)
    ]
    num_params = sum(p.numel() for p in models[0].parameters())
    _warm_up(models[0], train, args.device)
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"TRAK on digits: {args.arch} ({num_params:,} parameters), {args.checkpoints} "
        f"checkpoints, {len(train[1])} train x {len(targets[1])} targets, proj_dim "
        f"{args.proj_dim}, batch {args.batch_size}, float32, {device_name}"
    )
    ours_runs, their_runs = [], []
    for _ in range(args.repeats):
        seconds, ours_scores = time_modelkin(models, train, targets, args)
        ours_runs.append(seconds)
        if not args.skip_traker:
            seconds, their_scores = time_traker(models, train, targets, args)
            their_runs.append(seconds)
    ours = min(ours_runs)
    print(f"modelkin: {ours:8.2f} s   (runs: {', '.join(f'{t:.2f}' for t in ours_runs)})")
    if args.skip_traker:
        return
    theirs = min(their_runs)
    print(f"traker:   {theirs:8.2f} s   (runs: {', '.join(f'{t:.2f}' for t in their_runs)})")
    print(f"speed-up: {theirs / ours:8.2f}x (best traker time / best modelkin time, same run)")
    # The two libraries draw different projection matrices, and these LeNets are untrained, so their
    # scores are not comparable entry by entry; that both compute the same scores from the same
    # matrices is tests/test_trak.py::test_agrees_with_traker_given_the_same_projection_matrices.
    if ours_scores.shape != their_scores.shape:
        raise SystemExit(
            f"score shapes differ: modelkin {ours_scores.shape}, traker {their_scores.shape}"
        )
    print(
        f"scores: {ours_scores.shape[0]} x {ours_scores.shape[1]} from both; agreement is "
        "tested with shared projection matrices (tests/test_trak.py), not measured here"
    )


if __name__ == "__main__":
    main()
