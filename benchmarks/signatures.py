"""Signature extraction cost on the current device:
batched Zest and ModelGiF against reference-style code.

    python benchmarks/signatures.py [--device auto] [--arch resnet20_w1] [--dataset cifar10]
                                    [--images 8] [--samples 200] [--points 16] [--lime-images 1]

Everything is measured in this one run, on one model with random weights (cost does not
depend on the weights):

- Zest, batched (modelkin.signatures.zest.ZestExtractor): perturbed images built on the
  device in chunks, one batched float64 least-squares solve.
- Zest, reference-style: per image, perturbed float64 numpy images built superpixel by
  superpixel, shipped to the device, forward in batches, np.linalg.lstsq per image
  (the structure of the reference code; it also caches all images' perturbations first).
- LIME's own LimeImageExplainer doing the same job (same superpixels, number of samples,
  hide colour, all labels) on --lime-images images, extrapolated to all --images images.
  It fits weighted ridge regressions, not Zest's plain least squares: a cost comparison only.
- A plain forward pass over the same number of images (Zest's floor).
- ModelGiF, batched (GradientField, all points x steps of a chunk in one forward/backward)
  against the reference's batch of 2 points, one path step per forward/backward.

Peak memory per phase: torch.cuda.max_memory_allocated on CUDA; on CPU the growth of the
resident set size above the phase's start, sampled every 2 ms (approximate).
Inputs: the first --images digits images for --dataset digits; otherwise smooth random
images of the data set's shape (quickshift finds ~13-20 superpixels on them, as on CIFAR-10;
it finds one on white noise). The default sizes finish in about a minute on 2 CPU cores;
the paper-sized run is --images 128 --samples 1000 --points 256 --lime-images 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time

import numpy as np
import torch

from modelkin.data import load_split, prepare_dataset
from modelkin.datasets import get_dataset_info
from modelkin.device import resolve_device
from modelkin.models import seeded_model
from modelkin.signatures.gradfield.extract import GradientField, gauss_legendre
from modelkin.signatures.zest.extract import (
    AUTO_CHUNK_SIZE,
    ZestExtractor,
    ZestProbe,
    draw_masks,
    segment_image,
)

SEGMENTATION = {"digits": {"kernel_size": 3, "ratio": 0.2, "max_dist": 200}}
REFERENCE_SEGMENTATION = {"kernel_size": 4, "ratio": 0.2, "max_dist": 200}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Phase:
    """Wall time and peak memory of one block of work."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.peak_bytes = 0

    @contextlib.contextmanager
    def measure(self):
        stop = threading.Event()
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            start_bytes = rss_bytes()
            samples = [start_bytes]

            def sample():
                while not stop.wait(0.002):
                    samples.append(rss_bytes())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        start = time.perf_counter()
        try:
            yield self
        finally:
            sync(self.device)
            self.seconds = time.perf_counter() - start
            if self.device.type == "cuda":
                self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - start_bytes
            else:
                stop.set()
                sampler.join()
                self.peak_bytes = max(max(samples) - start_bytes, 0)


