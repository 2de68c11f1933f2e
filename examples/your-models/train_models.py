"""Train the walk-through's models the way a user would, with plain PyTorch, and export them.

Nothing here uses modelkin: this stands for your own training code. It trains torchvision
ResNet-18s on an image folder (one sub-folder per class, as torchvision's ImageFolder reads it)
and saves each model's state dict:

- ``victim.pt``: trained from scratch (seed 0);
- ``finetuned.pt``: the victim fine-tuned for one more epoch on half of the training images, at a
  tenth of the learning rate (a derived model);
- ``independent.pt``: trained from scratch with another seed (not derived);
- ``ref0.pt`` ... ``ref4.pt``: more independently trained models, the references that calibrate
  the verdicts;
- ``sel0.pt``, ``sel1.pt``: two more, which select ModelGiF's reference points (kept apart from
  the models compared, so the selection never sees them).

    python examples/your-models/train_models.py --data your-models/digits_rgb --out your-models
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
SCRATCH = {
    "victim": 0,
    "independent": 1,
    "ref0": 2,
    "ref1": 3,
    "ref2": 4,
    "ref3": 5,
    "ref4": 6,
    "sel0": 7,
    "sel1": 8,
}


def load_split(folder: Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    transform = transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    )
    data = torchvision.datasets.ImageFolder(str(folder), transform=transform)
    x = torch.stack([image for image, _ in data])
    y = torch.tensor(data.targets)
    return x, y, data.classes


def train(model: nn.Module, x, y, epochs: int, lr: float, seed: int, batch_size: int = 32) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()


def accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="image folder with train/ and test/"
    )
    parser.add_argument("--out", type=Path, required=True, help="where the .pt files go")
    parser.add_argument("--size", type=int, default=16, help="image size the models are trained at")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    train_x, train_y, classes = load_split(args.data / "train", args.size)
    test_x, test_y, _ = load_split(args.data / "test", args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, seed in SCRATCH.items():
        torch.manual_seed(seed)
        model = torchvision.models.resnet18(num_classes=len(classes))
        train(model, train_x, train_y, args.epochs, args.lr, seed)
        torch.save(model.state_dict(), args.out / f"{name}.pt")
        print(f"{name}: test accuracy {accuracy(model, test_x, test_y):.3f}")
        if name == "victim":
            half = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(100))
            half = half[: len(half) // 2]
            train(model, train_x[half], train_y[half], 1, args.lr / 10, seed=100)
            torch.save(model.state_dict(), args.out / "finetuned.pt")
            print(f"finetuned: test accuracy {accuracy(model, test_x, test_y):.3f}")


if __name__ == "__main__":
    main()
