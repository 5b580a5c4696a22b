"""Where an ONNX model's time goes in ONNX Runtime on this CPU: seconds per tile and each operator type's share.

    python benchmarks/ort_ops.py [MODEL.onnx] [--batch 4] [--size 512] [--runs 5] [--threads 2]

Default model: the shipped floodwatch-s1 INT8 file. Runs random (batch, C, size, size) input with ONNX
Runtime's profiler on, after two warm-up runs, and prints a Markdown table of operator types by their share of
the kernels' time (ONNX Runtime's own graph after its optimisations: QDQ pairs fused into QLinear* kernels,
NHWC layout), with the largest single nodes and their output shapes.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "floodwatch" / "models" / "zoo" / "floodwatch-s1" / "model.int8.onnx"


def profile(model: Path, batch: int, size: int, runs: int, threads: int) -> tuple[float, list[dict]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        channels = inp.shape[1] if isinstance(inp.shape[1], int) else 2
        x = np.random.default_rng(0).normal(0, 1, (batch, channels, size, size)).astype(np.float32)
        for _ in range(2):
            session.run(None, {inp.name: x})
        t = time.perf_counter()
        for _ in range(runs):
            session.run(None, {inp.name: x})
        per_tile = (time.perf_counter() - t) / (runs * batch)
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    return per_tile, nodes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", type=Path, default=SHIPPED)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=6, help="largest single nodes to list")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"ort_ops: {args.model}: file not found", file=sys.stderr)
        return 2
    per_tile, nodes = profile(args.model, args.batch, args.size, args.runs, args.threads)
    by_type: collections.Counter = collections.Counter()
    by_node: collections.Counter = collections.Counter()
    shapes = {}
    for e in nodes:
        by_type[e["args"]["op_name"]] += e["dur"]
        by_node[(e["args"]["op_name"], e["name"][:-len("_kernel_time")])] += e["dur"]
        shapes[e["name"][:-len("_kernel_time")]] = e["args"].get("output_type_shape")
    total = sum(by_type.values()) or 1
    print(f"{args.model.name}: {per_tile:.4f} s per {args.size}² tile (batch {args.batch}, {args.threads} threads, "
          f"{args.runs} runs, with the profiler on)")
    print("| operator | share of kernel time |\n|---|---|")
    for op, us in by_type.most_common():
        if us / total >= 0.001:
            print(f"| {op} | {100 * us / total:.1f} % |")
    print("\n| largest nodes | operator | share | output |\n|---|---|---|---|")
    for (op, name), us in by_node.most_common(args.top):
        print(f"| {name} | {op} | {100 * us / total:.1f} % | {shapes[name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
