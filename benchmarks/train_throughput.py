"""Training throughput (images/s) of every architecture on the current device.

    python benchmarks/train_throughput.py [--device auto] [--dataset digits]
        [--batch-size 128] [--steps 10]

Prints, per architecture, standard training images/s, Madry PGD training images/s
(--attack-steps PGD steps per batch) and their ratio, plus the ratio of training
to plain inference throughput, all measured in this one run.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from modelkin.datasets import get_dataset_info
from modelkin.device import resolve_device
from modelkin.models import ARCHITECTURES, seeded_model
from modelkin.train import TrainRecipe, make_optimizer, training_loss


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(fn, batch_size, steps, device) -> float:
    fn()  # warm-up (cuDNN autotuning, allocator)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return batch_size * steps / (time.perf_counter() - start)


def train_step(model, optimizer, x, y, recipe, eps, step, generator) -> None:
    model.train()
    loss, _ = training_loss(model, x, y, recipe, eps, step, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def infer_step(model, x) -> None:
    model.eval()
    with torch.no_grad():
        model(x)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--attack-steps", type=int, default=5)
    parser.add_argument("--archs", nargs="*", default=list(ARCHITECTURES))
    args = parser.parse_args()

    device = resolve_device(args.device)
    info = get_dataset_info(args.dataset)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; data set {args.dataset} {info.shape}; "
        f"batch {args.batch_size}; {args.steps} steps"
    )
    print(
        f"{'architecture':<14} {'params':>10} {'train img/s':>12} "
        f"{'madry img/s':>12} {'madry/std':>10} {'train/infer':>12}"
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, *info.shape, device=device)
    y = torch.randint(0, info.num_classes, (args.batch_size,), device=device)
    for arch in args.archs:
        model = seeded_model(arch, info, 0).to(device)
        recipes = {
            "standard": TrainRecipe(batch_size=args.batch_size),
            "madry": TrainRecipe(
                batch_size=args.batch_size, adversary="madry", attack_steps=args.attack_steps
            ),
        }
        rates = {}
        for label, recipe in recipes.items():
            optimizer = make_optimizer(model.parameters(), recipe)
            eps, step = recipe.attack_budget(info.default_epsilon)
            fn = functools.partial(train_step, model, optimizer, x, y, recipe, eps, step, generator)
            rates[label] = images_per_second(fn, args.batch_size, args.steps, device)

        fn = functools.partial(infer_step, model, x)
        infer = images_per_second(fn, args.batch_size, args.steps, device)
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{arch:<14} {params:>10,} {rates['standard']:>12.0f} {rates['madry']:>12.0f} "
            f"{rates['madry'] / rates['standard']:>10.3f} {rates['standard'] / infer:>12.3f}"
        )


if __name__ == "__main__":
    main()
