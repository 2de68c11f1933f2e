"""Stitching results on disk: a JSON file (everything readable) beside a safetensors file (the
tensors).

``RUN.json`` holds the configuration (every option, the donors' checkpoint
paths and sha256), the accuracies, similarity measures and loss curves;
``RUN.safetensors`` holds T's parameters before training, after training and
the least-squares solution (``t.{variant}.*``, loadable), the effective
weight matrices (``weight.{variant}``, ``bias.{variant}``), their singular
values, the per-step loss and, when the donors trained their batch norm, the
donors' buffers after training. The tensors are written first, the JSON last
(with the tensors' sha256), so a JSON file always describes a complete run.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, MissingFileError
from ..io import file_sha256, read_json, save_safetensors, write_json

if TYPE_CHECKING:  # reading results (the summary, the plots) needs no torch
    import torch

RESULT_KIND = "modelkin-stitching-result"
FORMAT_VERSION = 1


def tensors_path(result: str | Path) -> Path:
    return Path(result).with_suffix(".safetensors")


def clean_json(value: Any) -> Any:
    """NaN and infinity become null (JSON has neither); tuples become lists."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def save_result(
    path: str | Path, payload: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    path = Path(path)
    if path.suffix != ".json":
        raise InputError(
            f"a stitching result is a .json file (its tensors go beside it), not {path}"
        )
    tensor_file = tensors_path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_safetensors(state, tensor_file, {"kind": RESULT_KIND, "result": path.name})
    payload = {
        **payload,
        "kind": RESULT_KIND,
        "format_version": FORMAT_VERSION,
        "tensors": {
            "file": tensor_file.name,
            "sha256": file_sha256(tensor_file),
            "names": sorted(state),
        },
    }
    write_json(path, clean_json(payload))
    return path


def load_result(
    path: str | Path, *, with_tensors: bool = True
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(payload, tensors) of a result written by :func:`save_result`; accepts the .json or
    .safetensors path. Without tensors (``with_tensors=False``: the summary, the plots) no torch."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.exists():
        raise MissingFileError(
            f"stitching result {path} does not exist; make it with `modelkin stitch`, or with "
            f"`snakemake --cores 2 {path}` in the workflow directory for a run the config plans"
        )
    payload = read_json(path)
    if payload.get("kind") != RESULT_KIND:
        raise InputError(f"{path} is not a stitching result (kind {payload.get('kind')!r})")
    if not with_tensors:
        return payload, {}
    tensor_file = path.with_name(payload["tensors"]["file"])
    if not tensor_file.exists():
        raise MissingFileError(
            f"{path} refers to {tensor_file}, which is missing; re-run the stitching "
            f"(`snakemake --cores 2 {tensor_file}` in the workflow directory)"
        )
    from safetensors.torch import load_file

    return payload, load_file(str(tensor_file))


def stitch_state(tensors: dict[str, torch.Tensor], variant: str) -> dict[str, torch.Tensor]:
    prefix = f"t.{variant}."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        variants = sorted({k.split(".")[1] for k in tensors if k.startswith("t.")})
        raise InputError(
            f"this result has no {variant!r} stitching layer; it has: {', '.join(variants)}"
        )
    return state


def load_stitched(
    result: str | Path,
    variant: str = "after",
    *,
    device: str | torch.device = "cpu",
    checkpoints: tuple[str | Path, str | Path] | None = None,
    verify: bool = True,
):
    """The stitched network of a result as an nn.Module (eval mode): donors from their checkpoints,
    T of ``variant``.

    ``checkpoints`` replaces the recorded donor paths (e.g. after moving files);
    with ``verify`` their sha256 must match the recorded ones.
    """
    from ..checkpoint import load_checkpoint
    from ..device import resolve_device
    from .model import StitchedModel, StitchingLayer, stitch_geometry

    device = resolve_device(device)
    payload, tensors = load_result(result)
    paths = checkpoints or (payload["model1"]["checkpoint"], payload["model2"]["checkpoint"])
    donors = []
    for which, path in zip(("model1", "model2"), paths, strict=False):
        ckpt = load_checkpoint(path, device)
        if verify and ckpt.sha256 != payload[which]["sha256"]:
            raise InputError(
                f"{path} (sha256 {(ckpt.sha256 or '')[:12]}...) is not the {which} this "
                f"result was trained with (sha256 {payload[which]['sha256'][:12]}...); "
                "pass the right checkpoint or verify=False"
            )
        donors.append(ckpt.model)
    model1, model2 = donors
    options = payload["options"]
    g = payload["geometry"]
    geometry = stitch_geometry(
        g["in_shape"],
        g["out_shape"],
        flatten=g["kind"] == "flatten",
        resize=g["resize"] or "bilinear",
    )
    stitch = StitchingLayer(geometry, low_rank=options.get("low_rank"))
    stitch.load_state_dict(stitch_state(tensors, variant))
    if variant == "after" and payload["donors"]["mode"] == "train":
        for prefix, model in (("donor1.", model1), ("donor2.", model2)):
            buffers = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            state = model.state_dict()
            state.update(buffers)
            model.load_state_dict(state)
    stitched = StitchedModel(
        model1, payload["model1"]["layer"], model2, payload["model2"]["layer"], stitch.to(device)
    )
    return stitched.to(device).eval()


def t_tensors(variant: str, stitch) -> dict[str, torch.Tensor]:
    """T's state dict, effective weight and bias, and singular values under ``variant``'s names."""
    import torch

    out = {f"t.{variant}.{k}": v.detach().cpu().clone() for k, v in stitch.state_dict().items()}
    weight = stitch.weight.detach().double().cpu()
    out[f"weight.{variant}"] = weight.float()
    out[f"bias.{variant}"] = stitch.bias.detach().float().cpu().clone()
    out[f"singular_values.{variant}"] = torch.linalg.svdvals(weight).float()
    return out


def donor_buffers(prefix: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}{k}": v.detach().clone()
        for k, v in model.named_buffers()
        if k in model.state_dict()
    }


def snapshot(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen eval-mode copy (the donors as trained, for targets and reference accuracies)."""
    clone = copy.deepcopy(model)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def read_results(paths) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        payload, _ = load_result(p, with_tensors=False)
        payload["_path"] = str(p)
        out.append(payload)
    return out
