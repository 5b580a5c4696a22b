"""Where an ONNX model's time goes per layer group and op type, and which ops INT8 leaves in fp32.

    python benchmarks/int8_profile.py MODEL.int8.onnx [MODEL.onnx ...] [--size 512 --batch 4 --runs 3]

ONNX Runtime's own profiler times every node; nodes are grouped by the U-Net part they belong to (stem,
encoder layer1-4, decoder blocks 0-4 with the resolution each runs at, head) and by op type. For a QDQ
model it also lists the compute ops that run in float: those not fed by DequantizeLinear or not followed
by QuantizeLinear in the graph ONNX Runtime actually runs (after its QDQ fusions).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

QDQ = {"QuantizeLinear", "DequantizeLinear"}


def part(name: str) -> str:
    """U-Net part of an exported node name ('/decoder.4/conv1/...' -> 'decoder.4')."""
    m = re.search(r"(decoder[._](\d))|(encoder[._](layer\d|conv1|bn1|stem))|(head)", name)
    if not m:
        return "other"
    if m.group(1):
        return f"decoder.{m.group(2)}"
    if m.group(3):
        return "encoder." + ("stem" if m.group(4) in ("conv1", "bn1", "stem") else m.group(4))
    return "head"


def fp32_ops(path: Path) -> dict[str, int]:
    """Compute ops of the optimised graph that neither take dequantised inputs nor feed a quantiser."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    out: dict[str, int] = defaultdict(int)
    for n in graph.node:
        if n.op_type in QDQ or n.op_type.startswith("QLinear") or n.op_type in ("Shape", "Gather", "Constant",
                                                                                  "Unsqueeze", "Cast", "Slice"):
            continue
        ins = [producer.get(i) for i in n.input if i in producer]
        fed = any(p is not None and p.op_type == "DequantizeLinear" for p in ins)
        feeds = any(c.op_type == "QuantizeLinear" for o in n.output for c in consumers[o])
        if not (fed and feeds):
            out[f"{n.op_type} ({part(n.name)})"] += 1
    return dict(out)


def profile(path: Path, size: int, batch: int, runs: int, threads: int) -> tuple[dict, dict, float]:
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
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    runs_seen = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    first_timed = sorted(e["ts"] for e in runs_seen)[1] if len(runs_seen) > 1 else 0
    by_part: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for e in nodes:
        if e["ts"] < first_timed:
            continue
        us = e["dur"] / runs
        by_part[part(e["name"])] += us
        by_op[e["args"].get("op_name", "?")] += us
    per_chip = sum(by_part.values()) / batch / 1e3
    return dict(by_part), dict(by_op), per_chip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    order = ["encoder.stem"] + [f"encoder.layer{i}" for i in range(1, 5)] + [f"decoder.{i}" for i in range(5)] + \
            ["head", "other"]
    scale = {"encoder.stem": 2, "encoder.layer1": 4, "encoder.layer2": 8, "encoder.layer3": 16, "encoder.layer4": 32,
             "decoder.0": 16, "decoder.1": 8, "decoder.2": 4, "decoder.3": 2, "decoder.4": 1, "head": 1}
    results = {m: profile(m, args.size, args.batch, args.runs, args.threads) for m in args.models}
    print(f"kernel ms per {args.size}² chip (batch {args.batch}, {args.runs} runs), share of the model's time")
    print("| part | resolution | " + " | ".join(m.name for m in args.models) + " |\n|---|---|" +
          "---|" * len(args.models))
    for p in order:
        if any(p in r[0] for r in results.values()):
            cells = []
            for m, (by_part, _, per_chip) in results.items():
                ms = by_part.get(p, 0.0) / args.batch / 1e3
                cells.append(f"{ms:.1f} ({100 * ms / per_chip:.0f}%)")
            res = f"1/{scale[p]}" if p in scale and scale[p] > 1 else ("full" if p in scale else "")
            print(f"| {p} | {res} | " + " | ".join(cells) + " |")
    print("| total | | " + " | ".join(f"{r[2]:.1f}" for r in results.values()) + " |")
    for m, (_, by_op, per_chip) in results.items():
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        print(f"\n{m.name}: top op types: " + ", ".join(
            f"{k} {v / args.batch / 1e3:.1f} ms ({100 * v / args.batch / 1e3 / per_chip:.0f}%)" for k, v in top))
        if "int8" in m.name:
            left = fp32_ops(m)
            print(f"{m.name}: compute ops left in fp32 after ORT's QDQ fusion: " +
                  (", ".join(f"{k} x{v}" for k, v in sorted(left.items())) or "none"))


if __name__ == "__main__":
    sys.exit(main())
