"""Structured (filter) pruning that really removes channels: a smaller dense U-Net, not a masked one.

Only convs whose output feeds exactly one other conv are pruned: the inner convs of ResNet blocks and
both convs of each decoder block. Block outputs are left whole because residual adds and U-Net skips
join them, so removing a channel there would have to be agreed by every member of the group.

A filter's importance is the L1/L2 norm of its BatchNorm-folded weights (|gamma|/sqrt(var+eps) times the
raw filter): with BatchNorm after the conv the raw norm alone says little, since BN rescales each channel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ExportError
from ..io import check_not_input
from ..models.build import model_from_config
from ..models.checkpoint import load_model, read_checkpoint, save_checkpoint


def _groups(model: nn.Module) -> list[dict[str, Any]]:
    """For each prunable conv: its module names, its BN (or None) and the convs that consume its output."""
    groups = []
    for name in model.prunable_convs():
        if name.startswith("encoder."):
            block, conv = name.rsplit(".", 1)
            nxt = {"conv1": "conv2", "conv2": "conv3"}[conv]
            groups.append({"name": name, "conv": name, "bn": f"{block}.bn{conv[-1]}",
                           "consumers": [(f"{block}.{nxt}", 0)]})
        else:
            _, i, conv = name.split(".")
            i = int(i)
            if conv == "conv1":
                consumer = f"decoder.{i}.conv2.0"
            elif i + 1 < len(model.decoder):
                consumer = f"decoder.{i + 1}.conv1.0"  # its input is cat([upsampled x, skip]): x comes first
            else:
                consumer = "head"
            groups.append({"name": name, "conv": f"{name}.0", "bn": f"{name}.1", "consumers": [(consumer, 0)]})
    return groups


def filter_importance(model: nn.Module, conv_name: str, bn_name: str, norm: str = "l1") -> torch.Tensor:
    mods = dict(model.named_modules())
    w = mods[conv_name].weight.detach().flatten(1)
    bn = mods.get(bn_name)
    if isinstance(bn, nn.BatchNorm2d):
        w = w * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps)).unsqueeze(1)
    return w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1).sqrt()


def _n_keep(scores: torch.Tensor, ratio: float | None, norm_threshold: float | None, min_filters: int,
            multiple_of: int = 1) -> int:
    n = len(scores)
    floor = min(n, max(1, min_filters))
    if ratio is not None:
        keep = n - int(round(n * ratio))
    else:  # norm_threshold relative to the layer's strongest filter, so it means the same in every layer
        keep = int((scores >= norm_threshold * scores.max()).sum())
    # Round up: CPU int8/fp32 kernels pack channels in blocks of 8/16, so an odd width costs a whole block
    # anyway and runs the slow remainder path (measured: pruned INT8 was slower than pruned fp32 without it).
    keep = -(-keep // multiple_of) * multiple_of
    return max(floor, min(n, keep))


def prune_model(model: nn.Module, model_config: dict[str, Any], *, ratio: float | None = None,
                norm_threshold: float | None = None, min_filters: int = 8, norm: str = "l1", multiple_of: int = 8
                ) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(smaller model with copied weights, its model_config, per-layer report). The input model is unchanged."""
    if (ratio is None) == (norm_threshold is None):
        raise ExportError("ratio, norm_threshold: give exactly one of the two")
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise ExportError(f"ratio: {ratio} is not in [0, 1) (fraction of filters to remove)")
    if norm_threshold is not None and not 0.0 <= norm_threshold <= 1.0:
        raise ExportError(f"norm_threshold: {norm_threshold} is not in [0, 1] (fraction of the layer's largest norm)")
    if norm not in ("l1", "l2"):
        raise ExportError(f"norm: '{norm}' is not l1 or l2")
    if min_filters < 1:
        raise ExportError(f"min_filters: {min_filters} is not a positive filter count")
    if multiple_of < 1:
        raise ExportError(f"multiple_of: {multiple_of} is not a positive channel count")
    if not hasattr(model, "prunable_convs"):
        raise ExportError(f"prune: {type(model).__name__} is not a floodwatch U-Net")
    model = model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    widths, layers = dict(model_config.get("widths") or {}), {}
    for g in _groups(model):
        scores = filter_importance(model, g["conv"], g["bn"], norm)
        n = _n_keep(scores, ratio, norm_threshold, min_filters, multiple_of)
        keep = torch.sort(torch.topk(scores, n).indices).values
        for key in (f"{g['conv']}.weight", f"{g['conv']}.bias", f"{g['bn']}.weight", f"{g['bn']}.bias",
                    f"{g['bn']}.running_mean", f"{g['bn']}.running_var"):
            if key in state:
                state[key] = state[key][keep]
        for consumer, offset in g["consumers"]:
            w = state[f"{consumer}.weight"]
            cols = torch.cat([torch.arange(offset), keep + offset, torch.arange(offset + len(scores), w.shape[1])])
            state[f"{consumer}.weight"] = w[:, cols]
        widths[g["name"]] = int(len(keep))
        layers[g["name"]] = [int(len(scores)), int(len(keep))]
    config = {**model_config, "widths": widths}
    config.pop("pretrained", None)  # the pruned weights are the starting point now, not ImageNet
    small = model_from_config(config)
    small.load_state_dict(state)
    return small.eval(), config, layers


