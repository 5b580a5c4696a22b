"""`floodwatch serve` (a real Triton server on a model repository) and `floodwatch client` (chips -> masks)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options
from .common import QUIET, Protocol, aliased, esc, make_console, value

console = make_console()


def serve(model_repository: Path = typer.Option(..., "--model-repository", help="Triton model repository folder."),
          host: str = typer.Option("127.0.0.1", help="Address to bind (all three endpoints)."),
          http_port: int = typer.Option(8000, min=1, max=65535, help="HTTP/REST port."),
          grpc_port: int = typer.Option(8001, min=1, max=65535, help="gRPC port."),
          metrics_port: int = typer.Option(8002, min=1, max=65535, help="Prometheus metrics port."),
          poll: Optional[int] = typer.Option(None, "--poll", help="Poll the repository every SECONDS and load "
                                             "new versions without a restart."),
          log_verbose: int = typer.Option(0, min=0, help="Triton's --log-verbose level."),
          log_file: Optional[Path] = typer.Option(None, help="Append Triton's log to this file (default: the terminal)."),
          startup_timeout: float = typer.Option(120.0, help="Seconds (> 0) to wait for the models to become "
                                                "ready.")):
    """Run NVIDIA Triton Inference Server (CPU, from nvidia-pytriton) in the foreground; Ctrl-C stops it.

    On a GPU host you can instead point NVIDIA's Triton container at a repository written with
    kind='gpu' (onnxruntime_onnx / tensorrt_plan on KIND_GPU); `floodwatch client` works against either."""
    from ..serving.server import TritonServer

    server = TritonServer(model_repository, host=host, http_port=http_port, grpc_port=grpc_port,
                          metrics_port=metrics_port, poll_seconds=poll, log_verbose=log_verbose,
                          log_file=log_file, startup_timeout_s=startup_timeout, echo=log_file is None)

    def ready(s: TritonServer) -> None:
        for name, url in s.endpoints().items():
            console.print(f"[bold green]{name:>8}[/] {esc(url)}")
        console.print("Triton is ready; Ctrl-C to stop.")
        console.file.flush()  # a supervisor reading a pipe should see "ready" now, not at exit

    server.serve_forever(on_ready=ready)
    console.print("Triton stopped.")


def client(inputs: List[Path] = typer.Argument(..., help="Chip files (GeoTIFF in dB, 8-bit PNG; <chip>_vv/<chip>_vh "
                                         "files pair), folders of them, or data set folders, as `infer` reads "
                                         "them."),
           output: Path = typer.Option(..., "-o", "--output", help="Output folder: what `infer` writes there."),
           url: str = typer.Option("127.0.0.1:8000", help="Server address (HTTP port, or gRPC port with "
                                   "--protocol grpc)."),
           protocol: Protocol = typer.Option(Protocol.http, "--protocol", help="Triton protocol."),
           triton_model: str = typer.Option("flood", "--triton-model", help="Model name on the Triton server."),
           model_version: str = typer.Option("", "--model-version", help="Version (default: the highest "
                                             "version ready when the client connects; summary.json records it)."),
           threshold: float = options.THRESHOLD,
           timeout: float = typer.Option(30.0, help="Seconds (> 0) per request."),
           retries: int = typer.Option(2, min=0, help="Retries with backoff on transient failures."),
           quiet: bool = QUIET):
    """Predict water on each chip with a model on a Triton server and write what `infer` writes:
    <stem>_mask/_prob/_overlay.png (the mask PNG is 255 water, 0 not water or no data) and, when
    georeferenced, _mask.tif (1 water, 0 not, 255 no data) and _prob.tif, plus summary.json."""
    from ..inference.tiling import check_threshold
    from ..inference.chips import infer_chips
    from ..serving.client import FloodClient

    check_threshold(threshold)  # infer_chips checks it too, but only once the server has answered
    with FloodClient(url, protocol=value(protocol), model_name=triton_model, model_version=model_version,
                     timeout_s=timeout, retries=retries) as c:
        records = infer_chips(c, inputs, output, threshold=threshold, progress=not quiet)
    console.print(f"wrote {len(records)} chip(s) to {esc(output)} (summary.json)")


def register(app: typer.Typer) -> None:
    app.command("serve", cls=aliased({"--triton-repo": "--model-repository"}))(serve)  # export's name for it
    # --model was the Triton name here; -m/--model means a model file everywhere else
    app.command("client", cls=aliased({"--out": "--output", "--model": "--triton-model"}))(client)
