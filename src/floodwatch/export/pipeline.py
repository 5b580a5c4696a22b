"""One call behind `floodwatch export`: checkpoint -> ONNX (fp32/fp16/int8) or TensorRT, optionally into a
Triton model repository."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..errors import ExportError, FloodwatchError
from ..io import check_output_dir, check_output_file, output_folder
from .onnx import export_onnx, read_metadata


def export_model(checkpoint: str | Path, out: str | Path, *, format: str = "onnx", precision: str = "fp32",
                 calibration_data: Any = None, validation_data: Any = None, triton_repo: str | Path | None = None,
                 model_name: str | None = None, max_batch_size: int = 16, instances: int = 1,
                 version_policy: str | Sequence[int] = "latest", height: int | None = None,
                 width: int | None = None, exporter: str = "auto", opset: int = 17,
                 triton_kind: str = "auto") -> dict[str, Any]:
    """Export and (with triton_repo) add the result as the next version of `model_name`; returns a report.

    triton_kind: 'cpu' (Python backend running ONNX Runtime, what the nvidia-pytriton server runs), 'gpu'
    (onnxruntime_onnx / tensorrt_plan on KIND_GPU, for NVIDIA's Triton container), or 'auto' (gpu for
    TensorRT and fp16, else cpu)."""
    out = Path(out)
    if triton_kind not in ("auto", "cpu", "gpu"):
        raise ExportError(f"triton_kind: '{triton_kind}' is not auto, cpu or gpu")
    if triton_kind == "auto":
        triton_kind = "gpu" if format == "tensorrt" or precision == "fp16" else "cpu"
    if format not in ("onnx", "tensorrt"):
        raise ExportError(f"format: '{format}' is not onnx or tensorrt")
    if precision not in ("fp32", "fp16", "int8"):
        raise ExportError(f"precision: '{precision}' is not one of fp32, fp16, int8")
    if precision == "int8" and calibration_data is None:
        raise ExportError("precision: int8 needs `calibration_data` (chips to calibrate activation ranges)")
    for name, source in (("calibration_data", calibration_data), ("validation_data", validation_data)):
        if source is not None and precision != "int8":
            raise ExportError(f"{name}: only an int8 export uses it (`precision` is {precision})")
        if isinstance(source, (str, Path)) and not Path(source).exists():
            raise ExportError(f"{source} (`{name}`): not found")
    if triton_repo is not None and not model_name:
        raise ExportError("triton_repo: needs model_name, the model's name in the repository")
    if triton_repo is None and model_name is not None:
        raise ExportError("model_name: names the model in a Triton repository; give `triton_repo` too")
    if triton_repo is not None:
        from ..serving.repository import check_model_name

        check_model_name(model_name)  # before the export, not after it
    if triton_repo is not None and format == "tensorrt" and triton_kind == "cpu":
        raise ExportError("triton_kind: a TensorRT plan is served by NVIDIA's Triton (gpu), not cpu")
    if max_batch_size < 1 or instances < 1:
        raise ExportError("max_batch_size, instances: must be >= 1")
    if format == "tensorrt" and out.suffix.lower() not in (".plan", ".engine"):
        # a plan named .onnx would be taken for an ONNX file by every command that reads models by suffix
        raise ExportError(f"{out}: a TensorRT engine's name must end in .plan or .engine")
    if format == "tensorrt":
        from .tensorrt import _tensorrt

        _tensorrt()  # fail in a second, before exporting, when there is no GPU/TensorRT
    if format == "onnx" and out.suffix.lower() in (".plan", ".engine"):
        raise ExportError(f"{out}: a TensorRT engine needs `format` tensorrt (and TensorRT with an NVIDIA GPU); "
                          "ONNX output names end in .onnx")
    if format == "onnx" and out.suffix.lower() != ".onnx":
        raise ExportError(f"{out}: ONNX output name must end in .onnx")
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give the output file's name")
    check_output_file(out)
    if triton_repo is not None:
        from ..serving.repository import check_new_version

        try:
            check_output_dir(triton_repo)
        except FloodwatchError as exc:
            raise ExportError(f"triton_repo: {exc}") from None
        # as add_to_triton would, before the export: a refused entry would leave `out` written by a failed command
        check_new_version(triton_repo, model_name, kind=triton_kind,
                          model_file="model.plan" if format == "tensorrt" else "model.onnx")

    report: dict[str, Any] = {"checkpoint": str(checkpoint), "format": format, "precision": precision}
    # a failed export leaves no output folder it created behind
    with output_folder(out.parent), tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmpdir:
        direct = format == "onnx" and precision != "int8"
        onnx_path = out if direct else Path(tmpdir) / "model.onnx"
        onnx_precision = precision if direct else "fp32"
        report["onnx_export"] = export_onnx(checkpoint, onnx_path, opset=opset, precision=onnx_precision,
                                            height=height, width=width, exporter=exporter, nvinfer_config=direct,
                                            max_batch_size=max_batch_size)
        # an intermediate fp32 file is deleted with tmpdir: its report names no file, else `out` would be listed
        # with the fp32 file's precision and size (the int8 file's and the plan's are in their own entries)
        report["onnx_export"]["onnx"] = str(out) if direct else None
        meta = read_metadata(onnx_path)  # a TensorRT plan cannot carry it; Triton's config gets it from here
        if precision == "int8":
            from .quantize import quantize_int8

            q_path = out if format == "onnx" else Path(tmpdir) / "model.int8.onnx"
            report["int8"] = quantize_int8(onnx_path, q_path, calibration_data, validation=validation_data,
                                           labels=("`calibration_data`", "`validation_data`"))
            onnx_path = q_path
            if format == "onnx":
                from .onnx import write_nvinfer_config
                from ..data.preprocess import Preprocessing

                write_nvinfer_config(out, Preprocessing.from_dict(meta["preprocessing"]), meta.get("class_map"),
                                     "int8", height=height, width=width, max_batch_size=max_batch_size)
        if format == "tensorrt":
            from .tensorrt import build_engine

            report["tensorrt"] = build_engine(onnx_path, out, precision=precision, max_batch_size=max_batch_size,
                                              height=height or 256, width=width or 256)
    if triton_repo is not None:
        report["triton"] = add_to_triton(out, triton_repo, model_name, max_batch_size=max_batch_size,
                                         instances=instances, version_policy=version_policy,
                                         kind=triton_kind,
                                         preprocessing=meta["preprocessing"], class_map=meta.get("class_map"))
    return report


def add_to_triton(model_path: Path, repo: str | Path, name: str, *, max_batch_size: int, instances: int,
                  version_policy: str | Sequence[int], kind: str, preprocessing: Any = None,
                  class_map: list | None = None) -> str:
    try:
        from ..serving.repository import add_model_version
    except ImportError as exc:
        raise ExportError(f"triton_repo: needs floodwatch.serving.repository ({exc})") from None
    version_dir = add_model_version(repo, name, model_path, max_batch_size=max_batch_size, instance_count=instances,
                                    kind=kind, dynamic_batching=True, version_policy=version_policy,
                                    preprocessing=preprocessing, class_map=class_map)
    return str(version_dir)


def parse_version_policy(text: str) -> str | list[int]:
    """'latest' | 'all' | '1,3' (specific versions) -> what add_model_version takes."""
    text = text.strip()
    if text in ("latest", "all"):
        return text
    try:
        versions = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ExportError(f"version_policy: '{text}' is not latest, all or a list like 1,3") from None
    if not versions or min(versions) < 1:
        raise ExportError(f"version_policy: '{text}' needs positive version numbers")
    return versions
