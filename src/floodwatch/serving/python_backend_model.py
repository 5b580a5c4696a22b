"""Triton Python-backend model: runs the ONNX file beside it with ONNX Runtime (CPU).

Copied as `model.py` into each CPU version folder by `floodwatch.serving.repository`. It runs inside
Triton's Python stub, not in the floodwatch environment, so it imports only numpy and onnxruntime (the
server launcher puts the floodwatch environment's site-packages on PYTHONPATH).
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        # 0 lets ONNX Runtime pick; set it when several instances share few cores.
        options.intra_op_num_threads = int(params.get("ort_intra_op_threads", "0") or 0)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.onnx_input = self.session.get_inputs()[0].name

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        # Dynamic batching hands over several requests: run them as one ORT batch when their chips share
        # a size (the usual case), which is where the batching gains its throughput.
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) == 1 and len(arrays) > 1:
            logits = self._run(np.concatenate(arrays, axis=0))
            if isinstance(logits, Exception):
                outputs = [logits] * len(arrays)
            else:
                outputs = np.split(logits, np.cumsum([a.shape[0] for a in arrays])[:-1], axis=0)
        else:
            outputs = [self._run(a) for a in arrays]
        responses = []
        for out in outputs:
            if isinstance(out, Exception):
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(out))))
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output_name, out)]))
        return responses

    def _run(self, batch):
        try:
            return self.session.run(None, {self.onnx_input: np.ascontiguousarray(batch, np.float32)})[0]
        except Exception as exc:  # a bad chip must fail its own request, not the server
            return RuntimeError(f"onnxruntime: {exc}")

    def finalize(self):
        self.session = None
