"""Load on a real local Triton server vs in-process ONNX Runtime, same model, same batch, in one run.

    python benchmarks/serve_load.py [--onnx model.onnx] [--batch 8] [--chip 64] [--requests 48]
                                    [--concurrency 1 4 16] [--protocol grpc|http]

For each number of concurrent clients (each a thread with its own FloodClient): throughput (chips/s),
p50/p95/p99 request latency, failures (must be 0), the mean batch Triton's dynamic batcher executed
(from its statistics), and the throughput ratio to in-process ONNX Runtime running the same batches back to
back (measured before and after each level and averaged, since the load on a shared machine drifts).
Without --onnx it exports a ResNet-18 U-Net with random weights (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from floodwatch.data.preprocess import Preprocessing
from floodwatch.serving.client import FloodClient
from floodwatch.serving.repository import add_model_version
from floodwatch.serving.server import TritonServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_random_unet(path: Path, num_layers: int) -> Path:
    import torch

    from floodwatch.models import build_model

    torch.set_num_threads(2)
    model = build_model(num_layers=num_layers, in_channels=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 2, 64, 64), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N", 2: "H", 3: "W"}})
    return path


class InProcessOrt:
    """The baseline: the same ONNX file in this process, the same batches back to back."""

    def __init__(self, path: Path, batch: np.ndarray, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the same setting the served model gets
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.batch = batch
        self.session.run(None, {"input": batch})  # warm-up

    def chips_per_s(self, requests: int) -> float:
        start = time.perf_counter()
        for _ in range(requests):
            self.session.run(None, {"input": self.batch})
        return requests * self.batch.shape[0] / (time.perf_counter() - start)


def load(server: TritonServer, protocol: str, clients: int, requests: int, batch: np.ndarray,
         progress: Progress) -> dict:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    # The HTTP client is gevent-based and bound to the thread that made it: one client per worker thread.
    stats = FloodClient(url, protocol=protocol, model_name="flood", retries=0)
    before = stats.statistics()["model_stats"][0]
    latencies: list[float] = []
    failures = []
    lock = threading.Lock()
    counter = iter(range(requests))
    task = progress.add_task(f"{clients} client(s)", total=requests)
    go = threading.Barrier(clients + 1)

    def worker() -> None:
        c = FloodClient(url, protocol=protocol, model_name="flood", retries=0, timeout_s=120)
        go.wait()
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.perf_counter()
            try:
                c.infer_once(batch)
            except Exception as exc:  # counted, not raised: the run reports failures
                with lock:
                    failures.append(str(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                progress.advance(task)
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    go.wait()  # clients connected: time requests only
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = stats.statistics()["model_stats"][0]
    stats.close()
    executions = int(after["execution_count"]) - int(before["execution_count"])
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"clients": clients, "chips_s": len(latencies) * batch.shape[0] / wall,
            "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99),
            "failures": len(failures), "server_batch": inferences / max(executions, 1),
            "first_failure": failures[0] if failures else ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, help="an ONNX model (default: export a random ResNet U-Net)")
    ap.add_argument("--layers", type=int, default=18, help="ResNet depth of the exported model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--chip", type=int, default=64)
    ap.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--ort-threads", type=int, default=0, help="ONNX Runtime intra-op threads, both sides "
                    "(0 = its default)")
    args = ap.parse_args(argv)
    console = Console(width=150)

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        return run(args, Path(tmp), console)


def run(args: argparse.Namespace, work: Path, console: Console) -> int:
    onnx_path = args.onnx or export_random_unet(work / "unet.onnx", args.layers)
    rng = np.random.default_rng(0)
    batch = rng.normal(0, 1, (args.batch, 2, args.chip, args.chip)).astype(np.float32)
    add_model_version(work / "repo", "flood", onnx_path, max_batch_size=args.max_batch_size,
                      preprocessing=Preprocessing(), max_queue_delay_us=2000, ort_threads=args.ort_threads)

    baseline = InProcessOrt(onnx_path, batch, args.ort_threads)
    rows = []
    with TritonServer(work / "repo", http_port=free_port(), grpc_port=free_port(), metrics_port=free_port()) as server:
        with FloodClient(server.grpc_url, protocol="grpc", model_name="flood") as warm:
            warm.infer_once(batch)
        with Progress(console=console, transient=True) as progress:
            for clients in args.concurrency:
                # baseline measured right beside each level: the machine's load drifts (shared CPUs)
                ort_rate = baseline.chips_per_s(max(4, args.requests // 4))
                row = load(server, args.protocol, clients, args.requests, batch, progress)
                row["ort_chips_s"] = (ort_rate + baseline.chips_per_s(max(4, args.requests // 4))) / 2
                rows.append(row)

    table = Table(title=f"Triton ({args.protocol}, python backend + ONNX Runtime) vs in-process ONNX Runtime: "
                        f"batch {args.batch} x 2 x {args.chip} x {args.chip}, {args.requests} requests per level")
    for col in ("clients", "Triton chips/s", "p50 ms", "p95 ms", "p99 ms", "failures", "server batch",
                "in-process ORT chips/s", "ratio"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["clients"]), f"{r['chips_s']:.1f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}",
                      f"{r['p99']:.1f}", str(r["failures"]), f"{r['server_batch']:.1f}",
                      f"{r['ort_chips_s']:.1f}", f"{r['chips_s'] / r['ort_chips_s']:.2f}")
    console.print(table)
    for r in rows:
        if r["failures"]:
            console.print(f"[red]{r['clients']} clients: {r['failures']} failures, first: {escape(str(r['first_failure']))}")
    return 1 if any(r["failures"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