def count_macs(model: nn.Module, in_channels: int, size: int = 256) -> int:
    """Multiply-accumulates of all convs for one (size x size) chip."""
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, size, size))
    finally:
        for h in handles:
            h.remove()
    return int(total)


def prune_checkpoint(checkpoint: str | Path, out: str | Path, *, ratio: float | None = None,
                     norm_threshold: float | None = None, min_filters: int = 8, norm: str = "l1",
                     multiple_of: int = 8) -> dict[str, Any]:
    """Prune a floodwatch checkpoint and write one whose model_config (with `widths`) rebuilds the smaller
    model, so `floodwatch train -m OUT` fine-tunes it and export/inference load it like any other."""
    if Path(out).suffix.lower() not in (".pt", ".pth"):  # commands pick a model's loader by its suffix
        raise ExportError(f"{out}: a pruned checkpoint's name must end in .pt or .pth (ONNX: prune, then "
                          "`floodwatch export` the result)")
    check_not_input(out, checkpoint, error=ExportError)
    model, meta = load_model(checkpoint)
    state = read_checkpoint(checkpoint)  # for the spec/metrics fields load_model does not interpret
    small, config, layers = prune_model(model, dict(meta["model_config"]), ratio=ratio, norm_threshold=norm_threshold,
                                        min_filters=min_filters, norm=norm, multiple_of=multiple_of)
    params = (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in small.parameters()))
    cin = int(meta["model_config"].get("in_channels", 2))
    macs = (count_macs(model, cin), count_macs(small, cin))
    # the source's validation metrics are not the pruned model's (before fine-tuning it may find no water at
    # all): kept as the source's, so nothing that reads `metrics` (ONNX metadata, a round-0 teacher) takes them
    pruning = {"source": str(checkpoint), "ratio": ratio, "norm_threshold": norm_threshold, "min_filters": min_filters,
               "multiple_of": multiple_of, "norm": norm, "layers": layers, "source_metrics": state.get("metrics") or {}}
    save_checkpoint(out, small, model_config=config, preprocessing=meta["preprocessing_obj"],
                    class_map=state.get("class_map"), spec=state.get("spec"), epoch=int(state.get("epoch", 0)),
                    metrics={}, pruning=pruning)
    return {"checkpoint": str(out), "params": list(params), "params_ratio": params[1] / params[0],
            "macs_256": list(macs), "macs_ratio": macs[1] / macs[0], "layers": layers}
