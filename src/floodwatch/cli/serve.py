"""`floodwatch serve` (a real Triton server on a model repository) and `floodwatch client` (chips -> masks)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import QUIET, Protocol, aliased, esc, make_console, value

console = make_console()


def serve(model_repository: Path = typer.Option(..., "--model-repository", help="Triton model repository folder."),
          host: str = typer.Option("127.0.0.1", help="Address to bind (all three endpoints)."),
          http_port: int = typer.Option(8000, help="HTTP/REST port."),
          grpc_port: int = typer.Option(8001, help="gRPC port."),
          metrics_port: int = typer.Option(8002, help="Prometheus metrics port."),
          poll: Optional[int] = typer.Option(None, "--poll", help="Poll the repository every SECONDS and load "
                                             "new versions without a restart."),
          log_verbose: int = typer.Option(0, help="Triton's --log-verbose level."),
          log_file: Optional[Path] = typer.Option(None, help="Write Triton's log here (default: the terminal)."),
          startup_timeout: float = typer.Option(120.0, help="Seconds to wait for the models to become ready.")):
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


def client(inputs: List[Path] = typer.Argument(..., help="GeoTIFF chips in dB (bands as the model expects)."),
           output: Path = typer.Option(..., "-o", "--output", help="Output folder for <stem>_mask.tif and .png."),
           url: str = typer.Option("127.0.0.1:8000", help="Server address (HTTP port, or gRPC port with "
                                   "--protocol grpc)."),
           protocol: Protocol = typer.Option(Protocol.http, "--protocol", help="Triton protocol."),
           triton_model: str = typer.Option("flood", "--triton-model", help="Model name on the Triton server."),
           model_version: str = typer.Option("", "--model-version", help="Version (default: the server's "
                                             "policy)."),
           threshold: float = typer.Option(0.5, help="Water probability at or above which a pixel is water."),
           timeout: float = typer.Option(30.0, help="Seconds per request."),
           retries: int = typer.Option(2, help="Retries with backoff on transient failures."),
           quiet: bool = QUIET):
    """Classify chips with a model on a Triton server and write water masks (1 water, 0 not, 255 nodata)."""
    from ..serving.client import FloodClient
    from ..serving.masks import classify_rasters

    with FloodClient(url, protocol=value(protocol), model_name=triton_model, model_version=model_version,
                     timeout_s=timeout, retries=retries) as c:
        written = classify_rasters(c, inputs, output, threshold=threshold, progress=not quiet)
    console.print(f"wrote {len(written)} mask(s) to {esc(output)}")


def register(app: typer.Typer) -> None:
    app.command("serve", cls=aliased({"--triton-repo": "--model-repository"}))(serve)  # export's name for it
    # --model was the Triton name here; -m/--model means a model file everywhere else
    app.command("client", cls=aliased({"--out": "--output", "--model": "--triton-model"}))(client)
