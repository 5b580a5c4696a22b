"""Fixtures: small ONNX U-Nets with floodwatch metadata, and one real Triton server for the whole session."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import ServingError
from tests.ports import free_port, start_on_free_ports

# Not the default offsets/scales: a client that ignored the served pre-processing would get other numbers.
PREPROCESSING = Preprocessing(offset=[-10.0, -17.0], scale=[0.25, 0.3])
CHIP = 32


def export_onnx(path: Path, seed: int, preprocessing: Preprocessing = PREPROCESSING) -> Path:
    """ResNet-10 U-Net -> ONNX with dynamic N/H/W and the `floodwatch` metadata export writes."""
    import onnx

    from floodwatch.models import build_model

    torch.manual_seed(seed)
    model = build_model(num_layers=10, in_channels=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice: no onnxscript here
        torch.onnx.export(model, torch.zeros(1, 2, CHIP, CHIP), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N", 2: "H", 3: "W"}})
    proto = onnx.load(str(path))
    meta = {"preprocessing": preprocessing.to_dict(), "class_map": [{"name": "notflood", "label_id": 0},
                                                                  {"name": "flood", "label_id": 1}],
            "model_config": {"num_layers": 10, "in_channels": 2}}
    onnx.helper.set_model_props(proto, {"floodwatch": json.dumps(meta)})
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("onnx")
    return [export_onnx(root / f"unet_{seed}.onnx", seed) for seed in (0, 1)]


def ort_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": batch})[0]


@pytest.fixture(scope="session")
def triton(onnx_models, tmp_path_factory):
    """One poll-mode server: model `flood` (versions 1 and 2 side by side) and `flood_poll` (latest only)."""
    pytest.importorskip("pytriton")
    pytest.importorskip("tritonclient.grpc")
    from floodwatch.serving.repository import add_model_version
    from floodwatch.serving.server import TritonServer

    repo = tmp_path_factory.mktemp("repo")
    for path in onnx_models:
        add_model_version(repo, "flood", path, max_batch_size=4, version_policy="all", ort_threads=1)
    add_model_version(repo, "flood_poll", onnx_models[0], max_batch_size=4, ort_threads=1)
    def start() -> TritonServer:
        return TritonServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            poll_seconds=1, exit_timeout_s=2).start()

    # a port taken by then is refused before tritonserver starts, or makes it exit at start-up; a start that
    # times out is not retried
    server = start_on_free_ports(start, (ServingError,), retry_if=lambda e: "exited" in str(e) or "in use" in str(e))
    try:
        yield server
    finally:
        server.stop()