def benchmark_images(dataset: str, n: int) -> tuple[np.ndarray, dict]:
    info = get_dataset_info(dataset)
    if dataset == "digits":
        with tempfile.TemporaryDirectory() as tmp:
            images = load_split(
                prepare_dataset("digits", f"{tmp}/digits.safetensors"), "train", limit=n
            ).x.numpy()
        return images, SEGMENTATION["digits"]
    g = torch.Generator().manual_seed(0)
    c, h, w = info.shape
    grey, colour = torch.rand(n, 1, 6, 6, generator=g), torch.rand(n, c, 6, 6, generator=g)
    low = 0.5 + 0.6 * (0.7 * grey + 0.3 * colour - 0.5)
    images = torch.nn.functional.interpolate(
        low, size=(h, w), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    return images.numpy().astype(np.float32), REFERENCE_SEGMENTATION


def make_probe(images: np.ndarray, samples: int, segmentation: dict, hide: np.ndarray) -> ZestProbe:
    segments = np.stack([segment_image(img, **segmentation) for img in images])
    num_segments = (segments.reshape(len(images), -1).max(1) + 1).astype(np.int32)
    masks = draw_masks(num_segments, samples, seed=0)
    return ZestProbe(
        images, segments, num_segments, masks, {"hide_color": hide.tolist()}
    ).validate()


def zest_reference_style(model, probe: ZestProbe, device, batch_size: int) -> np.ndarray:
    hide = probe.hide_color.astype(np.float64)[:, None]
    weights = []
    for image, segments, f, masks in zip(
        probe.images, probe.segments, probe.num_segments, probe.masks, strict=True
    ):
        z = masks[:, :f].astype(np.float64)
        perturbed = np.repeat(image.astype(np.float64)[None], len(z), axis=0)
        for s in range(len(z)):
            for feature in np.flatnonzero(z[s] == 0):
                perturbed[s][:, segments == feature] = hide
        outputs = []
        with torch.no_grad():
            for start in range(0, len(z), batch_size):
                batch = torch.from_numpy(perturbed[start : start + batch_size]).to(device).float()
                outputs.append(model(batch).double().cpu().numpy())
        weights.append(np.linalg.lstsq(z, np.concatenate(outputs), rcond=None)[0])
    return np.concatenate(weights).astype(np.float32)


def lime_explainer_run(model, probe: ZestProbe, n_images: int, device, num_classes: int) -> None:
    from lime.lime_image import LimeImageExplainer

    explainer = LimeImageExplainer(verbose=False, random_state=0)
    channels = probe.images.shape[1]

    def classifier(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch.transpose(0, 3, 1, 2)[:, :channels].astype(np.float32)).to(
            device
        )
        with torch.no_grad():
            return model(x).cpu().numpy()

    hide = probe.hide_color if channels == 3 else np.repeat(probe.hide_color, 3)
    for image, segments in zip(probe.images[:n_images], probe.segments[:n_images], strict=True):
        rgb = image.transpose(1, 2, 0).astype(np.float64)
        rgb = np.repeat(rgb, 3, axis=2) if channels == 1 else rgb
        explainer.explain_instance(
            rgb,
            classifier,
            top_labels=num_classes,
            hide_color=hide,
            num_samples=probe.n_samples,
            batch_size=256,
            segmentation_fn=lambda _image, segments=segments: segments,
            random_seed=0,
        )


def gradfield_batch_of_two(model, points, targets, baseline, n_steps, device) -> np.ndarray:
    alphas, weights = gauss_legendre(n_steps)
    out = np.empty((len(points), n_steps, points[0].numel()), dtype=np.float32)
    for start in range(0, len(points), 2):
        x = points[start : start + 2].to(device)
        x0 = baseline.to(device).expand_as(x)
        chosen = targets[start : start + 2].to(device)
        total = torch.zeros_like(x)
        for k in range(n_steps):
            on_path = (x0 + float(alphas[k]) * (x - x0)).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(on_path).gather(1, chosen[:, None]).sum(), on_path)
            total = total + float(weights[k]) * grad
            out[start : start + 2, k] = (total * (x - x0)).reshape(len(x), -1).cpu().numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="resnet20_w1")
    parser.add_argument(
        "--dataset", default="cifar10", help="input shape and mean colour (digits: real images)"
    )
    parser.add_argument("--images", type=int, default=16, help="Zest reference images")
    parser.add_argument("--samples", type=int, default=400, help="Zest perturbations per image")
    parser.add_argument(
        "--lime-images", type=int, default=1, help="images explained by LimeImageExplainer"
    )
    parser.add_argument("--points", type=int, default=32, help="ModelGiF reference points")
    parser.add_argument("--steps", type=int, default=50, help="ModelGiF path steps")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="images per batched forward pass (default: the library's per-device choice)",
    )
    parser.add_argument(
        "--reference-batch", type=int, default=256, help="forward batch of the reference-style Zest"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    info = get_dataset_info(args.dataset)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    model = seeded_model(args.arch, info, 0).to(device).eval()
    images, segmentation = benchmark_images(args.dataset, max(args.images, args.points))
    hide = np.asarray(info.mean, dtype=np.float32)
    print(f"device: {name}; {args.arch} on {args.dataset}-shaped inputs {info.shape}")

    setup = Phase(device)
    with setup.measure():
        probe = make_probe(images[: args.images], args.samples, segmentation, hide)
    queries = probe.n_images * probe.n_samples
    print(
        f"Zest: {probe.n_images} images x {probe.n_samples} samples = {queries} queries; "
        f"superpixels per image {probe.num_segments.min()}-{probe.num_segments.max()} "
        f"(median {int(np.median(probe.num_segments))}); probe (quickshift + masks, "
        f"shared by all models) {setup.seconds:.2f} s"
    )

    extractor = ZestExtractor(args.chunk_size, device)
    extractor.signature(
        model, make_probe(images[:1], 8, segmentation, hide)
    )  # warm-up (cuDNN, allocator)
    batched = Phase(device)
    with batched.measure():
        ours = extractor.signature(model, probe)
    reference = Phase(device)
    with reference.measure():
        theirs = zest_reference_style(model, probe, device, args.reference_batch)
    lime = Phase(device)
    lime_images = min(args.lime_images, probe.n_images)
    with lime.measure(), contextlib.redirect_stderr(open(os.devnull, "w")):
        lime_explainer_run(model, probe, lime_images, device, info.num_classes)
    lime_total = lime.seconds / lime_images * probe.n_images
    forward = Phase(device)
    forward_batch = args.chunk_size or AUTO_CHUNK_SIZE.get(device.type, AUTO_CHUNK_SIZE["cuda"])
    x = torch.rand(min(forward_batch, queries), *info.shape, device=device)
    with forward.measure(), torch.inference_mode():
        for start in range(0, queries, len(x)):
            model(x[: min(len(x), queries - start)])

    def mib(phase: Phase) -> str:
        return f"{phase.peak_bytes / 2**20:8.1f} MiB"

    print(f"  batched Zest           {batched.seconds:8.3f} s   peak {mib(batched)}")
    print(
        f"  reference-style loop   {reference.seconds:8.3f} s   peak "
        f"{mib(reference)}   (max |difference| {np.abs(ours - theirs).max():.1e})"
    )
    print(
        f"  LimeImageExplainer     {lime_total:8.3f} s   peak {mib(lime)}   "
        f"(measured on {lime_images} image(s), {lime.seconds:.3f} s, "
        f"extrapolated x{probe.n_images / lime_images:g})"
    )
    print(
        f"  plain forward          {forward.seconds:8.3f} s   peak "
        f"{mib(forward)}   ({queries} images, batch {len(x)})"
    )
    print(
        f"  ratios: reference-style / batched {reference.seconds / batched.seconds:.1f}x; "
        f"LIME / batched {lime_total / batched.seconds:.1f}x; batched / plain forward "
        f"{batched.seconds / forward.seconds:.2f}x"
    )

    points = torch.from_numpy(images[: args.points])
    with torch.no_grad():
        targets = model(points.to(device)).argmax(1).cpu()
    baseline = torch.as_tensor(hide).reshape(1, -1, 1, 1)
    field = GradientField(args.steps, baseline, args.chunk_size, device)
    field.signature(model, points[:1], targets[:1])  # warm-up
    gf_batched = Phase(device)
    with gf_batched.measure():
        ours = field.signature(model, points, targets)
    gf_reference = Phase(device)
    with gf_reference.measure():
        theirs = gradfield_batch_of_two(model, points, targets, baseline, args.steps, device)
    print(f"ModelGiF: {args.points} points x {args.steps} steps")
    print(f"  batched                {gf_batched.seconds:8.3f} s   peak {mib(gf_batched)}")
    print(
        f"  batch of 2, per step   {gf_reference.seconds:8.3f} s   peak {mib(gf_reference)}   "
        f"(max |difference| {np.abs(ours - theirs).max():.1e})"
    )
    print(f"  ratio: batch-2 / batched {gf_reference.seconds / gf_batched.seconds:.1f}x")


if __name__ == "__main__":
    main()
