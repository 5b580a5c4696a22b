"""Speed and water IoU of torch eager, ONNX fp32, ONNX INT8, pruned fp32 and pruned INT8, measured in one run
on the held-out ETCI 2021 North Alabama tiles (the right-most grid columns, spatially apart from the rest).

    python benchmarks/export.py [CHECKPOINT] [--tiles 48] [--threads 2] [--pruned PRUNED.pt]

Without a checkpoint it trains a quick ResNet-18 U-Net on the other tiles first (minutes, not a real model).
Without --pruned it prunes CHECKPOINT itself and fine-tunes for a few steps only; the real recipe is
`floodwatch prune` then `floodwatch train -m pruned.pt` for whole epochs (examples/etci_northal_pruned_finetune.yaml),
and --pruned scores that result.
Prints a table with throughput and IoU ratios against torch eager.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from floodwatch.data import Preprocessing, open_dataset
from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.export import export_onnx, prune_checkpoint, quantize_int8
from floodwatch.inference.onnx import OnnxPredictor
from floodwatch.models import build_model
from floodwatch.models.checkpoint import load_model, save_checkpoint

ETCI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "etci2021"
console = Console()


def split_tiles(ds, held_out: int):
    """Held-out = tiles in the right-most grid columns, so no held-out tile neighbours a training tile."""
    cols = np.array([r.extra.get("grid", (0, 0))[0] for r in ds.records])
    order = np.argsort(-cols, kind="stable")
    return [int(i) for i in order[held_out:]], [int(i) for i in order[:held_out]]


def spec_split(ds, spec_path):
    """Indices of the spec's train and test tiles, so a trained checkpoint is scored only on tiles it never saw."""
    from floodwatch.config import load_spec
    from floodwatch.training.data import load_samples

    parts = load_samples(load_spec(spec_path))
    index = {id_: i for i, id_ in enumerate(ds.ids)}
    return ([index[s.id] for s in parts["train"]],
            [index[s.id] for s in parts.get("test") or parts["val"]])


def stack(ds, idx, prep):
    samples = [ds[i] for i in idx]
    x = np.stack([prep.apply(s.image, s.valid) for s in samples])
    y = np.stack([np.where(s.valid, s.mask, IGNORE_INDEX) for s in samples]).astype(np.int64)
    return x, y


def train(model, x, y, steps, crop=128, lr=1e-3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in track(range(steps), description="training", console=console):
        idx = torch.randint(0, len(xt), (8,), generator=gen)
        r, c = (int(v) for v in torch.randint(0, xt.shape[-1] - crop + 1, (2,), generator=gen))
        loss = torch.nn.functional.cross_entropy(model(xt[idx, :, r:r + crop, c:c + crop]),
                                                 yt[idx, r:r + crop, c:c + crop], ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def measure(predict, x, y, batch=8):
    predict(x[:batch])  # warm-up: allocations, ORT graph caches
    tp = fp = fn = 0
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        p = predict(x[i:i + batch]) > 0.5
        m = y[i:i + batch]
        keep = m != IGNORE_INDEX
        tp += int((p & (m == 1) & keep).sum())
        fp += int((p & (m == 0) & keep).sum())
        fn += int((~p & (m == 1) & keep).sum())
    dt = time.perf_counter() - t0
    return len(x) / dt, tp / max(tp + fp + fn, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--data", default=str(ETCI))
    ap.add_argument("--tiles", type=int, default=48, help="held-out tiles to score")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=120)
    ap.add_argument("--finetune-steps", type=int, default=40)
    ap.add_argument("--prune-ratio", type=float, default=0.5)
    ap.add_argument("--pruned", help="an already pruned and fine-tuned checkpoint (skips the quick prune here)")
    ap.add_argument("--spec", help="take train/test tiles from this spec's split (the checkpoint's own recipe)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    if args.spec:
        train_idx, test_idx = spec_split(ds, args.spec)
    else:
        train_idx, test_idx = split_tiles(ds, args.tiles)
    work = Path(tempfile.mkdtemp(prefix="fw-bench-export-"))
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        prep = load_model(ckpt)[1]["preprocessing_obj"]
    else:
        sub = train_idx[:: max(1, len(train_idx) // 96)]
        raw = [ds[i] for i in sub[:16]]
        vals = np.concatenate([s.image[:, s.valid] for s in raw], axis=1)
        prep = Preprocessing.from_stats(vals.mean(1), vals.std(1))
        x_tr, y_tr = stack(ds, sub, prep)
        torch.manual_seed(0)
        model = train(build_model(num_layers=18, in_channels=2), x_tr, y_tr, args.train_steps)
        ckpt = save_checkpoint(work / "quick.pt", model, model_config={"num_layers": 18, "in_channels": 2},
                               preprocessing=prep)
    x_te, y_te = stack(ds, test_idx, prep)
    calib = [ds[i] for i in train_idx[:: max(1, len(train_idx) // 32)][:32]]

    pruned = Path(args.pruned) if args.pruned else work / "pruned.pt"
    if not args.pruned:
        prune_checkpoint(ckpt, pruned, ratio=args.prune_ratio)
    if args.finetune_steps and not args.pruned:
        small, meta = load_model(pruned)
        x_tr, y_tr = stack(ds, train_idx[:: max(1, len(train_idx) // 96)], prep)
        small = train(small, x_tr, y_tr, args.finetune_steps, lr=3e-4, seed=1)
        save_checkpoint(pruned, small, model_config=meta["model_config"], preprocessing=prep)

    rows = {}
    for name, source in (("", ckpt), ("pruned ", pruned)):
        model = load_model(source)[0]

        def torch_predict(b, model=model):
            with torch.inference_mode():
                return torch.softmax(model(torch.from_numpy(b)), 1)[:, 1].numpy()

        rows[f"{name}torch eager"] = measure(torch_predict, x_te, y_te)
        fp32 = work / f"{name.strip() or 'full'}.onnx"
        export_onnx(source, fp32, parity_inputs=x_te[:4])
        rows[f"{name}ONNX fp32"] = measure(OnnxPredictor(fp32, threads=args.threads).predict, x_te, y_te)
        int8 = work / f"{name.strip() or 'full'}.int8.onnx"
        quantize_int8(fp32, int8, calib)
        rows[f"{name}ONNX INT8"] = measure(OnnxPredictor(int8, threads=args.threads).predict, x_te, y_te)

    base_speed, base_iou = rows["torch eager"]
    table = Table(title=f"ETCI North Alabama held-out: {len(x_te)} tiles 256x256, {args.threads} threads")
    for col in ("model", "chips/s", "x torch eager", "water IoU", "Δ IoU (pt)"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for name, (speed, iou) in rows.items():
        table.add_row(name, f"{speed:.2f}", f"{speed / base_speed:.2f}", f"{iou:.4f}", f"{100 * (iou - base_iou):+.2f}")
    console.print(table)
    console.print(f"files in {escape(str(work))}")


if __name__ == "__main__":
    main()
