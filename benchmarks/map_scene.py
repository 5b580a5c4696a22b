"""Scene mapping throughput and memory: naive torch chip-by-chip loop vs floodwatch's pipeline per back-end.

    python benchmarks/map_scene.py                 # 20,000 x 20,000 px scene (slow on a CPU)
    python benchmarks/map_scene.py --size 2048 --rss-sizes 1024,2048

Every run is a separate subprocess that reports its own wall time and peak RSS (VmHWM), so the
runs neither share caches nor inflate each other's memory. Scenes (synthetic, tiled from a few
2048 px synthetic blocks) and models (untrained ResNet-18 U-Net; ONNX fp32 / int8 when
floodwatch.export can make them) are cached under benchmarks/.cache/.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
BLOCK = 2048


def scene_path(size: int) -> Path:
    """A size x size dual-pol dB GeoTIFF in UTM, written window by window (never whole in memory)."""
    import rasterio
    from rasterio.windows import Window

    from floodwatch.data.synthetic import synth_scene

    path = CACHE / f"scene_{size}.tif"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    base = min(BLOCK, size)
    blocks = [synth_scene(base, base, seed, water_fraction=0.15 + 0.05 * seed).image for seed in range(4)]
    profile = dict(driver="GTiff", width=size, height=size, count=2, dtype="float32", nodata=float("nan"),
                   crs="EPSG:32616", transform=rasterio.Affine(10, 0, 500000, 0, -10, 3850000), tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", predictor=3, bigtiff="yes")
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.descriptions = ("VV", "VH")
        for i, r in enumerate(range(0, size, base)):
            for j, c in enumerate(range(0, size, base)):
                h, w = min(base, size - r), min(base, size - c)
                dst.write(blocks[(i + 2 * j) % 4][:, :h, :w], window=Window(c, r, w, h))
    tmp.rename(path)
    return path


def models(tile: int) -> dict[str, Path]:
    """{'torch': checkpoint, 'onnx': fp32, 'onnx-int8': int8} - whichever can be built here."""
    import torch

    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    CACHE.mkdir(parents=True, exist_ok=True)
    out = {"torch": CACHE / "resnet18_untrained.pt"}
    if not out["torch"].exists():
        torch.manual_seed(0)
        cfg = dict(num_layers=18, in_channels=2, num_classes=2)
        save_checkpoint(out["torch"], build_model(**cfg), model_config=cfg, preprocessing=Preprocessing())
    try:
        from floodwatch.data.synthetic import synth_chips
        from floodwatch.export import export_onnx, quantize_int8
    except ImportError as exc:
        print(f"(no ONNX back-ends: {exc})")
        return out
    fp32, int8 = CACHE / "resnet18_untrained.onnx", CACHE / "resnet18_untrained.int8.onnx"
    try:
        if not fp32.exists():
            export_onnx(out["torch"], fp32)
        out["onnx"] = fp32
        if not int8.exists():
            quantize_int8(fp32, int8, synth_chips(16, size=128))
        out["onnx-int8"] = int8
    except Exception as exc:  # a back-end that cannot be built here is left out of the table, not faked
        print(f"(ONNX export/quantisation unavailable: {type(exc).__name__}: {str(exc)[:200]})")
    return out


# -- the measured runs (each in its own process) ---------------------------------------------------------
def naive(scene: Path, model: Path, out: Path, tile: int) -> dict:
    """Torch eager, one chip at a time: read a tile, predict, write it; no overlap, no threads."""
    import rasterio
    from rasterio.windows import Window

    from floodwatch.inference import load_predictor

    pred = load_predictor(model, "torch")
    with rasterio.open(scene) as src:
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint8", crs=src.crs,
                       transform=src.transform, nodata=255, tiled=True, compress="deflate", bigtiff="yes")
        out.mkdir(parents=True, exist_ok=True)
        with rasterio.open(out / "naive_mask.tif", "w", **profile) as dst:
            for r in range(0, src.height, tile):
                for c in range(0, src.width, tile):
                    h, w = min(tile, src.height - r), min(tile, src.width - c)
                    x = np.full((1, 2, tile, tile), np.nan, np.float32)
                    x[0, :, :h, :w] = src.read(window=Window(c, r, w, h))
                    valid = np.isfinite(x[:, 0])
                    p = pred.predict(pred.preprocessing.apply(x, valid))[0, :h, :w]
                    dst.write(np.where(valid[0, :h, :w], (p >= 0.5).astype(np.uint8), 255), 1,
                              window=Window(c, r, w, h))
        return {"km2": src.width * src.height * abs(src.transform.a * src.transform.e) / 1e6}


def pipeline(scene: Path, model: Path, out: Path, backend: str, tile: int, overlap: int, batch: int) -> dict:
    from floodwatch.inference import load_predictor
    from floodwatch.mapping import map_scene

    kind = "onnx" if backend.startswith("onnx") else "torch"
    result = map_scene(scene, load_predictor(model, kind), out, tile=tile, overlap=overlap, batch=batch,
                       progress=False, backend=backend)
    return {"km2": result.stats["valid_km2"], "tiles": result.stats["tiles"]}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.child == "naive":
        info = naive(Path(args.scene), Path(args.model), Path(args.out), args.tile)
    else:
        info = pipeline(Path(args.scene), Path(args.model), Path(args.out), args.child, args.tile, args.overlap,
                        args.batch)
    info.update(seconds=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb())
    print("RESULT " + json.dumps(info))


def measure(mode: str, scene: Path, model: Path, args) -> dict:
    out = CACHE / "out" / f"{mode}_{scene.stem}"
    cmd = [sys.executable, __file__, "--child", mode, "--scene", str(scene), "--model", str(model), "--out", str(out),
           "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch", str(args.batch),
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{mode} on {scene.name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000, help="scene side in px for the throughput table")
    ap.add_argument("--rss-sizes", default="5000,20000", help="scene sides for the peak-RSS comparison")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8")
    ap.add_argument("--no-naive", action="store_true")
    for hidden in ("--child", "--scene", "--model", "--out"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    available = models(args.tile)
    backends = [b for b in args.backends.split(",") if b in available]
    modes = ([] if args.no_naive else ["naive"]) + backends
    scene = scene_path(args.size)
    print(f"scene {args.size}x{args.size} px ({args.size ** 2 / 1e4:.0f} km² at 10 m), tile {args.tile}, "
          f"overlap {args.overlap}, batch {args.batch}, {args.threads} torch threads, untrained ResNet-18 U-Net")
    rows = {m: measure(m, scene, available["torch" if m == "naive" else m], args) for m in modes}
    base = rows[modes[0]]["km2"] / rows[modes[0]]["seconds"]
    print(f"\n{'run':<22}{'seconds':>10}{'km²/s':>10}{'x ' + modes[0]:>14}{'peak RSS MB':>14}")
    for m, r in rows.items():
        rate = r["km2"] / r["seconds"]
        name = "naive torch loop" if m == "naive" else f"pipeline {m}"
        print(f"{name:<22}{r['seconds']:>10.1f}{rate:>10.2f}{rate / base:>14.2f}{r['peak_rss_mb']:>14.0f}")

    sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    if len(sizes) > 1:
        print("\npeak RSS (MB) by scene size, same settings:")
        print(f"{'run':<22}" + "".join(f"{f'{s}px':>12}" for s in sizes) + f"{'ratio':>10}")
        for m in modes:
            rss = [rows[m]["peak_rss_mb"] if s == args.size else
                   measure(m, scene_path(s), available["torch" if m == "naive" else m], args)["peak_rss_mb"]
                   for s in sizes]
            print(f"{m:<22}" + "".join(f"{v:>12.0f}" for v in rss) + f"{rss[-1] / rss[0]:>10.2f}")
        print(f"(scene pixels grow {sizes[-1] ** 2 / sizes[0] ** 2:.0f}x)")


if __name__ == "__main__":
    main()
