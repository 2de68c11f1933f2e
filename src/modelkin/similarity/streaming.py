"""Layer similarity on probe sets whose activations do not fit in memory: minibatch CKA, streamed.

:func:`~modelkin.similarity.compare.compare_layers` holds every chosen layer's activations of
every probe input as float64 matrices: n × Σ features × 8 bytes per model (10,000 CIFAR-10 images
through ResNet-18's ReLU outputs: ~100 GB). Here each minibatch of inputs goes through both
models once, each layer's b × b linear Gram matrix is U-centred, every layer pair's unbiased
HSICs are added up (:class:`~modelkin.measures.MinibatchCKA`), and the batch is dropped: memory is
one batch's activations and one b × b matrix per layer, whatever n is. The value is
:func:`~modelkin.measures.minibatch_cka` of the flattened activations, computed on the same
consecutive batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..measures import MinibatchCKA, get_measure
from ..measures.minibatch import DEFAULT_BATCH_SIZE, BatchGrams, batch_bounds
from ..models.layers import capture, check_layers
from ..progress import progress

STREAMING_MEASURES = ("minibatch_cka",)
BYTES_PER_ENTRY = 16  # float32 activations gathered + their float64 matrix (compare_layers)


def in_memory_bytes(
    model_a: nn.Module,
    model_b: nn.Module,
    layers_a: Sequence[str],
    layers_b: Sequence[str],
    n: int,
    input_shape: Sequence[int],
) -> int:
    """What :func:`~modelkin.similarity.compare.compare_layers` holds for ``n`` inputs: every
    chosen layer's activations of both models (float32 gathered, then float64 matrices)."""
    features = 0
    for model, layers in ((model_a, layers_a), (model_b, layers_b)):
        features += sum(layer_sizes(model, layers, input_shape).values())
    return BYTES_PER_ENTRY * n * features


def layer_sizes(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int]) -> dict:
    """Features per input of each layer (one forward pass of one zero image, on the CPU)."""
    check_layers(model, layers)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.to("cpu").eval()
    try:
        with torch.no_grad():
            acts = capture(model, torch.zeros(1, *input_shape), list(layers))
    finally:
        model.to(home).train(was_training)
    return {name: int(acts[name][0].numel()) for name in layers}


def streamed_minibatch_cka(
    model_a: nn.Module,
    model_b: nn.Module,
    probe_x: torch.Tensor,
    layers_a: Sequence[str],
    layers_b: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
) -> dict[tuple[str, str], float | str]:
    """Minibatch CKA of every (layer of A, layer of B) on flattened activations, one batch of
    ``batch_size`` inputs at a time; a pair's value is a float, or the reason it is undefined."""
    from ..device import resolve_device

    check_layers(model_a, layers_a)
    check_layers(model_b, layers_b)
    target = resolve_device(device)
    models = (model_a, model_b)
    homes = [next((p.device for p in m.parameters()), torch.device("cpu")) for m in models]
    modes = [m.training for m in (model_a, model_b)]
    sums = {(a, b): MinibatchCKA() for a in layers_a for b in layers_b}
    makers = [{name: BatchGrams() for name in layers} for layers in (layers_a, layers_b)]
    bounds = batch_bounds(len(probe_x), batch_size)
    try:
        for m in (model_a, model_b):
            m.to(target).eval()
        with torch.no_grad():
            for start, stop in progress(bounds, desc="minibatch CKA", unit="batch"):
                x = torch.as_tensor(probe_x[start:stop]).to(target)
                grams = []
                for model, layers, maker in zip(models, (layers_a, layers_b), makers, strict=True):
                    acts = capture(model, x, list(layers))
                    grams.append({name: maker[name](acts[name].cpu()) for name in layers})
                for (a, b), total in sums.items():
                    total.update(grams[0][a], grams[1][b])
    finally:
        for m, home, mode in zip((model_a, model_b), homes, modes, strict=True):
            m.to(home).train(mode)
    out: dict[tuple[str, str], float | str] = {}
    for pair, total in sums.items():
        try:
            out[pair] = total.value
        except InputError as err:
            out[pair] = str(err)
    return out


def streamed_records(
    model_a: nn.Module,
    model_b: nn.Module,
    probe_x: torch.Tensor,
    names_a: Sequence[str],
    names_b: Sequence[str],
    measures: dict[str, dict[str, Any]],
    *,
    conv_mode: str,
    device: str | torch.device,
    reason: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict[str, Any]]:
    """The rows of :func:`~modelkin.similarity.compare.compare_layers` when the activations do
    not fit in memory: ``minibatch_cka`` streamed in batches of ``batch_size`` inputs (whether
    asked for or not), every other measure ``skipped`` with ``reason``."""
    if conv_mode != "flatten":
        raise InputError(
            f"streaming similarity ({reason}) compares flattened activations; use "
            "conv_mode: flatten, or spatial mode with max_spatial_samples"
        )
    batch = batch_size
    values = streamed_minibatch_cka(
        model_a, model_b, probe_x, names_a, names_b, batch_size=batch, device=device
    )
    sizes_a = layer_sizes(model_a, names_a, probe_x.shape[1:])
    sizes_b = layer_sizes(model_b, names_b, probe_x.shape[1:])
    n = len(probe_x)
    names = list(dict.fromkeys(["minibatch_cka", *measures]))
    records = []
    for a in names_a:
        for b in names_b:
            for measure in names:
                info = get_measure(measure)
                value: float = float("nan")
                status, why = "skipped", reason
                if measure in STREAMING_MEASURES:
                    result = values[(a, b)]
                    if isinstance(result, str):
                        status, why = "undefined", result
                    else:
                        value, status, why = result, "ok", ""
                records.append(
                    {
                        "layer_a": a,
                        "layer_b": b,
                        "measure": measure,
                        "value": value,
                        "higher_is_similar": info.higher_is_similar,
                        "status": status,
                        "reason": why,
                        "conv_mode": conv_mode,
                        "samples": n if status != "skipped" else 0,
                        "sampling": f"{n} inputs in minibatches of {batch} (streamed)",
                        "features_a": sizes_a[a],
                        "features_b": sizes_b[b],
                    }
                )
    return records
