"""TensorRT engine (.plan) from a floodwatch ONNX file, with a dynamic-batch optimisation profile."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from ..io import atomic_path
from .onnx import INPUT_NAME, read_metadata


def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise ExportError("TensorRT export needs the tensorrt package and an NVIDIA GPU "
                          "(pip install tensorrt); export ONNX instead") from None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if not has_gpu:
        raise ExportError("TensorRT export needs an NVIDIA GPU and none is visible (CUDA not available)")
    return trt


def build_engine(onnx_path: str | Path, out_path: str | Path, *, precision: str = "fp16", max_batch_size: int = 16,
                 opt_batch_size: int | None = None, height: int = 256, width: int = 256,
                 calibration: np.ndarray | None = None, workspace_gb: float = 4.0) -> dict[str, Any]:
    """Build a serialised engine. Spatial size is fixed at height x width (one profile); batch 1..max.

    precision: fp32, fp16 or int8. int8 uses the Q/DQ scales of an INT8 ONNX file (from quantize_int8)
    when it has them, else needs `calibration` chips (N,C,H,W pre-processed) for TensorRT's calibrator.
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ExportError(f"precision: '{precision}' is not one of fp32, fp16, int8")
    trt = _tensorrt()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    meta = read_metadata(onnx_path)
    channels = len(meta["preprocessing"]["offset"])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT cannot parse it ({errors[:300]})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 engines fall back to fp16, not fp32, where int8 is absent
    calibrated = False
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        has_qdq = any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers))
        if not has_qdq:
            if calibration is None:
                raise ExportError(f"{onnx_path}: INT8 engine needs a quantised (QDQ) ONNX or calibration chips")
            config.int8_calibrator = _calibrator(trt, calibration)
            calibrated = True
    profile = builder.create_optimization_profile()
    opt = opt_batch_size or max(1, max_batch_size // 2)
    profile.set_shape(INPUT_NAME, (1, channels, height, width), (opt, channels, height, width),
                      (max_batch_size, channels, height, width))
    config.add_optimization_profile(profile)
    if calibrated:
        config.set_calibration_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(bytes(plan))
    return {"engine": str(out_path), "precision": precision, "max_batch_size": max_batch_size,
            "shape": [channels, height, width], "tensorrt": trt.__version__,
            "size_mb": round(out_path.stat().st_size / 2**20, 2)}


def _calibrator(trt, chips: np.ndarray, batch_size: int = 8):
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.pos, self.buf = 0, None

        def get_batch_size(self):
            return batch_size

        def get_batch(self, names):
            if self.pos >= len(chips):
                return None
            x = np.ascontiguousarray(chips[self.pos:self.pos + batch_size], dtype=np.float32)
            self.pos += batch_size
            self.buf = torch.from_numpy(x).cuda()  # keep a reference: TensorRT reads the pointer later
            return [int(self.buf.data_ptr())]

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache):
            return None

    return Calibrator()
