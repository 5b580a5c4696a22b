"""Input pipeline throughput vs a naive per-sample loop, beside the training step, in one run.

    python benchmarks/loader.py [--path ../shared/data/etci2021/northal_20190302t234651] [--chips 96]

Rows (samples/s, ratio to the naive loop):
- naive: main process reads each chip, pre-processes and augments it with numpy/scipy, one at a time;
- ChipLoader without cache: worker processes read + pre-process, BatchAugmenter augments whole batches;
- ChipLoader with cache: the same, epochs after the first come from memory;
- DALI (CPU) when installed; on a GPU also BatchAugmenter on the GPU and DALI on the GPU;
- the training step (ResNet-18 U-Net forward + backward + SGD step) at the same batch size: if the loader is
  faster than this, the loader is not the bottleneck.
Needs the ETCI 2021 North Alabama scene (../shared/data) or another ETCI-layout folder (--path). Prints one
table, samples/s per epoch and the ratio to the naive loop, all measured in this run. About 30 s with
--chips 16 --epochs 2, several minutes with the defaults on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import ndimage

from floodwatch.augment import BatchAugmenter, ChipLoader
from floodwatch.data import Preprocessing, open_dataset
from floodwatch.data.sample import IGNORE_INDEX
from floodwatch.errors import FloodwatchError
from floodwatch.models import build_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT.parent / "shared" / "data" / "etci2021" / "northal_20190302t234651"
CONFIG = {"spatial_augmentation": {"hflip_probability": 0.5, "vflip_probability": 0.5, "crop_and_resize_prob": 0.5,
                                   "crop_and_resize_ratio": 0.1, "rotate_probability": 0.5, "rotate_max_degrees": 15},
          "brightness_augmentation": {"delta": 1.0}, "speckle": {"probability": 0.5, "std_db": 0.5}}


class Subset:
    def __init__(self, ds, n):
        self.ds, self.n = ds, min(n, len(ds))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.ds[i]


def naive_epoch(ds, prep: Preprocessing, batch: int, rng: np.random.Generator) -> int:
    """What a first data loader looks like: read, normalise and augment chip by chip in the main process."""
    sp = CONFIG["spatial_augmentation"]
    scale = np.array(prep.scale, np.float32)[:, None, None]
    images, masks, n = [], [], 0
    for i in rng.permutation(len(ds)):
        s = ds[int(i)]
        if s.is_empty:
            continue
        x = prep.apply(s.image, s.valid)
        m = np.where(s.valid, s.mask, IGNORE_INDEX).astype(np.int64)
        if rng.random() < sp["hflip_probability"]:
            x, m = x[..., ::-1], m[..., ::-1]
        if rng.random() < sp["vflip_probability"]:
            x, m = x[..., ::-1, :], m[..., ::-1, :]
        h, w = m.shape
        if rng.random() < sp["crop_and_resize_prob"]:
            ch, cw = (int(d * (1 - sp["crop_and_resize_ratio"] * rng.random())) for d in (h, w))
            y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            x = ndimage.zoom(x[:, y0:y0 + ch, x0:x0 + cw], (1, h / ch, w / cw), order=1, grid_mode=True,
                             mode="nearest")
            m = ndimage.zoom(m[y0:y0 + ch, x0:x0 + cw], (h / ch, w / cw), order=0, grid_mode=True, mode="nearest")
        if rng.random() < sp["rotate_probability"]:
            angle = rng.uniform(-sp["rotate_max_degrees"], sp["rotate_max_degrees"])
            x = ndimage.rotate(x, angle, axes=(2, 1), reshape=False, order=1, cval=0.0)
            m = ndimage.rotate(m, angle, axes=(1, 0), reshape=False, order=0, cval=IGNORE_INDEX)
        x = x + rng.uniform(-1, 1) * CONFIG["brightness_augmentation"]["delta"] * scale
        if rng.random() < CONFIG["speckle"]["probability"]:
            x = x + rng.normal(0, CONFIG["speckle"]["std_db"], x.shape).astype(np.float32) * scale
        images.append(np.ascontiguousarray(x, np.float32))
        masks.append(np.ascontiguousarray(m))
        if len(images) == batch:
            torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))
            n += len(images)
            images, masks = [], []
    return n + len(images)


def timed_epochs(make_iter, epochs: int) -> list[float]:
    """samples/s of each epoch."""
    rates = []
    for e in range(epochs):
        t0 = time.perf_counter()
        n = make_iter(e)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def loader_epochs(loader, epochs: int, sync=lambda: None) -> list[float]:
    def run(e):
        loader.set_epoch(e)
        n = 0
        for image, _, _ in loader:
            n += image.shape[0]
        sync()
        return n
    return timed_epochs(run, epochs)


def train_step_rate(batch: int, size: int, device: str, steps: int = 2) -> float:
    model = build_model(18, in_channels=2).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 2, size, size, device=device)
    y = torch.randint(0, 2, (batch, size, size), device=device)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y, ignore_index=IGNORE_INDEX).backward()
        opt.step()

    step()  # warm-up (allocations, cudnn autotune)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=str(DEFAULT_PATH))
    ap.add_argument("--chips", type=int, default=96, help="chips per epoch (the scene has 356)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    for name in ("chips", "batch", "epochs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: {getattr(args, name)}; at least 1")
    if args.workers < 0:
        ap.error(f"--workers: {args.workers}; 0 (main process) or more")
    torch.set_num_threads(2)
    if not Path(args.path).is_dir():
        sys.exit(f"{args.path}: not found (the shared ETCI scene)")
    try:  # a training read: no permanent-water layer
        ds = Subset(open_dataset(args.path, water_body=False), args.chips)
    except FloodwatchError as exc:
        sys.exit(f"{args.path}: {exc}" if str(args.path) not in str(exc) else str(exc))
    prep = Preprocessing()
    size = ds[0].shape[0]
    rows: list[tuple[str, list[float]]] = []
    console = Console()

    console.print(f"[bold]{len(ds)} chips of {size}x{size}, batch {args.batch}, {args.epochs} epochs, "
                  f"{args.workers} workers, {os.cpu_count()} CPUs[/]")
    rng = np.random.default_rng(0)
    rows.append(("naive loop (read + numpy/scipy augment, main process)",
                 timed_epochs(lambda e: naive_epoch(ds, prep, args.batch, rng), args.epochs)))
    for cache in (False, True):
        loader = ChipLoader(ds, prep, args.batch, workers=args.workers, cache=cache, seed=0,
                            augmenter=BatchAugmenter.from_config(CONFIG, seed=0, db_scale=prep))
        rows.append((f"ChipLoader + BatchAugmenter (CPU), cache={cache}", loader_epochs(loader, args.epochs)))
    try:
        from floodwatch.augment.dali import DaliChipLoader

        dali_cpu = DaliChipLoader(ds, prep, args.batch, CONFIG, workers=args.workers, cache=True, device_id=None)
        rows.append(("ChipLoader + DALI (CPU), cache=True", loader_epochs(dali_cpu, args.epochs)))
    except Exception as exc:  # DALI is an optional extra
        console.print(f"DALI skipped: {escape(str(exc).splitlines()[0])}")  # keeps floodwatch[dali]
    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        gpu = ChipLoader(ds, prep, args.batch, workers=args.workers, cache=True, seed=0, device="cuda",
                         augmenter=BatchAugmenter.from_config(CONFIG, seed=0, db_scale=prep))
        rows.append(("ChipLoader + BatchAugmenter (GPU), cache=True", loader_epochs(gpu, args.epochs, sync)))
        try:
            from floodwatch.augment.dali import DaliChipLoader

            dali_gpu = DaliChipLoader(ds, prep, args.batch, CONFIG, workers=args.workers, cache=True, device_id=0)
            rows.append(("ChipLoader + DALI (GPU), cache=True", loader_epochs(dali_gpu, args.epochs, sync)))
        except Exception as exc:
            console.print(f"DALI GPU skipped: {escape(str(exc).splitlines()[0])}")

    naive = float(np.mean(rows[0][1]))
    table = Table(title="input pipeline, samples/s (ratio to the naive loop)")
    table.add_column("pipeline")
    for e in range(args.epochs):
        table.add_column(f"epoch {e}", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("x naive", justify="right")
    for name, rates in rows:
        mean = float(np.mean(rates))
        table.add_row(name, *(f"{r:.1f}" for r in rates), f"{mean:.1f}", f"{mean / naive:.2f}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        rate = train_step_rate(args.batch, size, device)
        table.add_row(f"training step, ResNet-18 U-Net fwd+bwd ({device})", *[""] * args.epochs, f"{rate:.1f}",
                      f"{rate / naive:.2f}")
    console.print(table)
    console.print("The slower of the loader and the training step sets the pace of training.")


if __name__ == "__main__":
    main()
