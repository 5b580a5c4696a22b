"""`floodwatch export` and `floodwatch prune`: thin wrappers over floodwatch.export."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..io import dumps_json

console = Console()


def export(
    model: Path = typer.Option(..., "-m", "--model", help="floodwatch checkpoint (.pt)"),
    out: Path = typer.Option(..., "-o", "--out", help="output file: .onnx, or .plan for TensorRT"),
    format: str = typer.Option("onnx", "--format", help="onnx | tensorrt"),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | int8"),
    calibration_data: Optional[Path] = typer.Option(None, "--calibration-data",
                                                    help="dataset folder or .npy/.npz of dB chips (int8)"),
    validation_data: Optional[Path] = typer.Option(None, "--validation-data",
                                                   help="labelled chips for the int8 IoU check (default: calibration)"),
    triton_repo: Optional[Path] = typer.Option(None, "--triton-repo", help="add the result to this Triton repository"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="model name in the Triton repository"),
    max_batch_size: int = typer.Option(16, "--max-batch-size"),
    instances: int = typer.Option(1, "--instances", help="Triton instance count"),
    triton_kind: str = typer.Option("auto", "--triton-kind",
                                    help="cpu (local Triton, Python backend), gpu (NVIDIA's container), or auto"),
    version_policy: str = typer.Option("latest", "--version-policy", help="latest | all | N,M"),
    height: Optional[int] = typer.Option(None, "--height", help="fix the input height (default dynamic)"),
    width: Optional[int] = typer.Option(None, "--width", help="fix the input width (default dynamic)"),
    exporter: str = typer.Option("auto", "--exporter", help="auto | dynamo | torchscript"),
) -> None:
    """Export a checkpoint to ONNX (checked against torch) or a TensorRT engine."""
    from ..export.pipeline import export_model, parse_version_policy

    policy = parse_version_policy(version_policy)
    with console.status(f"exporting {model} -> {out}"):
        report = export_model(model, out, format=format, precision=precision, calibration_data=calibration_data,
                              validation_data=validation_data, triton_repo=triton_repo, model_name=model_name,
                              max_batch_size=max_batch_size, instances=instances, version_policy=policy,
                              height=height, width=width, exporter=exporter, triton_kind=triton_kind)
    parity = report["onnx_export"]["parity"]
    console.print(f"[green]wrote[/] {out}  parity: max |Δ logits| {parity['max_abs_diff']:.2e}, "
                  f"mask agreement {parity['mask_agreement']:.4%}")
    if "int8" in report:
        v = report["int8"]["validation"]
        line = f"int8 vs fp32: mask agreement {v['mask_agreement']:.4%}"
        if "iou_change_pt" in v:
            line += f", water IoU {v['iou_fp32']:.4f} -> {v['iou_candidate']:.4f} ({v['iou_change_pt']:+.2f} pt)"
        console.print(line)
    if "triton" in report:
        console.print(f"[green]triton[/] {report['triton']}")
    console.print_json(dumps_json(report, default=str))


def prune(
    model: Path = typer.Option(..., "-m", "--model", help="floodwatch checkpoint (.pt)"),
    out: Path = typer.Option(..., "-o", "--out", help="pruned checkpoint to write"),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="fraction of filters to remove per layer"),
    threshold: Optional[float] = typer.Option(None, "--threshold",
                                              help="remove filters below this fraction of the layer's largest norm"),
    min_filters: int = typer.Option(8, "--min-filters", help="keep at least this many filters per layer"),
    norm: str = typer.Option("l1", "--norm", help="l1 | l2"),
    multiple_of: int = typer.Option(8, "--multiple-of",
                                    help="round kept filters up to a multiple of this (fast CPU/GPU kernels)"),
) -> None:
    """Structured pruning: remove conv filters for a smaller, faster dense model (fine-tune it after)."""
    from ..export.prune import prune_checkpoint

    report = prune_checkpoint(model, out, ratio=ratio, threshold=threshold, min_filters=min_filters, norm=norm,
                              multiple_of=multiple_of)
    console.print(f"[green]wrote[/] {out}: params x{report['params_ratio']:.3f}, "
                  f"MACs (256 px) x{report['macs_ratio']:.3f}; fine-tune with `floodwatch train -m {out}`")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("prune")(prune)
