"""How far can one pixel's (VV, VH) go on each labelled event? An oracle ceiling, not an accuracy figure.

    python benchmarks/pixel_ceiling.py [--bin-db 0.25] [--out ceiling.md]

For every labelled event in ../shared/data (the Sen1Floods11 events, ETCI 2021 North Alabama and Bangladesh
through the fixed 8-bit map that the default model reads them with), the best rule that looks only at one
pixel's VV and VH is fitted on that event's own labels:
- `best VV threshold`: water where VV <= t, the t with the highest water IoU;
- `(VV, VH) ceiling`: the (VV, VH) plane cut into bins of `--bin-db` dB, the bins taken in order of their
  water share, and the prefix with the highest IoU kept. No pixel-wise method (a threshold, a mixture model,
  a per-pixel classifier) can beat it on that event, whatever it was trained on.

A model that scores near the ceiling on an unseen event has taken what the pixel values give; going past it
needs spatial context (shape, texture, neighbours). The table beside it: per-chip Otsu (VH), as in
generalisation.py. Only labelled, valid pixels count (the scorer's pixels).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from floodwatch.data.sample import IGNORE_INDEX, WATER

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ETCI = {"NorthAL": SHARED / "etci2021" / "northal_20190302t234651",
        "Bangladesh": SHARED / "etci2021" / "bangladesh_20170314t115609"}
LOW, HIGH = -45.0, 15.0  # dB; values outside are put in the edge bins


def pixels_by_event() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{event: (vv, vh, water)} of the labelled, valid pixels."""
    from floodwatch.data import open_dataset

    out: dict[str, list] = {}
    sources = [(s.region, s) for s in open_dataset(SHARED / "sen1floods11")]
    for event, path in ETCI.items():
        sources += [(event, s) for s in open_dataset(path, harmonise="fixed")]
    for event, s in sources:
        if s.mask is None:
            continue
        keep = s.valid & (s.mask != IGNORE_INDEX) & np.isfinite(s.image).all(axis=0)
        if keep.any():
            out.setdefault(event, []).append((s.image[0][keep], s.image[1][keep], s.mask[keep] == WATER))
    return {e: tuple(np.concatenate(parts) for parts in zip(*chips)) for e, chips in out.items()}


def best_threshold_iou(values: np.ndarray, water: np.ndarray, bin_db: float) -> float:
    """max over t of IoU(values <= t, water), t on a bin_db grid."""
    edges = np.arange(LOW, HIGH + bin_db, bin_db)
    idx = np.clip(np.digitize(values, edges), 0, len(edges))
    wet = np.bincount(idx[water], minlength=len(edges) + 1).cumsum()
    dry = np.bincount(idx[~water], minlength=len(edges) + 1).cumsum()
    return float(np.max(wet / (water.sum() + dry))) if water.any() else float("nan")


def pixel_ceiling_iou(vv: np.ndarray, vh: np.ndarray, water: np.ndarray, bin_db: float) -> float:
    """The highest water IoU of any rule on one pixel's (VV, VH), binned at bin_db, fitted on these labels."""
    if not water.any():
        return float("nan")
    n = int(round((HIGH - LOW) / bin_db))
    i = np.clip(((vv - LOW) / bin_db).astype(np.int64), 0, n - 1)
    j = np.clip(((vh - LOW) / bin_db).astype(np.int64), 0, n - 1)
    cell = i * n + j
    wet = np.bincount(cell[water], minlength=n * n).astype(np.float64)
    dry = np.bincount(cell[~water], minlength=n * n).astype(np.float64)
    seen = (wet + dry) > 0
    wet, dry = wet[seen], dry[seen]
    order = np.argsort(-wet / (wet + dry), kind="stable")
    return float(np.max(np.cumsum(wet[order]) / (water.sum() + np.cumsum(dry[order]))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-db", type=float, default=0.25, help="bin width in dB")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"pixel_ceiling: {SHARED}: not found (the shared data folder)", file=sys.stderr)
        return 2
    if not args.bin_db > 0:
        print("pixel_ceiling: --bin-db: must be > 0", file=sys.stderr)
        return 2
    lines = ["| event | labelled pixels | water share | best VV threshold (oracle) | (VV, VH) ceiling (oracle) |",
             "|---|---|---|---|---|"]
    for event, (vv, vh, water) in sorted(pixels_by_event().items()):
        if not water.any():
            lines.append(f"| {event} | {water.size:,} | 0 | (no water) | (no water) |")
            continue
        lines.append(f"| {event} | {water.size:,} | {water.mean():.3f} | "
                     f"{best_threshold_iou(vv, water, args.bin_db):.3f} | "
                     f"{pixel_ceiling_iou(vv, vh, water, args.bin_db):.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
