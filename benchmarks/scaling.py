"""Cost at scale: time and peak memory of every stage at 3-4 sizes, and how they grow.

    python benchmarks/scaling.py --quick               # a few minutes on 2 CPU cores
    python benchmarks/scaling.py                       # up to CIFAR-10 scale (and ImageNet-sized
                                                       # inputs for the signatures): for a GPU,
                                                       # or an hour or more on 2 CPU cores
    python benchmarks/scaling.py --device cuda --stages zest,trak
    python benchmarks/scaling.py --largest             # peak memory at CIFAR-10 scale only

Each measurement runs in a fresh process (multiprocessing, spawn; on CUDA by default all run in
one process after a warm-up at the smallest size, the peak RSS reset between them:
``--processes``) on synthetic data of the real shapes (CIFAR-10: 3x32x32 images, 10 classes,
ResNet-20; ImageNet-sized: 3x224x224, ResNet-20 at that resolution), since the cost does not
depend on what the pixels show or on trained weights. It reports the stage's wall time, the
process's peak resident memory (VmHWM: torch, the data and the stage together) beside the memory
budget (``memory_budget_mb``, default the configuration's), what the stage would hold whole
without streaming, and, per stage, the growth exponent k of time ~ n^k fitted by least squares
on log-log scale (k = 1: linear in n).

Stages and the size n that grows:

- ``zest``: queries (reference images x perturbations); the batched extractor;
- ``gradfield``: reference points (x 50 path steps); the field streamed into a chunked HDF5 file;
- ``trak``: training examples (targets = n/5); featurise one checkpoint and score it, features and
  scores written to HDF5 in blocks;
- ``similarity``: probe images; minibatch CKA streamed over every pair of ResNet-20's 10 ReLU
  outputs of two models (the in-memory measures would hold the "held whole" column);
- ``stitching``: training images; one epoch of T at layer2.0.relu2 of two ResNet-20s, front
  cached in memory within half the budget, else on disk.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CIFAR = {"name": "cifar10-shaped", "shape": (3, 32, 32)}
IMAGENET = {"name": "imagenet-shaped", "shape": (3, 224, 224)}
ARCH = "resnet20_w1"

# (stage, input, sizes, unit); a zest size is (images, samples), a gradfield size (points, steps)
QUICK = [
    ("zest", CIFAR, [(4, 100), (8, 100), (16, 100)], "queries"),
    ("zest", IMAGENET, [(1, 32), (2, 32), (4, 32)], "queries"),
    ("gradfield", CIFAR, [(4, 50), (8, 50), (16, 50)], "points x steps"),
    ("gradfield", IMAGENET, [(1, 16), (2, 16), (4, 16)], "points x steps"),
    ("trak", CIFAR, [250, 500, 1000], "training examples"),
    ("similarity", CIFAR, [256, 512, 1024], "probe images"),
    ("stitching", CIFAR, [1000, 2000, 4000], "training images"),
]
FULL = [
    ("zest", CIFAR, [(16, 1000), (32, 1000), (64, 1000), (128, 1000)], "queries"),
    ("zest", IMAGENET, [(2, 100), (4, 100), (8, 100), (16, 100)], "queries"),
    ("gradfield", CIFAR, [(16, 50), (32, 50), (64, 50), (128, 50)], "points x steps"),
    ("gradfield", IMAGENET, [(2, 50), (4, 50), (8, 50), (16, 50)], "points x steps"),
    ("trak", CIFAR, [6250, 12500, 25000, 50000], "training examples"),
    ("similarity", CIFAR, [1250, 2500, 5000, 10000], "probe images"),
    ("stitching", CIFAR, [6250, 12500, 25000, 50000], "training images"),
]


def status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# Stages (run in the child process)


def _info(shape):
    from modelkin.datasets import DatasetInfo, get_dataset_info

    base = get_dataset_info("cifar10")
    return DatasetInfo("cifar10", tuple(shape), 10, base.mean, base.std, "none", 8 / 255, "none")


def _images(n: int, shape, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g)


def run_zest(size, spec, options) -> dict:

    from modelkin.models import seeded_model
    from modelkin.signatures.zest.extract import ZestExtractor, ZestProbe, draw_masks

    images, samples = size
    c, h, w = spec["shape"]
    info = _info(spec["shape"])
    model = seeded_model(ARCH, info, 0).to(options["device"]).eval()
    # 4 x 4 grid superpixels: 16 per image, as quickshift finds on CIFAR-10
    rows, cols = np.meshgrid(np.arange(h) * 4 // h, np.arange(w) * 4 // w, indexing="ij")
    segments = np.broadcast_to((rows * 4 + cols).astype(np.int32), (images, h, w)).copy()
    num_segments = np.full(images, 16, dtype=np.int32)
    probe = ZestProbe(
        _images(images, spec["shape"]).numpy(),
        segments,
        num_segments,
        draw_masks(num_segments, samples, seed=0),
        {"hide_color": list(info.mean)},
    )
    extractor = ZestExtractor(None, options["device"], options["precision"])
    start = _sync_clock(options)
    extractor.signature(model, probe)
    return {"seconds": _sync_clock(options) - start, "n": images * samples, "held": 0}


def run_gradfield(size, spec, options) -> dict:
    import h5py
    import torch

    from modelkin.hdf5 import create_empty_dataset
    from modelkin.models import seeded_model
    from modelkin.signatures.gradfield.extract import GradientField, storage_chunks

    points, steps = size
    info = _info(spec["shape"])
    model = seeded_model(ARCH, info, 0).to(options["device"]).eval()
    x = _images(points, spec["shape"])
    targets = torch.arange(points) % 10
    shape = (points, steps, int(np.prod(spec["shape"])))
    with tempfile.TemporaryDirectory() as tmp, h5py.File(Path(tmp) / "field.h5", "w") as handle:
        out = create_empty_dataset(
            handle, "signature", shape, np.float32, chunks=storage_chunks(shape, 4)
        )
        field = GradientField(steps, "zero", None, options["device"], options["precision"])
        start = _sync_clock(options)
        field.signature(model, x, targets, out=out)
        seconds = _sync_clock(options) - start
    return {"seconds": seconds, "n": points * steps, "held": 4 * int(np.prod(shape))}


def run_trak(n, spec, options) -> dict:
    import torch

    from modelkin.attribution import TrakSettings, ridge_for
    from modelkin.attribution.store import FEATURES_KIND, SCORES_KIND, streamed_arrays
    from modelkin.attribution.streaming import featurize_to_file, scores_to_file
    from modelkin.models import seeded_model

    n_targets = max(1, n // 5)
    info = _info(spec["shape"])
    model = seeded_model(ARCH, info, 0).eval()
    train = (_images(n, spec["shape"], 1), torch.arange(n) % 10)
    targets = (_images(n_targets, spec["shape"], 2), torch.arange(n_targets) % 10)
    # Below proj_dim training examples the kernel is singular: a small ridge keeps it invertible
    # (the cost does not change; --quick measures sizes of 250-1,000 examples at proj_dim 2048).
    settings = TrakSettings(
        proj_dim=options["proj_dim"],
        precision=options["precision"],
        ridge=ridge_for(n, options["proj_dim"]),
    )
    device = torch.device(options["device"])
    axes = {
        "train_features": ("train", "p"),
        "target_grads": ("target", "p"),
        "out_to_loss": ("train",),
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = _sync_clock(options)
        path = Path(tmp) / "features.h5"
        with streamed_arrays(
            path, kind=FEATURES_KIND, method="trak", params={}, axes=axes
        ) as writer:
            q, _ = featurize_to_file(
                writer,
                model,
                train,
                targets,
                settings,
                checkpoint_index=0,
                device=device,
                memory_bytes=options["budget"],
            )
            writer.write("out_to_loss", q)
        with streamed_arrays(
            Path(tmp) / "scores.h5",
            kind=SCORES_KIND,
            method="trak",
            params={},
            axes={"scores": ("train", "target")},
        ) as writer:
            scores_to_file(
                writer, [path], out_to_loss=True, memory_bytes=options["budget"], device=device
            )
        seconds = _sync_clock(options) - start
    k = settings.proj_dim or 0
    return {"seconds": seconds, "n": n, "held": 4 * (n * k + n_targets * k + n * n_targets)}


def run_similarity(n, spec, options) -> dict:
    from modelkin.models import seeded_model
    from modelkin.similarity import compare_layers, select_layers
    from modelkin.similarity.streaming import in_memory_bytes

    info = _info(spec["shape"])
    a, b = seeded_model(ARCH, info, 0).eval(), seeded_model(ARCH, info, 1).eval()
    layers = select_layers(a, "relu")
    probe = _images(n, spec["shape"])
    start = _sync_clock(options)
    compare_layers(
        a, b, probe, layers, layers, ["minibatch_cka"], streaming="always",
        device=options["device"],
    )  # fmt: skip
    seconds = _sync_clock(options) - start
    held = in_memory_bytes(a, b, layers, layers, n, spec["shape"])
    return {"seconds": seconds, "n": n, "held": held, "mode": "streamed"}


def run_stitching(n, spec, options) -> dict:
    import torch

    from modelkin.data import Split
    from modelkin.models import seeded_model
    from modelkin.stitching import StitchOptions, build_stitched, train_stitcher
    from modelkin.stitching.cache import cache_size_bytes

    info = _info(spec["shape"])
    m1, m2 = seeded_model(ARCH, info, 0).eval(), seeded_model(ARCH, info, 1).eval()
    device = torch.device(options["device"])
    stitched = build_stitched(m1, "layer2.0.relu2", m2, "layer2.0.relu2").to(device)
    train = Split(_images(n, spec["shape"]), torch.arange(n) % 10, info)
    opts = StitchOptions.from_dict({"epochs": 1, "batch_size": 128, "target_type": "soft_2"})
    start = _sync_clock(options)
    log = train_stitcher(
        stitched, train, opts, device=device, memory_budget_mb=options["budget"] / 1e6
    )
    seconds = _sync_clock(options) - start
    held = cache_size_bytes(stitched, n, opts)
    return {"seconds": seconds, "n": n, "held": held, "mode": f"front {log.front_cache}"}


STAGES = {
    "zest": run_zest,
    "gradfield": run_gradfield,
    "trak": run_trak,
    "similarity": run_similarity,
    "stitching": run_stitching,
}


def _sync_clock(options) -> float:
    if options["device"].startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


def run_stage(stage, size, spec, options, start_rss_kb: int) -> dict:
    """One measurement with its memory: the resident set at the start, the peak since
    ``start_rss_kb`` was read (VmHWM) and, on CUDA, the peak GPU allocation."""
    import torch

    result = STAGES[stage](size, spec, options)
    result["start_mb"] = start_rss_kb * 1024 / 1e6
    result["peak_mb"] = status_kb("VmHWM") * 1024 / 1e6
    if options["device"].startswith("cuda"):
        result["gpu_mb"] = torch.cuda.max_memory_allocated() / 1e6
    return result


def _child(stage, size, spec, options, conn) -> None:
    import logging

    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    import torch

    if options["threads"]:
        torch.set_num_threads(options["threads"])
    try:
        conn.send(run_stage(stage, size, spec, options, status_kb("VmRSS")))
    except BaseException as err:  # reported by the parent
        conn.send({"error": f"{type(err).__name__}: {err}"})
        raise


def reset_peak_rss() -> bool:
    """Start VmHWM again from the current resident set (Linux >= 4.0: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure_here(stage, size, spec, options) -> dict:
    """One measurement in this process: no torch import and CUDA start-up per size (seconds
    each on a GPU machine), at the price of a peak RSS that includes what earlier sizes
    left allocated."""
    import gc

    import torch

    gc.collect()
    if options["device"].startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start_rss = status_kb("VmRSS")
    if not reset_peak_rss():
        return {
            "error": "cannot reset the peak RSS here (/proc/self/clear_refs): use fresh processes"
        }
    try:
        return run_stage(stage, size, spec, options, start_rss)
    except Exception as err:  # reported in the table; the other stages still run
        return {"error": f"{type(err).__name__}: {err}"}


def measure(stage, size, spec, options) -> dict:
    if options["in_process"]:
        return measure_here(stage, size, spec, options)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(stage, size, spec, options, child))
    process.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        result = {"error": "the measurement process died (killed for memory?)"}
    process.join()
    return result


