"""Terrain exclusion on a synthetic scene with hills, radar shadows, dark dry ground and a flooded valley.

    python benchmarks/terrain.py                  # 2048 x 2048 px at 10 m (419 km²), DEM at 30 m
    python benchmarks/terrain.py --size 1024 --no-onnx

Two questions, side by side in one run:
1. False water: a pointwise "dark = water" detector (VV < -15 dB, the failure terrain is for) mapped
   with and without exclusion; false-water and missed-flood km² against the planted flood.
2. Runtime overhead of terrain, relative to mapping the same scene with a real model (untrained
   ResNet-18 U-Net, ONNX fp32 - the fastest back-end, so the strictest ratio; speed does not depend
   on the weights), and relative to the near-free threshold detector. On a shared machine wall time
   swings with other jobs, so CPU seconds of the process (all threads) are reported beside it.

The SAR is dark (-22 dB) where the valley is flooded (ground < 2.5 m above the river bed), in radar
shadow (planted by a line-of-sight scan along the rows of the 10 m DEM for a sensor due west at 38°,
not by floodwatch's rotated 30 m computation) and on a dry plateau (sand/tarmac: high above drainage).
The scene's tags give the look geometry (heading 0°, incidence 38°). Inputs are cached in
benchmarks/.cache/terrain_<size>/. No data needed. Prints two markdown tables (false water per variant; the
real model's CPU overhead per variant). On 2 cores: ~10 s at --size 512 --no-onnx, ~30 s at 512 with the
model (its ONNX export is cached in benchmarks/.cache/), minutes at the default 2048.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
PIXEL, DEM_PIXEL, MARGIN_M = 10.0, 30.0, 1500.0
CRS, X0, Y0 = "EPSG:32633", 400000.0, 5300000.0
INCIDENCE = 38.0
LAND_DB, DARK_DB = -8.0, -22.0
MIN_SIZE = 128


def dem_surface(x: np.ndarray, y: np.ndarray, extent_m: float, seed: int = 7):
    """(ground, river-valley ground without hills, plateau mask) at metre coordinates x (east), y (south)."""
    rng = np.random.default_rng(seed)
    river = 0.5 * extent_m + 0.12 * extent_m * np.sin(2 * np.pi * y / extent_m)
    valley = 20.0 + 0.0004 * y + 0.004 * np.abs(x - river)  # a broad floodplain, 0.4 % side slopes
    ground = valley.copy()
    for i in range(14):  # 8 steep hills (flanks up to 50-68 degrees: shadow at 38), 6 gentle ones
        cx, cy = rng.uniform(-0.05, 1.05) * extent_m, rng.uniform(-0.05, 1.05) * extent_m
        h, s = (rng.uniform(250, 450), rng.uniform(80, 140)) if i < 8 else (rng.uniform(100, 300),
                                                                            rng.uniform(200, 400))
        ground += h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s ** 2))
    px, py = 0.15 * extent_m, 0.2 * extent_m  # a broad, flat-topped mesa (dry, far above the river)
    mesa = 60.0 / (1.0 + np.exp((np.hypot(x - px, y - py) - 0.09 * extent_m) / 40.0))
    ground += mesa
    plateau = mesa > 55.0
    return ground.astype(np.float32), valley.astype(np.float32), plateau


def build(size: int) -> dict[str, Path]:
    import rasterio
    from rasterio.transform import from_origin

    out = CACHE / f"terrain_{size}"
    paths = {k: out / f"{k}.tif" for k in ("dem", "hand", "scene", "truth")}
    if all(p.exists() for p in paths.values()):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    extent = size * PIXEL
    # DEM at 30 m over the scene plus a margin (hills outside still cast shadows in)
    n = int(math.ceil((extent + 2 * MARGIN_M) / DEM_PIXEL))
    c = (np.arange(n) + 0.5) * DEM_PIXEL - MARGIN_M
    dem30, _, _ = dem_surface(c[None, :], c[:, None], extent)
    dem_transform = from_origin(X0 - MARGIN_M, Y0 + MARGIN_M, DEM_PIXEL, DEM_PIXEL)
    with rasterio.open(paths["dem"], "w", driver="GTiff", width=n, height=n, count=1, dtype="float32", crs=CRS,
                       transform=dem_transform, tiled=True, compress="deflate") as ds:
        ds.write(dem30, 1)
    # HAND once from that DEM (stands in for the published GLO-30 HAND)
    from floodwatch.mapping.terrain import hand_from_dem
    from floodwatch.mapping.terrain_sources import Grid

    hand = hand_from_dem(dem30, Grid(CRS, dem_transform, n, n), 1e6 / DEM_PIXEL ** 2)
    with rasterio.open(paths["hand"], "w", driver="GTiff", width=n, height=n, count=1, dtype="float32", crs=CRS,
                       transform=dem_transform, nodata=float("nan"), tiled=True, compress="deflate") as ds:
        ds.write(hand, 1)
    # the 10 m scene: ground from the same surface (with margin to the west for the shadow scan)
    m = int(MARGIN_M / PIXEL)
    xs = (np.arange(size + m) + 0.5) * PIXEL - MARGIN_M
    ys = (np.arange(size) + 0.5) * PIXEL
    ground, valley, plateau = dem_surface(xs[None, :], ys[:, None], extent)
    g = ground.astype(np.float64) + xs[None, :] / math.tan(math.radians(INCIDENCE))
    prev = np.maximum.accumulate(g, axis=1)
    shadow = np.zeros_like(g, bool)
    shadow[:, 1:] = prev[:, :-1] > g[:, 1:] + 0.01
    bed = 20.0 + 0.0004 * ys[:, None]
    flood = ((valley - bed) < 2.5) & ((ground - valley) < 0.5)
    dark = (flood | shadow | plateau)[:, m:]
    flood, shadow = flood[:, m:], shadow[:, m:]
    vv = np.where(dark, DARK_DB, LAND_DB).astype(np.float32)
    transform = from_origin(X0, Y0, PIXEL, PIXEL)
    with rasterio.open(paths["scene"], "w", driver="GTiff", width=size, height=size, count=2, dtype="float32",
                       crs=CRS, transform=transform, tiled=True, compress="deflate") as ds:
        ds.write(np.stack([vv, vv - 6.0]))
        ds.descriptions = ("VV", "VH")
        ds.update_tags(PLATFORM_HEADING="0", INCIDENCE_ANGLE=str(INCIDENCE))
    truth = (flood.astype(np.uint8) | (shadow & ~flood).astype(np.uint8) * 2
             | (plateau[:, m:] & ~flood & ~shadow).astype(np.uint8) * 4)
    with rasterio.open(paths["truth"], "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                       crs=CRS, transform=transform, tiled=True, compress="deflate") as ds:
        ds.write(truth, 1)  # 1 flood, 2 shadow, 4 dark plateau
    return paths


def score(mask_path: Path, truth: np.ndarray) -> dict[str, float]:
    import rasterio

    with rasterio.open(mask_path) as ds:
        mask = ds.read(1)
    km2 = PIXEL * PIXEL / 1e6
    flood = mask == 1
    return {"false_water_km2": float((flood & (truth != 1)).sum() * km2),
            "false_in_shadow_km2": float((flood & (truth == 2)).sum() * km2),
            "false_on_plateau_km2": float((flood & (truth == 4)).sum() * km2),
            "missed_flood_km2": float((~flood & (truth == 1)).sum() * km2),
            "flood_km2": float(flood.sum() * km2)}


def reference_onnx() -> Path:
    """map_scene.py's ResNet-18 U-Net, untrained (speed does not depend on the weights), as ONNX fp32; cached."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import map_scene

    from floodwatch.export import export_onnx

    checkpoint = map_scene.train_reference(18, 0)
    onnx = checkpoint.with_suffix(".onnx")
    if not onnx.exists():
        export_onnx(checkpoint, onnx, nvinfer_config=False)
    return onnx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-onnx", action="store_true", help="Skip the real-model timing.")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    if args.size < MIN_SIZE:
        ap.error(f"--size: {args.size} px; at least {MIN_SIZE} (hills and valley need room)")
    if args.threads < 1:
        ap.error(f"--threads: {args.threads}; at least 1")
    sys.path.insert(0, str(ROOT.parent))
    import rasterio

    from floodwatch.mapping import map_scene
    from floodwatch.mapping.terrain import Terrain
    from tests.mapping.helpers import ThresholdPredictor

    t0 = time.perf_counter()
    paths = build(args.size)
    print(f"inputs ready in {time.perf_counter() - t0:.1f} s ({args.size}² px at {PIXEL:g} m, DEM {DEM_PIXEL:g} m)")
    with rasterio.open(paths["truth"]) as ds:
        truth = ds.read(1)
    tiling = dict(tile=512, overlap=64, batch=4, progress=False)
    out = CACHE / f"terrain_{args.size}" / "out"
    variants = {"no terrain": None,
                "DEM + HAND raster": Terrain(dem=paths["dem"], hand=paths["hand"]),
                "DEM, HAND from DEM (pysheds)": Terrain(dem=paths["dem"])}
    rows = []
    for name, terrain in variants.items():
        t, c = time.perf_counter(), time.process_time()
        r = map_scene(paths["scene"], ThresholdPredictor(), out / name.split()[0], terrain=terrain, **tiling)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        s = score(r.paths["mask"], truth)
        stage = r.stats["terrain"]["cpu_s"] if terrain else 0.0
        rows.append((name, s, wall, cpu, stage, r.stats["excluded_water_km2"]))
    planted = {k: float((truth == v).sum() * PIXEL * PIXEL / 1e6) for k, v in (("flood", 1), ("shadow", 2),
                                                                                 ("plateau", 4))}
    print(f"\nplanted: flood {planted['flood']:.2f} km², dark shadow {planted['shadow']:.2f} km², "
          f"dark dry plateau {planted['plateau']:.2f} km²")
    print("\n| threshold detector | false water km² | in shadow | on plateau | missed flood km² | excluded km² "
          "| wall s | CPU s | terrain stage CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s, wall, cpu, stage, excl in rows:
        print(f"| {name} | {s['false_water_km2']:.2f} | {s['false_in_shadow_km2']:.2f} | "
              f"{s['false_on_plateau_km2']:.2f} | {s['missed_flood_km2']:.2f} | {excl:.2f} | {wall:.1f} | {cpu:.1f} | "
              f"{stage:.2f} |")
    import subprocess

    probe = ("import time; t, c = time.perf_counter(), time.process_time(); import pysheds.grid; "
             "print(time.perf_counter() - t, time.process_time() - c)")
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split()
    wall_s, cpu_s = (float(v) for v in got) if len(got) == 2 else (float("nan"), float("nan"))
    print(f"pysheds import in a fresh process (numba cache warm): {wall_s:.1f} s wall, {cpu_s:.1f} s CPU; paid once "
          f"per process by HAND-from-DEM (inside its terrain stage when it is the first use)")
    base = rows[0][1]["false_water_km2"]
    for name, s, *_ in rows[1:]:
        print(f"false water with {name}: {s['false_water_km2']:.2f} km² vs {base:.2f} km² without "
              f"({s['false_water_km2'] / base:.3f}×)" if base else "")
    if args.no_onnx:
        return
    import torch

    torch.set_num_threads(args.threads)
    from floodwatch.inference import load_predictor

    pred = load_predictor(reference_onnx(), "onnx")
    print("\n| ONNX fp32 ResNet-18 U-Net | wall s | CPU s | CPU overhead vs no terrain | terrain stage CPU s "
          "(% of mapping CPU) |")
    print("|---|---|---|---|---|")
    base_cpu = None
    for name, terrain in variants.items():
        t, c = time.perf_counter(), time.process_time()
        r = map_scene(paths["scene"], pred, out / ("onnx-" + name.split()[0]), terrain=terrain, **tiling)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        stage = r.stats["terrain"]["cpu_s"] if terrain else 0.0
        base_cpu = cpu if base_cpu is None else base_cpu
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {100 * (cpu - base_cpu) / base_cpu:+.1f} % | "
              f"{stage:.2f} ({100 * stage / base_cpu:.1f} %) |", flush=True)


if __name__ == "__main__":
    main()
