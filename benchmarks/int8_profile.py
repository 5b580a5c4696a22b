"""Where an ONNX model's time goes per layer group and op type, and which ops INT8 leaves in fp32.

    python benchmarks/int8_profile.py MODEL.int8.onnx [MODEL.onnx ...] [--size 512 --batch 4 --runs 3]

ONNX Runtime's own profiler times every node; nodes are grouped by encoder/decoder and the resolution they
write (the exporter keeps no module names), and by op type. For a QDQ model it also lists the compute ops
that still run on float data in the graph ONNX Runtime actually runs (after its QDQ fusions).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

def fp32_ops(path: Path) -> dict[str, int]:
    """Compute ops of the graph ONNX Runtime runs (after its QDQ fusions) whose data input is float.

    Dtypes are propagated: QuantizeLinear and QLinear* give 8-bit tensors, DequantizeLinear float, every
    other op keeps its first input's type (Resize, MaxPool, Concat, Transpose run on either)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
    kinds = {onnx.TensorProto.UINT8: "8bit", onnx.TensorProto.INT8: "8bit", onnx.TensorProto.FLOAT: "float"}
    kind = {i.name: kinds.get(i.data_type, "int") for i in graph.initializer}
    kind.update({i.name: "float" for i in graph.input})
    out: dict[str, int] = defaultdict(int)
    for n in graph.node:  # the optimised graph is topologically sorted
        first = next((kind[i] for i in n.input if i in kind), "int")
        if n.op_type == "QuantizeLinear" or n.op_type.startswith("QLinear"):
            result = "8bit"
        elif n.op_type == "DequantizeLinear":
            result = "float"
        elif n.op_type == "Shape":
            result = "int"  # shape arithmetic (sizes for Resize) is int64, not model compute
        else:
            result = first
            if first == "float":
                out[n.op_type] += 1
        for o in n.output:
            kind[o] = result
    return dict(out)


def profile(path: Path, size: int, batch: int, runs: int, threads: int) -> tuple[dict, dict, float]:
    """(ms per chip by part, ms per chip by op type, total ms per chip). A part is encoder or decoder (nodes
    after the first Resize, the first upsampling, in execution order) and the resolution a node writes
    (full, 1/2, ...); the last conv (the classes) is the head."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((batch, 2, size, size)).astype(np.float32)
        name = sess.get_inputs()[0].name
        sess.run(None, {name: x})  # warm-up, left out below
        for _ in range(runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    nodes = sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")),
                   key=lambda e: e["ts"])
    by_part: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for k in range(1, len(starts)):  # every timed run
        lo, hi = starts[k], starts[k + 1] if k + 1 < len(starts) else float("inf")
        run = [e for e in nodes if lo <= e["ts"] < hi]
        first_up = next((i for i, e in enumerate(run) if e["args"].get("op_name") == "Resize"), len(run))
        last_conv = max((i for i, e in enumerate(run) if "Conv" in e["args"].get("op_name", "")), default=-1)
        for i, e in enumerate(run):
            op = e["args"].get("op_name", "?")
            us = e["dur"] / (len(starts) - 1)
            by_op[op] += us
            if i == last_conv:
                by_part["head (full)"] += us
                continue
            shapes = [list(d.values())[0] for d in e["args"].get("output_type_shape", [])]
            h = shapes[0][-2] if shapes and len(shapes[0]) == 4 else 0
            res = "full" if h == size else (f"1/{round(size / h)}" if h else "-")
            by_part[f"{'decoder' if i >= first_up else 'encoder'} ({res})"] += us
    per_chip = sum(by_part.values()) / batch / 1e3
    return {k: v / batch / 1e3 for k, v in by_part.items()}, {k: v / batch / 1e3 for k, v in by_op.items()}, per_chip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    results = {m: profile(m, args.size, args.batch, args.runs, args.threads) for m in args.models}
    parts = sorted({p for r in results.values() for p in r[0]},
                   key=lambda p: (p.startswith("head"), p.startswith("decoder"), p))
    print(f"kernel ms per {args.size}² chip (batch {args.batch}, {args.runs} runs) and share of the model's time")
    print("| part (resolution it writes) | " + " | ".join(m.name for m in args.models) + " |\n|---|" +
          "---|" * len(args.models))
    for p in parts:
        print(f"| {p} | " + " | ".join(f"{r[0].get(p, 0.0):.1f} ({100 * r[0].get(p, 0.0) / r[2]:.0f}%)"
                                       for r in results.values()) + " |")
    print("| total | " + " | ".join(f"{r[2]:.1f}" for r in results.values()) + " |")
    for m, (_, by_op, per_chip) in results.items():
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        print(f"\n{m.name}: top op types: " + ", ".join(f"{k} {v:.1f} ms ({100 * v / per_chip:.0f}%)" for k, v in top))
        if "int8" in m.name:
            left = fp32_ops(m)
            print(f"{m.name}: compute ops on float data after ORT's QDQ fusion: " +
                  (", ".join(f"{k} x{v}" for k, v in sorted(left.items())) or "none"))


if __name__ == "__main__":
    sys.exit(main())
