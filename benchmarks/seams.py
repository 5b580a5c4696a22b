"""Does a smaller tile overlap leave seams on real scenes? Mosaics of real ETCI tiles, mapped per overlap.

    python benchmarks/seams.py [-m model.int8.onnx] [--overlaps 0,32,64,128] [--tile 512]

The two ETCI 2021 scenes in ../shared/data are cut into 256 px tiles named by grid position; the largest
block of present neighbours is put back together (Bangladesh 12 x 5 tiles, 3,072 x 1,280 px; North Alabama
3 x 10 tiles, 768 x 2,560 px) and read through the fixed 8-bit map, as the default model reads ETCI.
Each mosaic is mapped with `map`'s sliding window (`--tile`, raised-cosine blending over the overlap) once
per overlap. Printed per overlap: water IoU against the labels, and the share of pixels whose mask differs
from the largest overlap's, within 32 px of a tile border (where seams would show) and elsewhere.
The predictor is `map`'s: INT8 ONNX of the shipped model by default, with `map`'s ONNX Runtime options.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "etci2021"
SHIPPED = ROOT / "src" / "floodwatch" / "models" / "zoo" / "floodwatch-s1" / "model.int8.onnx"
#: scene folder -> (first row, last row + 1, first column, last column + 1) of its largest full block of tiles
BLOCKS = {"bangladesh_20170314t115609": (7, 12, 25, 37), "northal_20190302t234651": (5, 15, 10, 13)}
CHIP = 256
BORDER = 32


def mosaic(folder: Path, block: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (2, H, W) dB, valid (H, W), label (H, W) int64 with 255 = ignore) of the block's tiles."""
    from floodwatch.data import open_dataset

    r0, r1, c0, c1 = block
    image = np.full((2, (r1 - r0) * CHIP, (c1 - c0) * CHIP), np.nan, np.float32)
    valid = np.zeros(image.shape[1:], bool)
    label = np.full(image.shape[1:], 255, np.int64)
    found = 0
    for s in open_dataset(folder, harmonise="fixed"):
        col, row = map(int, re.search(r"_x-(\d+)_y-(\d+)", s.id).groups())
        if r0 <= row < r1 and c0 <= col < c1:
            y, x = (row - r0) * CHIP, (col - c0) * CHIP
            image[:, y:y + CHIP, x:x + CHIP] = s.image
            valid[y:y + CHIP, x:x + CHIP] = s.valid
            label[y:y + CHIP, x:x + CHIP] = s.mask
            found += 1
    if found != (r1 - r0) * (c1 - c0):
        raise SystemExit(f"seams: {folder}: {found} of the block's {(r1 - r0) * (c1 - c0)} tiles found")
    return image, valid, label


def sliding_window(predictor, image: np.ndarray, valid: np.ndarray, tile: int, overlap: int,
                   pad_last_row: bool = True) -> np.ndarray:
    """Water probability (H, W): `map`'s tile grid and blending weight, the whole raster in memory.
    `pad_last_row` as `map` (TileGrid): the last strip stays on the stride and reaches past the raster; False
    moves it back to end at the raster's edge, as `map` did before the eleventh session."""
    from floodwatch.inference.tiling import TileGrid, blend_weight

    grid = TileGrid(image.shape[1], image.shape[2], tile, overlap, pad_last_row=pad_last_row)
    weight = blend_weight(tile, overlap)
    acc = np.zeros(image.shape[1:], np.float64)
    wsum = np.zeros(image.shape[1:], np.float64)
    for r in grid.row_origins:
        for c in grid.col_origins:
            x = np.full((1, image.shape[0], tile, tile), np.nan, np.float32)  # past the raster: no data, as map
            v = np.zeros((1, tile, tile), bool)
            h, w = min(tile, image.shape[1] - r), min(tile, image.shape[2] - c)
            x[0, :, :h, :w] = image[:, r:r + h, c:c + w]
            v[0, :h, :w] = valid[r:r + h, c:c + w]
            p = predictor.predict(predictor.preprocessing.apply(x, v))[0, :h, :w]
            acc[r:r + h, c:c + w] += p * weight[:h, :w]
            wsum[r:r + h, c:c + w] += weight[:h, :w]
    return (acc / wsum).astype(np.float32)


