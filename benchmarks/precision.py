"""The ``precision`` setting: speed of bf16 (and tf32 on GPUs) against fp32, and what it does to
the science.

    python benchmarks/precision.py                  # CPU: fp32 vs bf16
    python benchmarks/precision.py --device cuda    # GPU: fp32 vs bf16 vs tf32

Speed, measured side by side in one run on one ResNet-20 with random weights and CIFAR-10-shaped
inputs (3x32x32; cost does not depend on the weights or the pixels): a plain forward pass (the
hardware's own ratio), Zest's batched extractor, ModelGiF's gradient fields and TRAK's
featurisation (per-example gradients and their projection).

Science, on a small collection trained here on the bundled digits (LeNets of --models seeds, each
with a fine-tuned copy: one more epoch at a tenth of the learning rate on a new batch order):

- the cos distance between the fp32 and the bf16 signature of the same model, against the
  distance between a model and its fine-tuned copy and between independent models (fp32);
- the relatedness ROC AUC (fine-tuned pairs against independent pairs), from fp32 signatures and
  from bf16 signatures.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from modelkin.attribution import TrakSettings, featurize, ridge_for
from modelkin.data import load_split, prepare_dataset
from modelkin.device import resolve_device
from modelkin.models import seeded_model
from modelkin.signatures.gradfield.distance import field_cos
from modelkin.signatures.gradfield.extract import GradientField
from modelkin.signatures.zest.distance import zest_cos
from modelkin.signatures.zest.extract import ZestExtractor, ZestProbe, draw_masks, make_zest_probe
from modelkin.train import TrainRecipe, fit


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed(device, fn, repeats: int = 2) -> float:
    fn()  # warm-up (oneDNN / cuDNN kernels for this precision)
    best = float("inf")
    for _ in range(repeats):
        start = clock(device)
        fn()
        best = min(best, clock(device) - start)
    return best


def speed(device: torch.device, precisions: list[str], args) -> None:
    from modelkin.precision import compute_precision

    model = seeded_model("resnet20_w1", "cifar10", 0).to(device).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.images, 3, 32, 32, generator=g)
    segments = np.broadcast_to(
        (np.arange(32)[:, None] // 8 * 4 + np.arange(32)[None, :] // 8).astype(np.int32),
        (args.images, 32, 32),
    ).copy()
    num = np.full(args.images, 16, dtype=np.int32)
    probe = ZestProbe(
        images.numpy(), segments, num, draw_masks(num, args.samples, 0), {"hide_color": [0.5] * 3}
    )
    batch = torch.rand(256, 3, 32, 32, generator=g).to(device)
    train = (
        torch.rand(args.trak_train, 3, 32, 32, generator=g),
        torch.arange(args.trak_train) % 10,
    )
    targets = (train[0][:64], train[1][:64])
    targets_gf = torch.arange(args.points) % 10
    # At the default 512 examples (below proj_dim 1024) the kernel is singular: a small ridge
    # keeps it invertible without changing the cost
    trak = TrakSettings(proj_dim=1024, ridge=ridge_for(args.trak_train, 1024))

    def forward(p):
        with torch.inference_mode(), compute_precision(p, device):
            for _ in range(8):
                model(batch)

    jobs = {
        "forward (8 x 256 images)": forward,
        f"Zest ({args.images} images x {args.samples})": lambda p: ZestExtractor(
            None, device, p
        ).signature(model, probe),
        f"ModelGiF ({args.points} points x 50 steps)": lambda p: GradientField(
            50, "zero", None, device, p
        ).signature(model, images[: args.points], targets_gf),
        f"TRAK featurise ({args.trak_train} + 64 examples, k 1024)": lambda p: featurize(
            model, train, targets, dataclasses.replace(trak, precision=p), device=device
        ),
    }
    print(f"{'speed':<44}" + "".join(f"{p + ' s':>10}" for p in precisions) + "   fp32 / other")
    for name, job in jobs.items():
        seconds = {p: timed(device, lambda job=job, p=p: job(p)) for p in precisions}
        ratios = ", ".join(f"{p} {seconds['fp32'] / seconds[p]:.2f}x" for p in precisions[1:])
        print(
            f"  {name:<42}" + "".join(f"{seconds[p]:>10.2f}" for p in precisions) + f"   {ratios}"
        )


def auc(related: list[float], unrelated: list[float]) -> float:
    """P(a related pair is closer than an unrelated one), ties counted half."""
    wins = sum((r < u) + 0.5 * (r == u) for r in related for u in unrelated)
    return wins / (len(related) * len(unrelated))


def collection(prepared: Path, n_models: int, device: torch.device):
    """(name, model) of n_models LeNets and their fine-tuned copies."""
    train = load_split(prepared, "train")
    recipe = TrainRecipe(epochs=4, lr=0.02, batch_size=32)
    models = {}
    for seed in range(n_models):
        model = seeded_model("lenet", "digits", seed)
        fit(model, train, recipe, data_seed=seed, device=device, desc=f"lenet {seed}")
        copy = seeded_model("lenet", "digits", seed)
        copy.load_state_dict(model.state_dict())
        tune = TrainRecipe(epochs=1, lr=0.002, batch_size=32, schedule="constant")
        fit(copy, train, tune, data_seed=100 + seed, device=device, desc=f"finetune {seed}")
        models[f"m{seed}"] = model.eval()
        models[f"m{seed}-ft"] = copy.eval()
    return models


def science(device: torch.device, args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare_dataset("digits", Path(tmp) / "digits.safetensors")
        models = collection(prepared, args.models, device)
        split = load_split(prepared, "train", limit=args.science_images)
        zest_probe = make_zest_probe(
            split, n_images=args.science_images, n_samples=500, kernel_size=3
        )
    points = split.x[: args.science_images]
    roots = [name for name in models if not name.endswith("-ft")]
    for method in ("zest", "gradfield"):
        sigs: dict[str, dict[str, np.ndarray]] = {"fp32": {}, "bf16": {}}
        for precision, (name, model) in itertools.product(sigs, models.items()):
            if method == "zest":
                sigs[precision][name] = ZestExtractor(None, device, precision).signature(
                    model, zest_probe
                )
            else:
                targets = model(points.to(device)).argmax(1).cpu()
                sigs[precision][name] = GradientField(
                    50, "zero", None, device, precision
                ).signature(model, points, targets)
        distance = zest_cos if method == "zest" else field_cos
        same = [distance(sigs["fp32"][n], sigs["bf16"][n]) for n in models]
        print(f"{method} (cos distance; {len(models)} models, {args.science_images} images)")
        print(
            f"  fp32 vs bf16 signature of the same model: mean {np.mean(same):.4f}, "
            f"max {np.max(same):.4f}"
        )
        aucs = {}
        for precision, table in sigs.items():
            related = [distance(table[r], table[f"{r}-ft"]) for r in roots]
            unrelated = [distance(table[a], table[b]) for a, b in itertools.combinations(roots, 2)]
            aucs[precision] = auc(related, unrelated)
            if precision == "fp32":
                print(
                    f"  model vs its fine-tuned copy (fp32): mean {np.mean(related):.4f}; "
                    f"independent models: mean {np.mean(unrelated):.4f} (min {min(unrelated):.4f})"
                )
                print(
                    f"  fp32-vs-bf16 distance / fine-tuned distance: "
                    f"{np.mean(same) / np.mean(related):.2f}"
                )
        print(f"  relatedness AUC: fp32 {aucs['fp32']:.3f}, bf16 {aucs['bf16']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=16, help="Zest images (speed)")
    parser.add_argument("--samples", type=int, default=250, help="Zest samples per image (speed)")
    parser.add_argument("--points", type=int, default=16, help="ModelGiF points (speed)")
    parser.add_argument("--trak-train", type=int, default=512, help="TRAK training examples")
    parser.add_argument("--models", type=int, default=4, help="independent models (science)")
    parser.add_argument("--science-images", type=int, default=32, help="probe images (science)")
    parser.add_argument("--skip-science", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    device = resolve_device(args.device)
    precisions = ["fp32", "bf16"] + (["tf32"] if device.type == "cuda" else [])
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads, bf16 units: "
        f"{'avx512_bf16' if 'avx512_bf16' in open('/proc/cpuinfo').read() else 'none'})"
    )
    print(f"device: {name}; precisions {', '.join(precisions)}")
    speed(device, precisions, args)
    if not args.skip_science:
        science(device, args)


if __name__ == "__main__":
    main()
