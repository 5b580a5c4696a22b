"""Which memory layout should the torch back-end run in? Side by side in one process, ratios to NCHW eager.

    python benchmarks/torch_layout.py [-m model.pt] [--batches 4,1] [--repeats 6] [--threads 2]

Inference: the model (a floodwatch checkpoint; default the shipped floodwatch-s1) on random 512² tiles, in
torch's default NCHW layout, channels-last (NHWC), TorchScript frozen with `optimize_for_inference` (NCHW
and NHWC), NHWC with BatchNorm folded into the convolutions, and that under bfloat16 autocast (only on a CPU
with bfloat16 in hardware): the last two are what `map`'s torch predictor runs. Training: one step (batch 8,
128², cross-entropy, Adam) of the same network, NCHW against NHWC (and NHWC under bfloat16 autocast where the
CPU has it: a measurement only, `train` runs float32). Prints seconds per tile (median of the
repeats, after a warm-up) and the ratio to NCHW eager, and the largest probability difference to NCHW eager.
With `../shared/data` beside the repository it also compares bfloat16's masks with float32's on real labelled
chips (up to 400 of Sen1Floods11's, the first 400 Bangladesh tiles): agreement and water IoU of each.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from floodwatch.inference.predictor import cpu_has_native_bf16
from floodwatch.models import fold_batch_norm

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
    folded = fold_batch_norm(copy.deepcopy(model)).to(memory_format=NHWC)

    def bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return folded(x.contiguous(memory_format=NHWC)).float()

    variants = {"NCHW eager (torch's default)": model,
                "NHWC eager (channels-last)": lambda x: nhwc(x.contiguous(memory_format=NHWC)),
                "TorchScript frozen, NCHW": scripted(torch.contiguous_format),
                "TorchScript frozen, NHWC": scripted(NHWC),
                "NHWC, BatchNorm folded": lambda x: folded(x.contiguous(memory_format=NHWC))}
    if cpu_has_native_bf16():
        variants["NHWC, BatchNorm folded, bfloat16 autocast (`map`)"] = bf16
    return variants


def bf16_on_real_chips(checkpoint: Path) -> list[str]:
    """Markdown rows: float32 against bfloat16 TorchPredictor masks on real labelled chips (needs ../shared)."""
    import numpy as np

    from floodwatch.data import open_dataset
    from floodwatch.data.preprocess import network_input
    from floodwatch.evaluation.metrics import confusion_counts, scores
    from floodwatch.inference.predictor import TorchPredictor

    data = ROOT.parent / "shared" / "data"
    sets = {"Sen1Floods11 (labelled chips, up to 400)": data / "sen1floods11",
            "ETCI Bangladesh (first 400 tiles)": data / "etci2021" / "bangladesh_20170314t115609"}
    fp32, bf16 = TorchPredictor(checkpoint, "cpu"), TorchPredictor(checkpoint, "cpu", bf16_cpu=True)
    rows = []
    for name, path in sets.items():
        if not path.is_dir():
            continue
        counts = {"fp32": np.zeros((2, 2), np.int64), "bf16": np.zeros((2, 2), np.int64)}
        same = total = 0
        for sample in list(open_dataset(path))[:400]:
            if sample.is_empty or sample.mask is None:
                continue
            x = network_input(sample, fp32.preprocessing)[None]
            masks = {k: p.predict(x)[0] >= 0.5 for k, p in (("fp32", fp32), ("bf16", bf16))}
            for k, m in masks.items():
                counts[k] += confusion_counts(m, sample.mask, valid=sample.valid)
            same += int((masks["fp32"] == masks["bf16"])[sample.valid].sum())
            total += int(sample.valid.sum())
        iou = {k: scores(c)["water_iou"] for k, c in counts.items()}
        rows.append(f"| {name} | {100 * same / max(total, 1):.3f} % | {iou['fp32']:.4f} | {iou['bf16']:.4f} |")
    return rows


def training_step_seconds(model: torch.nn.Module, layout, repeats: int, bf16: bool = False) -> float:
    m = copy.deepcopy(model).train().to(memory_format=layout)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.randn(8, 2, 128, 128).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (8, 128, 128))

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
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
    if cpu_has_native_bf16():
        rows = bf16_on_real_chips(args.model)
        if rows:
            print("| chips | mask agreement, bfloat16 against float32 | water IoU float32 | water IoU bfloat16 |")
            print("|---|---|---|---|\n" + "\n".join(rows), flush=True)
    nchw = training_step_seconds(model, torch.contiguous_format, args.repeats)
    nhwc = training_step_seconds(model, NHWC, args.repeats)
    print("| training step (batch 8, 128²) | s per step | × NCHW |\n|---|---|---|")
    print(f"| NCHW | {nchw:.3f} | 1.00 |\n| NHWC (channels-last) | {nhwc:.3f} | {nchw / nhwc:.2f} |")
    if cpu_has_native_bf16():  # what training_config.precision: bfloat16 buys a training step
        bf16 = training_step_seconds(model, NHWC, args.repeats, bf16=True)
        print(f"| NHWC, bfloat16 autocast | {bf16:.3f} | {nchw / bf16:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
