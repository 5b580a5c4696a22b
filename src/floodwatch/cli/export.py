"""`floodwatch export` and `floodwatch prune`: thin wrappers over floodwatch.export."""
from __future__ import annotations

from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..io import dumps_json
from .common import CHECKPOINT_HELP, OUT_ALIAS, QUIET, aliased, esc, make_console, resolve_checkpoint, value


class ExportFormat(str, Enum):
    onnx = "onnx"
    tensorrt = "tensorrt"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class TritonKind(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Exporter(str, Enum):
    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


class Norm(str, Enum):
    l1 = "l1"
    l2 = "l2"


def _given(ctx: typer.Context, *names: str) -> list[str]:
    """The flags (as spelled in --help) among these parameters that the command line set."""
    return [next(o for o in p.opts if o.startswith("--")) for p in ctx.command.params
            if p.name in names and getattr(ctx.get_parameter_source(p.name), "name", "DEFAULT") != "DEFAULT"]


def export(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "-m", "--model", help=CHECKPOINT_HELP + "; default: the default "
                                        "model's."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file: .onnx, or with --format tensorrt a "
                                "TensorRT engine .plan (needs TensorRT and an NVIDIA GPU)."),
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="Model file format to write."),
    precision: Precision = typer.Option(Precision.fp32, "--precision", help="Numeric precision (int8 needs "
                                        "--calibration-data)."),
    calibration_data: Optional[Path] = typer.Option(None, "--calibration-data",
                                                    help="Dataset folder or .npy/.npz of dB chips, shape (N, "
                                                         "bands, H, W) (int8)."),
    validation_data: Optional[Path] = typer.Option(None, "--validation-data",
                                                   help="Labelled chips for the int8 IoU check (default: "
                                                        "calibration)."),
    triton_repo: Optional[Path] = typer.Option(None, "--triton-repo", help="Add the result to this Triton repository."),
    triton_model: str = typer.Option("flood", "--triton-model",
                                     help="Model name in the Triton repository (serve, map and client's default)."),
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1,
                                       help="Largest batch: Triton's max_batch_size, a TensorRT engine's, the "
                                            "DeepStream sidecar's."),
    instances: int = typer.Option(1, "--instances", min=1, help="Triton instance count."),
    triton_kind: TritonKind = typer.Option(TritonKind.auto, "--triton-kind",
                                           help="cpu (local Triton, Python backend), gpu (NVIDIA's container), "
                                                "or auto."),
    version_policy: str = typer.Option("latest", "--version-policy", help="Triton version policy: latest, all, "
                                       "or version numbers 'N,M'."),
    # below 8 px: smaller than any tile `map --tile` cuts
    height: Optional[int] = typer.Option(None, "--height", min=8, help="Fix the input height (default dynamic)."),
    width: Optional[int] = typer.Option(None, "--width", min=8, help="Fix the input width (default dynamic)."),
    exporter: Exporter = typer.Option(Exporter.auto, "--exporter", help="torch's ONNX exporter to use."),
    json_out: bool = typer.Option(False, "--json", help="Print the full export report as JSON (and nothing else)."),
    quiet: bool = QUIET,
) -> None:
    """Export a checkpoint to ONNX (checked against torch) or a TensorRT engine."""
    from ..evaluation.evaluate import to_json_safe
    from ..export.pipeline import export_model, parse_version_policy

    from ..errors import ExportError

    if triton_repo is not None and not triton_model:
        raise ExportError("--triton-model: empty; give the model's name in the repository")
    if triton_repo is None:  # a repository's settings given without one would be silently dropped
        given = _given(ctx, "triton_model", "instances", "triton_kind", "version_policy")
        if given:
            raise ExportError(f"{given[0]}: sets the Triton repository entry; give --triton-repo DIR too")
    console = make_console()
    model = resolve_checkpoint(model)
    policy = parse_version_policy(version_policy)
    with console.status(esc(f"exporting {model} -> {output}")) if not (quiet or json_out) else nullcontext():
        report = export_model(model, output, format=value(format), precision=value(precision),
                              calibration_data=calibration_data, validation_data=validation_data,
                              triton_repo=triton_repo, model_name=triton_model if triton_repo is not None else None,
                              max_batch_size=max_batch_size,
                              instances=instances, version_policy=policy, height=height, width=width,
                              exporter=value(exporter), triton_kind=value(triton_kind))
    if json_out:
        typer.echo(dumps_json(to_json_safe(report), default=str, indent=2))
        return
    for line in export_summary(report, output):
        console.print(line, highlight=False)


def export_summary(report: dict, output: Path) -> list[str]:
    """A few lines: the file written, its parity with torch, the int8 check and the Triton entry."""
    parity = report["onnx_export"]["parity"]
    # parity is measured on the ONNX export; an int8 file's or a TensorRT plan's is their fp32 ONNX's
    own = report["onnx_export"].get("onnx") == str(output) and "int8" not in report
    of = "parity" if own else "its fp32 ONNX export's parity"
    lines = [f"[green]wrote[/] {esc(output)}  {of} with torch: max |Δ logits| {parity['max_abs_diff']:.2e}, "
             f"mask agreement {parity['mask_agreement']:.4%}"]
    if "int8" in report:
        v = report["int8"]["validation"]
        line = f"int8 vs fp32: mask agreement {v['mask_agreement']:.4%}"
        if "iou_change_pt" in v:
            line += f", water IoU {v['iou_fp32']:.4f} -> {v['iou_candidate']:.4f} ({v['iou_change_pt']:+.2f} pt)"
        lines.append(line)
    if "triton" in report:
        lines.append(f"[green]triton[/] {esc(report['triton'])}")
    lines.append("full report: add --json")
    return lines


def prune(
    model: str = typer.Option(..., "-m", "--model", help=CHECKPOINT_HELP + "."),
    output: Path = typer.Option(..., "-o", "--output", help="Pruned checkpoint to write (.pt or .pth)."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="Fraction of filters to remove per layer."),
    norm_threshold: Optional[float] = typer.Option(None, "--norm-threshold",
                                                   help="Remove filters below this fraction of the layer's largest "
                                                        "norm (not a water probability, as --threshold is elsewhere)."),
    min_filters: int = typer.Option(8, "--min-filters", min=1, help="Keep at least this many filters per layer."),
    norm: Norm = typer.Option(Norm.l1, "--norm", help="Filter importance: L1 or L2 norm of its weights."),
    multiple_of: int = typer.Option(8, "--multiple-of", min=1,
                                    help="Round kept filters up to a multiple of this (fast CPU/GPU kernels)."),
) -> None:
    """Structured pruning: remove conv filters for a smaller, faster dense model (fine-tune it after)."""
    from ..export.prune import prune_checkpoint

    report = prune_checkpoint(resolve_checkpoint(model), output, ratio=ratio, norm_threshold=norm_threshold,
                              min_filters=min_filters, norm=value(norm), multiple_of=multiple_of)
    make_console().print(f"[green]wrote[/] {esc(output)}: params x{report['params_ratio']:.3f}, "
                         f"MACs (256 px) x{report['macs_ratio']:.3f}; fine-tune it: "
                         f"`floodwatch train -e SPEC -r RESULTS_DIR -m {esc(output)}`", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export", cls=aliased({"--out": "--output", "--model-name": "--triton-model"}))(export)
    app.command("prune", cls=OUT_ALIAS)(prune)
