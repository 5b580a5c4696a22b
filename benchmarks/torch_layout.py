"""Which memory layout should the torch back-end run in? Side by side in one process, ratios to NCHW eager.

    python benchmarks/torch_layout.py [-m model.pt] [--batches 4,1] [--repeats 6] [--threads 2]

Inference: the model (a floodwatch checkpoint; default the shipped floodwatch-s1) on random 512² tiles, in
torch's default NCHW layout, channels-last (NHWC), and TorchScript frozen with `optimize_for_inference`
(NCHW and NHWC). Training: one step (batch 8, 128², cross-entropy, Adam) of the same network, NCHW against
NHWC. Prints seconds per tile (median of the repeats, after a warm-up) and the ratio to NCHW eager, and the
largest probability difference to NCHW eager.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "floodwatch" / "models" / "zoo" / "floodwatch-s1" / "model.pt"
NHWC = torch.channels_last


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def inference_variants(model: torch.nn.Module, example: torch.Tensor) -> dict:
    def scripted(layout):
        m = copy.deepcopy(model).to(memory_format=layout)
        traced = torch.jit.trace(m, example.contiguous(memory_format=layout), check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return lambda x: frozen(x.contiguous(memory_format=layout))

    nhwc = copy.deepcopy(model).to(memory_format=NHWC)
    return {"NCHW eager (torch's default)": model,
            "NHWC eager (channels-last)": lambda x: nhwc(x.contiguous(memory_format=NHWC)),
            "TorchScript frozen, NCHW": scripted(torch.contiguous_format),
            "TorchScript frozen, NHWC": scripted(NHWC)}


def training_step_seconds(model: torch.nn.Module, layout, repeats: int) -> float:
    m = copy.deepcopy(model).train().to(memory_format=layout)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.randn(8, 2, 128, 128).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (8, 128, 128))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return _median_seconds(step, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", type=Path, default=SHIPPED)
    ap.add_argument("--batches", default="4,1", help="inference batch sizes, comma-separated")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"torch_layout: {args.model}: file not found", file=sys.stderr)
        return 2
    from floodwatch.models.checkpoint import load_model

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, "cpu")
    model.eval()
    print(f"{args.model.name}, {args.threads} threads, median of {args.repeats}")
    print("| inference | batch | s per 512² tile | × NCHW eager | largest probability difference to NCHW |")
    print("|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, 2, 512, 512)
        with torch.inference_mode():
            variants = inference_variants(model, x[:1])
            reference = torch.softmax(model(x), 1)[:, 1]
            base = None
            for name, fn in variants.items():
                seconds = _median_seconds(lambda: fn(x), args.repeats) / batch
                base = base or seconds
                diff = float((torch.softmax(fn(x), 1)[:, 1] - reference).abs().max())
                print(f"| {name} | {batch} | {seconds:.3f} | {base / seconds:.2f} | {diff:.1e} |", flush=True)
    nchw = training_step_seconds(model, torch.contiguous_format, args.repeats)
    nhwc = training_step_seconds(model, NHWC, args.repeats)
    print("| training step (batch 8, 128²) | s per step | × NCHW |\n|---|---|---|")
    print(f"| NCHW | {nchw:.3f} | 1.00 |\n| NHWC (channels-last) | {nhwc:.3f} | {nchw / nhwc:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