def near_tile_borders(shape: tuple[int, int], tile: int, overlap: int) -> np.ndarray:
    """True within BORDER px of any tile's edge (inside the raster) for this overlap's grid (map's: the last
    strip padded, the last column moved back)."""
    from floodwatch.inference.tiling import tile_origins

    near = np.zeros(shape, bool)
    for axis, size in enumerate(shape):
        for o in tile_origins(size, tile, overlap, pad_last=axis == 0):
            for edge in (o, o + tile):
                if 0 < edge < size:
                    sl = [slice(None), slice(None)]
                    sl[axis] = slice(max(0, edge - BORDER), min(size, edge + BORDER))
                    near[tuple(sl)] = True
    return near


def water_iou(mask: np.ndarray, label: np.ndarray, valid: np.ndarray) -> float:
    scored = valid & (label != 255)
    truth = label == 1
    inter = np.sum(mask & truth & scored)
    union = np.sum((mask | truth) & scored)
    return float(inter / union) if union else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", type=Path, default=SHIPPED)
    ap.add_argument("--overlaps", default="0,32,64,128", help="comma-separated; the largest is the reference")
    ap.add_argument("--tile", type=int, default=512)
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"seams: {SHARED}: not found (the shared data folder)", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"seams: {args.model}: file not found", file=sys.stderr)
        return 2
    overlaps = sorted({int(o) for o in args.overlaps.split(",")})
    from floodwatch.inference import load_predictor
    from floodwatch.mapping import predictor_options

    predictor = load_predictor(args.model, **predictor_options(args.model))
    print(f"{args.model.name}, tile {args.tile}, overlaps {overlaps} (reference {overlaps[-1]})")
    print("| scene | overlap | water IoU | mask differs from the reference: within 32 px of a tile border "
          "| elsewhere |\n|---|---|---|---|---|")
    from floodwatch.inference.tiling import DEFAULT_OVERLAP

    bottom = [f"\nthe last strip, padded past the raster (map) against moved back to its edge, overlap "
              f"{DEFAULT_OVERLAP}, rows from the padded strip's origin down:",
              "| scene | rows | water IoU, padded | water IoU, moved back | mask differs |", "|---|---|---|---|---|"]
    for scene, block in BLOCKS.items():
        image, valid, label = mosaic(SHARED / scene, block)
        masks = {o: sliding_window(predictor, image, valid, args.tile, o) >= 0.5 for o in overlaps}
        bottom.append(bottom_rows(predictor, scene, image, valid, label, args.tile, masks.get(DEFAULT_OVERLAP)))
        reference = masks[overlaps[-1]]
        for o in overlaps:
            near = near_tile_borders(valid.shape, args.tile, o) & valid
            far = ~near & valid
            differs = masks[o] != reference
            print(f"| {scene.split('_')[0]} {image.shape[2]}x{image.shape[1]} | {o} | "
                  f"{water_iou(masks[o], label, valid):.4f} | {differs[near].mean():.4%} | "
                  f"{differs[far].mean():.4%} |", flush=True)
    print("\n".join(bottom))
    return 0


def bottom_rows(predictor, scene: str, image: np.ndarray, valid: np.ndarray, label: np.ndarray, tile: int,
                padded: np.ndarray | None = None) -> str:
    """One table row: `map`'s padded last strip against the moved-back one it replaced, on the rows the padded
    strip predicts (from its origin to the raster's bottom), at map's overlap: water IoU there and the share of
    changed pixels. `padded`: the mask map's grid already gave at that overlap, if the caller has it."""
    from floodwatch.inference.tiling import DEFAULT_OVERLAP, tile_origins

    height = image.shape[1]
    start = tile_origins(height, tile, DEFAULT_OVERLAP, pad_last=True)[-1]
    if start + tile <= height:  # the grid ends on the raster's edge: nothing is padded
        return f"| {scene.split('_')[0]} | - | no padded strip at this size | | |"
    if padded is None:
        padded = sliding_window(predictor, image, valid, tile, DEFAULT_OVERLAP) >= 0.5
    moved = sliding_window(predictor, image, valid, tile, DEFAULT_OVERLAP, pad_last_row=False) >= 0.5
    rows = np.s_[start:, :]
    ok = valid[rows]
    return (f"| {scene.split('_')[0]} {image.shape[2]}x{height} | {start}-{height} | "
            f"{water_iou(padded[rows], label[rows], ok):.4f} | {water_iou(moved[rows], label[rows], ok):.4f} | "
            f"{(padded[rows] != moved[rows])[ok].mean():.4%} |")


if __name__ == "__main__":
    sys.exit(main())
