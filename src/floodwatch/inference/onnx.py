"""ONNX Runtime back-end of the Predictor protocol (files written by `floodwatch export`)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..data.preprocess import Preprocessing
from ..errors import DataError, ExportError
from ..export.onnx import INPUT_NAME, onnx_session, read_metadata
from .base import checked_batch, predictor_temporal, water_probability


class OnnxPredictor:
    """predict(N,C,H,W pre-processed float32) -> (N,H,W) water probability, with ONNX Runtime.

    providers: ONNX Runtime execution providers in order of preference; by default TensorRT, then CUDA,
    then CPU, whichever this onnxruntime build has. threads / spinning / memory_pattern: see `onnx_session`.
    The pre-processing comes from the file's metadata.
    """

    backend = "onnx"  # what stats.json records as having run the model (inference.base.predictor_backend)

    def __init__(self, path: str | Path, providers: Iterable[str] | None = None, threads: int | None = None,
                 spinning: bool | None = None, memory_pattern: bool | None = None):
        self.path = Path(path)
        try:
            self.meta = read_metadata(self.path)
        except ExportError:
            from ..models.checkpoint import is_torch_file

            if is_torch_file(self.path):  # protobuf's DecodeError would be all the user saw
                raise ExportError(f"{self.path}: is a torch checkpoint, not an ONNX file; run it on backend "
                                  "'torch', or give the ONNX file exported from it") from None
            raise
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
        #: input channels of the graph (a bi-temporal model's are twice its pre-processing's)
        self.in_channels = first.shape[1] if len(first.shape) == 4 and isinstance(first.shape[1], int) else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) pre-processed inputs (see `inference.base.Predictor`) -> (N, K, H, W) logits."""
        x = checked_batch(batch, self.path, self.preprocessing, predictor_temporal(self), self.in_channels)
        if any(want is not None and want != got for want, got in zip(self.input_hw, x.shape[2:])):
            h, w = (d or "any" for d in self.input_hw)
            raise DataError(f"{self.path}: takes inputs of {h} x {w} px only (exported with a fixed height and "
                            f"width), got {x.shape[2]} x {x.shape[3]}; map it with tiles of {h} px, or export it "
                            "without a fixed size")
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return water_probability(self.logits(batch))