def growth(ns, values) -> float:
    """k of value ~ n^k by least squares on log-log scale."""
    x, y = np.log(np.asarray(ns, float)), np.log(np.maximum(np.asarray(values, float), 1e-9))
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes on 2 cores")
    parser.add_argument(
        "--largest",
        action="store_true",
        help="each stage's largest size only: the memory check at CIFAR-10 scale, on a CPU in "
        "about half the time of all sizes (no growth exponents)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages")
    parser.add_argument("--budget-mb", type=float, default=None, help="default: the config's")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or tf32 (CUDA)")
    parser.add_argument("--proj-dim", type=int, default=2048, help="TRAK projection dimension")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument(
        "--processes",
        choices=("fresh", "one"),
        default=None,
        help="fresh: each measurement in a new process (exact peak RSS; the CPU default); one: "
        "all in this process after a warm-up at the smallest size (the CUDA default: start-up "
        "costs seconds per process there)",
    )
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"  # the measurement processes inherit it

    import torch

    from modelkin.config import memory_budget_bytes
    from modelkin.device import resolve_device

    device = str(resolve_device(args.device))
    budget = memory_budget_bytes(args.budget_mb)
    options = {
        "device": device,
        "precision": args.precision,
        "budget": budget,
        "proj_dim": args.proj_dim,
        "threads": args.threads,
        "in_process": (args.processes or ("one" if device.startswith("cuda") else "fresh"))
        == "one",
    }
    if options["in_process"]:
        logging.disable(logging.WARNING)
        if args.threads:
            torch.set_num_threads(args.threads)
    machine = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"CPU, {args.threads or torch.get_num_threads()} threads ({os.cpu_count()} cores)"
    )
    plan = [row for row in (QUICK if args.quick else FULL) if row[0] in args.stages.split(",")]
    print(
        f"{'quick' if args.quick else 'full'} run on {machine}; {ARCH}; precision "
        f"{args.precision}; memory budget {budget / 1e6:,.0f} MB; "
        f"{'one process' if options['in_process'] else 'a fresh process per measurement'}"
    )
    header = (
        f"{'stage':<11} {'input':<9} {'n':>9} {'what grows':<18} {'seconds':>9} "
        f"{'peak RSS MB':>11} {'budget MB':>9} {'held whole MB':>13}  mode"
    )
    print(header)
    summary = []
    for stage, spec, sizes, unit in plan:
        sizes = sizes[-1:] if args.largest else sizes
        ns, seconds = [], []
        if options["in_process"]:  # CUDA context, cuDNN autotuning and lazy imports
            measure(stage, sizes[0], spec, options)
        for size in sizes:
            result = measure(stage, size, spec, options)
            if "error" in result:
                print(f"{stage:<11} {spec['shape'][1]:>3}x{spec['shape'][2]:<5} {str(size):>9} "
                      f"{unit:<18} failed: {result['error']}")  # fmt: skip
                continue
            ns.append(result["n"])
            seconds.append(result["seconds"])
            within = "" if result["peak_mb"] * 1e6 <= budget else " OVER BUDGET"
            gpu = f" (GPU {result['gpu_mb']:.0f} MB)" if "gpu_mb" in result else ""
            print(
                f"{stage:<11} {spec['shape'][1]:>3}x{spec['shape'][2]:<5} {result['n']:>9,} "
                f"{unit:<18} {result['seconds']:>9.2f} {result['peak_mb']:>11,.0f} "
                f"{budget / 1e6:>9,.0f} {result['held'] / 1e6:>13,.0f}  "
                f"{result.get('mode', '')}{within}{gpu}",
                flush=True,
            )
        if len(ns) >= 2:
            summary.append((stage, spec, ns, seconds))
    print("\ngrowth exponents (time ~ n^k, least squares on log-log scale)")
    for stage, spec, ns, seconds in summary:
        print(
            f"  {stage:<11} {spec['shape'][1]}x{spec['shape'][2]:<4} k = {growth(ns, seconds):.2f}"
            f"  (n {ns[0]:,} .. {ns[-1]:,}, time {seconds[0]:.2f} .. {seconds[-1]:.2f} s)"
        )


if __name__ == "__main__":
    main()
