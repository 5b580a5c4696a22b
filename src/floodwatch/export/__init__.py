"""Export: ONNX with parity checks and metadata, INT8/FP16 variants, TensorRT engines, structured pruning."""
from .onnx import export_onnx, read_metadata
from .pipeline import export_model
from .prune import prune_checkpoint, prune_model
from .quantize import convert_fp16, quantize_int8

__all__ = ["export_onnx", "read_metadata", "export_model", "prune_checkpoint", "prune_model", "convert_fp16",
           "quantize_int8"]
