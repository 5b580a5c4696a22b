"""ONNX Runtime back-end of the Predictor protocol (files written by `floodwatch export`)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.preprocess import Preprocessing
from ..errors import ExportError
from ..export.onnx import INPUT_NAME, onnx_session, read_metadata
from .base import water_probability


class OnnxPredictor:
    """predict(N,C,H,W pre-processed float32) -> (N,H,W) water probability, with ONNX Runtime.

    providers: ONNX Runtime execution providers in order of preference; by default TensorRT, then CUDA,
    then CPU, whichever this onnxruntime build has. threads / spinning / memory_pattern: see `onnx_session`.
    The pre-processing comes from the file's metadata.
    """

    def __init__(self, path: str | Path, providers: Iterable[str] | None = None, threads: int | None = None,
                 spinning: bool | None = None, memory_pattern: bool | None = None):
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if "preprocessing" not in self.meta:
            raise ExportError(f"{self.path}: 'floodwatch' metadata has no 'preprocessing'")
        self.preprocessing: Preprocessing = Preprocessing.from_dict(self.meta["preprocessing"])
        self.session = onnx_session(self.path, providers, threads, spinning, memory_pattern)
        self.providers = self.session.get_providers()
        first = self.session.get_inputs()[0]
        self.input_name = first.name or INPUT_NAME
        self.output_name = self.session.get_outputs()[0].name
        #: (H, W) of a file exported with --height/--width; None for a dynamic axis (export's default)
        self.input_hw = tuple(d if isinstance(d, int) else None for d in first.shape[2:4])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != self.preprocessing.channels:
            raise ExportError(f"{self.path}: expected a (N, {self.preprocessing.channels}, H, W) batch, "
                              f"got shape {x.shape}")
        if any(want is not None and want != got for want, got in zip(self.input_hw, x.shape[2:])):
            h, w = (d or "any" for d in self.input_hw)
            raise ExportError(f"{self.path}: takes inputs of {h} x {w} px only (exported with a fixed height and "
                              f"width), got {x.shape[2]} x {x.shape[3]}; map it with tiles of {h} px, or export it "
                              "without a fixed size")
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return water_probability(self.logits(batch))
