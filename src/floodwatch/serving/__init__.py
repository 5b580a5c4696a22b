"""Serving on NVIDIA Triton Inference Server: model repositories, a local server, and a client.

    from floodwatch.serving import add_model_version, TritonServer, FloodClient
    add_model_version("repo", "flood", "model.onnx")            # repo/flood/1/{model.onnx, model.py}
    with TritonServer("repo", http_port=8000) as server:         # the tritonserver inside nvidia-pytriton
        with FloodClient(server.http_url, model_name="flood") as client:
            probability = client.predict_db(chips_db)             # (N, H, W) water probability

On a GPU host, repositories written with kind="gpu" (onnxruntime_onnx / tensorrt_plan on KIND_GPU) can be
served by NVIDIA's own Triton container instead; the client is the same.
"""
from .client import FloodClient, TritonPredictor
from .repository import add_model_version, read_config
from .server import TritonServer

__all__ = ["FloodClient", "TritonPredictor", "TritonServer", "add_model_version", "read_config"]
