"""Scene mapping end to end: naive torch chip-by-chip loop against floodwatch's pipeline per back-end.

    python benchmarks/map_scene.py --real-size          # 25,000 x 16,000 px scene, the acceptance run
    python benchmarks/map_scene.py --size 4096 --rss-sizes ""           # a quick profile
    python benchmarks/map_scene.py --real-size -m shipped.pt            # the shipped default model

The scene is synthetic dual-pol dB (tiles of `synth_scene` blocks) with no-data wedges along the swath
edges (20% of the raster), a few large lakes, and its truth mask; written once under benchmarks/.cache/.
The default model is `-m/--model` (a floodwatch checkpoint, exported to ONNX fp32 and INT8 here) or, when
none is given, the README's ResNet-10 reference U-Net fitted for a few hundred steps on other synthetic
scenes, so IoU against the truth and the INT8 loss mean something. `--compare 18` adds a ResNet-18 fitted
the same way. In the same run the naive torch loop maps a 4,096² crop of the scene for the ratio.

Every run is a separate subprocess reporting its wall time and peak RSS (VmHWM), so runs share no caches
and do not inflate each other's memory. For scenes large enough that `map` makes the probability COG in a
helper process, that process's CPU time is added, and the peak RSS is the larger of this process's VmHWM and
the largest sum of both processes' RSS sampled every 0.1 s. The last line, for machines, is for the default
model's INT8 run:
    RESULT seconds=S km2_per_s=K peak_rss_mb=M ratio_vs_naive=R
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from floodwatch.inference.tiling import DEFAULT_OVERLAP

CACHE = Path(__file__).resolve().parent / ".cache"
REAL = (16000, 25000)  # rows x columns of an IW GRD scene at 10 m
CROP = 4096
BLOCK = 2048
NODATA_SHARE = 0.2
STAGES = ("read", "preprocess", "predict", "blend", "write", "overviews", "cog", "vectorise", "stats")


# -- the scene --------------------------------------------------------------------------------------------
def _blocks(block: int):
    from floodwatch.data.synthetic import synth_scene

    land = [synth_scene(block, block, 10 + s, water_fraction=0.04 + 0.04 * s, looks=4.4) for s in range(6)]
    lake = synth_scene(block, block, 99, water_fraction=1.0, looks=4.4).image
    return [(b.image, b.mask == 1) for b in land], lake


def _lakes(height: int, width: int) -> np.ndarray:
    """(n, 4) ellipses (row, col, radius rows, radius cols): large water bodies, a few per scene."""
    rng = np.random.default_rng(7)
    n = max(2, round(height * width / 60e6))
    side = min(height, width)
    centre = np.column_stack([rng.uniform(0.15, 0.85, n) * height, rng.uniform(0.25, 0.75, n) * width])
    radii = rng.uniform(0.03, 0.07, (n, 2)) * side
    return np.column_stack([centre, radii])


def valid_window(height: int, width: int, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> np.ndarray:
    """No-data wedges like an IW swath in map geometry: two triangles, NODATA_SHARE of the raster."""
    c1 = width if c1 is None else c1
    rows = np.arange(r0, r1, dtype=np.float32)[:, None] / height
    cols = np.arange(c0, c1, dtype=np.float32)[None, :]
    left = NODATA_SHARE * width * (1 - rows)
    right = width - NODATA_SHARE * width * rows
    return (cols >= left) & (cols < right)


def scene_path(height: int, width: int) -> tuple[Path, Path]:
    """(scene, truth) GeoTIFFs of height x width px in UTM, written strip by strip (never whole in memory)."""
    import rasterio
    from rasterio.windows import Window

    path, truth = CACHE / f"scene_{height}x{width}.tif", CACHE / f"truth_{height}x{width}.tif"
    if path.exists() and truth.exists():
        return path, truth
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    block = min(BLOCK, max(height, width))
    blocks, lake_db = _blocks(block)
    lakes = _lakes(height, width)
    geo = dict(driver="GTiff", width=width, height=height, crs="EPSG:32616", tiled=True, blockxsize=512,
               blockysize=512, compress="deflate", zlevel=1, bigtiff="yes", num_threads="all_cpus",
               transform=rasterio.Affine(10, 0, 500000, 0, -10, 3850000))
    tmp, tmp_truth = path.with_suffix(".part.tif"), truth.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", count=2, dtype="float32", nodata=float("nan"), predictor=3, **geo) as dst, \
            rasterio.open(tmp_truth, "w", count=1, dtype="uint8", nodata=255, **geo) as tru:
        dst.descriptions = ("VV", "VH")
        for r0 in range(0, height, block):
            r1 = min(r0 + block, height)
            n = r1 - r0
            image = np.empty((2, n, width), np.float32)
            water = np.empty((n, width), bool)
            for k, c0 in enumerate(range(0, width, block)):
                w = min(block, width - c0)
                img, wat = blocks[(3 * (r0 // block) + 2 * k) % len(blocks)]
                image[:, :, c0:c0 + w] = img[:, :n, :w]
                water[:, c0:c0 + w] = wat[:n, :w]
            for rc, cc, rr, rcol in lakes:
                a, b = max(int(rc - rr), r0), min(int(rc + rr) + 1, r1)
                c, d = max(int(cc - rcol), 0), min(int(cc + rcol) + 1, width)
                if a >= b:
                    continue
                yy = (np.arange(a, b, dtype=np.float32)[:, None] - rc) / rr
                xx = (np.arange(c, d, dtype=np.float32)[None, :] - cc) / rcol
                inside = yy ** 2 + xx ** 2 <= 1
                sub = image[:, a - r0:b - r0, c:d]
                tex = lake_db[:, (np.arange(a, b) % block)[:, None], (np.arange(c, d) % block)[None, :]]
                sub[:, inside] = tex[:, inside]
                water[a - r0:b - r0, c:d] |= inside
            valid = valid_window(height, width, r0, r1)
            image[:, ~valid] = np.nan
            dst.write(image, window=Window(0, r0, width, n))
            tru.write(np.where(valid, water.astype(np.uint8), np.uint8(255))[None], window=Window(0, r0, width, n))
    tmp.rename(path)
    tmp_truth.rename(truth)
    print(f"(wrote {path.name} in {time.perf_counter() - t0:.0f} s)", flush=True)
    return path, truth


def crop_path(scene: Path, size: int) -> Path:
    """A size x size crop from the middle of `scene` (for the naive loop)."""
    import rasterio
    from rasterio.windows import Window

    out = scene.with_name(f"{scene.stem}_crop{size}.tif")
    if out.exists():
        return out
    with rasterio.open(scene) as src:
        r0, c0 = (src.height - size) // 2, (src.width - size) // 2
        win = Window(c0, r0, size, size)
        profile = {**src.profile, "width": size, "height": size, "transform": src.window_transform(win)}
        tmp = out.with_suffix(".part.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.descriptions = src.descriptions
            dst.write(src.read(window=win))
    tmp.rename(out)
    return out


# -- the models -------------------------------------------------------------------------------------------
def train_reference(num_layers: int, steps: int) -> Path:
    """The README's U-Net with a ResNet-`num_layers` encoder, fitted for `steps` Adam steps on 96 px crops of
    synthetic scenes (other seeds than the benchmark scene's): enough to map synthetic water well."""
    import torch

    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.data.synthetic import synth_scene
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    path = CACHE / f"resnet{num_layers}_synth{steps}.pt"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    cfg = dict(num_layers=num_layers, in_channels=2, num_classes=2)
    model, prep = build_model(**cfg), Preprocessing()
    scenes = [synth_scene(512, 512, 200 + s, looks=4.4) for s in range(8)]
    x_all = np.stack([prep.apply(s.image) for s in scenes])
    y_all = np.stack([np.where(s.valid, s.mask, -100) for s in scenes]).astype(np.int64)
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        idx, r, c = rng.integers(0, len(scenes), 8), rng.integers(0, 416, 8), rng.integers(0, 416, 8)
        x = torch.from_numpy(np.stack([x_all[i, :, a:a + 96, b:b + 96] for i, a, b in zip(idx, r, c)]))
        y = torch.from_numpy(np.stack([y_all[i, a:a + 96, b:b + 96] for i, a, b in zip(idx, r, c)]))
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(path, model.eval(), model_config=cfg, preprocessing=prep)
    last = f", last loss {loss.item():.3f}" if steps else " (untrained: speed only, IoU means nothing)"
    print(f"(fitted ResNet-{num_layers} reference, {steps} steps{last}, {time.perf_counter() - t0:.0f} s)", flush=True)
    return path


def onnx_models(checkpoint: Path) -> dict[str, Path]:
    """{'torch' and 'torch-fp32': checkpoint, 'onnx': fp32, 'onnx-int8': int8}, exported once per checkpoint
    content."""
    from floodwatch.data.synthetic import synth_scene
    from floodwatch.export import export_onnx, quantize_int8

    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:10]
    fp32, int8 = CACHE / f"{checkpoint.stem}_{digest}.onnx", CACHE / f"{checkpoint.stem}_{digest}.int8.onnx"
    if not fp32.exists():
        export_onnx(checkpoint, fp32)
    if not int8.exists():
        calib = np.stack([synth_scene(256, 256, 300 + s, looks=4.4).image for s in range(16)])
        quantize_int8(fp32, int8, calib)
    return {"torch": checkpoint, "torch-fp32": checkpoint, "onnx": fp32, "onnx-int8": int8}


# -- the measured runs (each in its own process) ---------------------------------------------------------
def naive(scene: Path, model: Path, out: Path, tile: int) -> dict:
    """Torch eager, one chip at a time: read a tile, predict, write it; no overlap, no threads, and the model in
    torch's default (NCHW) layout, float32, with its BatchNorm layers, as a plain loop has it: the yardstick the
    issue measured, kept fixed."""
    import rasterio
    from rasterio.windows import Window

    from floodwatch.inference import load_predictor

    pred = load_predictor(model, "torch", channels_last=False, fold_batch_norm=False)
    valid_px = 0
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
                    valid_px += int(valid.sum())
                    p = pred.predict(pred.preprocessing.apply(x, valid))[0, :h, :w]
                    dst.write(np.where(valid[0, :h, :w], (p >= 0.5).astype(np.uint8), 255), 1,
                              window=Window(c, r, w, h))
        return {"km2": valid_px * abs(src.transform.a * src.transform.e) / 1e6}


def pipeline(scene: Path, model: Path, out: Path, backend: str, args) -> dict:
    from floodwatch.inference import load_predictor
    from floodwatch.mapping import map_scene, predictor_options

    kind = "onnx" if backend.startswith("onnx") else "torch"
    kwargs = predictor_options(model, kind)  # what `floodwatch map` uses
    if backend == "torch-fp32":  # map's torch predictor without bfloat16, to see what bfloat16 buys
        kwargs["bf16_cpu"] = False
    if kind == "onnx" and args.ort_threads:
        kwargs["threads"] = args.ort_threads
    if kind == "onnx" and args.ort_spinning != "default":
        kwargs["spinning"] = args.ort_spinning == "on"
    if args.child_downsample > 1:
        kwargs["downsample"] = args.child_downsample  # `floodwatch map --downsample N`
    if args.cog_helper == "thread":
        import floodwatch.mapping.pipeline as mapping_pipeline

        mapping_pipeline.COG_PROCESS_PIXELS = float("inf")
    result = map_scene(scene, load_predictor(model, kind, **kwargs), out, tile=args.tile, overlap=args.overlap,
                       batch=args.batch, progress=False, backend=backend, chunk_tiles=args.chunk_tiles)
    s = result.stats
    return {"km2": s["valid_km2"], "tiles": s["tiles"], "tiles_predicted": s["tiles_predicted"],
            "stage_seconds": s["stage_seconds"], "mask": str(result.paths["mask"])}


class RssSampler:
    """Samples, every 0.1 s, this process's RSS plus its child processes' (map's COG helper), and keeps the
    largest sum: the pair's peak. (ru_maxrss of children would not do: on Linux it carries the RSS a forked
    child had before exec, i.e. this process's.)"""

    def __init__(self):
        import threading

        self.peak_mb = self.child_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tasks = Path("/proc/self/task")
        while not self._done.wait(0.1):
            try:
                kids = {k for t in tasks.iterdir() for k in (t / "children").read_text().split()}
            except OSError:
                kids = set()
            child = sum(status_mb(k, "VmRSS") or 0.0 for k in kids)
            self.child_mb = max(self.child_mb, child)
            self.peak_mb = max(self.peak_mb, (status_mb("self", "VmRSS") or 0.0) + child)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def status_mb(pid: str, key: str) -> float | None:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) in MB; None where it cannot be read (gone, not Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak."""
    peak = status_mb("self", "VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    together = RssSampler()
    t0 = time.perf_counter()
    if args.child == "naive":
        info = naive(Path(args.scene), Path(args.model_file), Path(args.out), args.tile)
    else:
        info = pipeline(Path(args.scene), Path(args.model_file), Path(args.out), args.child, args)
    seconds = time.perf_counter() - t0
    together.stop()
    # map_scene's COG helper process (large scenes) counts too: its CPU, and its memory beside this process's
    use, helper = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    info.update(seconds=seconds, peak_rss_mb=max(peak_rss_mb(), together.peak_mb), helper_rss_mb=together.child_mb,
                cpu_s=use.ru_utime + use.ru_stime + helper.ru_utime + helper.ru_stime)
    print("RESULT " + json.dumps(info))


def measure(mode: str, scene: Path, model: Path, args, label: str, downsample: int = 1) -> dict:
    out = CACHE / "out" / (f"{label}_{mode}_{scene.stem}" + (f"_d{downsample}" if downsample > 1 else ""))
    cmd = [sys.executable, __file__, "--child", mode, "--scene", str(scene), "--model-file", str(model),
           "--out", str(out), "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch", str(args.batch),
           "--threads", str(args.threads), "--chunk-tiles", str(args.chunk_tiles),
           "--ort-threads", str(args.ort_threads or 0), "--ort-spinning", args.ort_spinning,
           "--cog-helper", args.cog_helper,
           "--child-downsample", str(downsample)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{label} {mode} on {scene.name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[-1][7:])


def iou_against_truth(mask: Path, truth: Path) -> float:
    """Water IoU of a flood_mask.tif against the scene's truth, window by window, over valid pixels."""
    import rasterio
    from rasterio.windows import Window

    inter = union = 0
    with rasterio.open(mask) as m, rasterio.open(truth) as t:
        for r0 in range(0, t.height, 1024):
            win = Window(0, r0, t.width, min(1024, t.height - r0))
            a, b = m.read(1, window=win), t.read(1, window=win)
            ok = (a != 255) & (b != 255)
            pa, pb = ok & (a == 1), ok & (b == 1)
            inter += int((pa & pb).sum())
            union += int((pa | pb).sum())
    return inter / union if union else float("nan")


# -- the report -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-size", action="store_true", help=f"the {REAL[1]:,} x {REAL[0]:,} px scene")
    ap.add_argument("--size", type=int, default=4096, help="square scene side in px (without --real-size)")
    ap.add_argument("--rss-sizes", default="5000", help="square sides whose peak RSS is compared with the main scene's "
                                                         "(default model, INT8 and fp32 ONNX); '' for none")
    ap.add_argument("-m", "--model", type=Path, default=None,
                    help="default model checkpoint (.pt); none: the ResNet-10 reference fitted here")
    ap.add_argument("--compare", default="18", help="ResNet depths fitted the same way for comparison ('' none)")
    ap.add_argument("--backends", default="onnx-int8,onnx,torch", help="back-ends of the default model: onnx-int8, "
                    "onnx, torch (as `map` runs it: bfloat16 where the CPU has it), torch-fp32")
    ap.add_argument("--compare-backends", default="onnx-int8", help="back-ends of the comparison models")
    ap.add_argument("--fit-steps", type=int, default=150, help="Adam steps of the reference models")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="default: map's")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--ort-threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    ap.add_argument("--ort-spinning", choices=("default", "on", "off"), default="default",
                    help="whether idle ONNX Runtime threads busy-wait (default: as `floodwatch map`, off)")
    ap.add_argument("--chunk-tiles", type=int, default=8, help="tile columns per pipeline window")
    ap.add_argument("--cog-helper", choices=("auto", "thread"), default="auto",
                    help="where map makes the probability COG beside vectorising: auto (as `map`: a process for "
                         "scenes of 10,000² px or more) or always a thread")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--child-downsample", type=int, default=1, help=argparse.SUPPRESS)  # the child's factor
    ap.add_argument("--downsamples", default="1", help="grid factors the default model's back-ends run at, "
                    "e.g. '1,2' (`floodwatch map --downsample`); comparison models run at 1")
    for hidden in ("--child", "--scene", "--model-file", "--out"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    shape = REAL if args.real_size else (args.size, args.size)
    scene, truth = scene_path(*shape)
    default = args.model or train_reference(10, args.fit_steps)
    models = {"default": onnx_models(default)}
    for depth in [int(d) for d in args.compare.split(",") if d]:
        models[f"resnet{depth}"] = onnx_models(train_reference(depth, args.fit_steps))
    print(f"scene {shape[1]:,} x {shape[0]:,} px ({shape[0] * shape[1] / 1e4:,.0f} km² at 10 m, "
          f"{100 * NODATA_SHARE:.0f}% no data), tile {args.tile}, overlap {args.overlap}, batch {args.batch}, "
          f"windows of {args.chunk_tiles} tiles, {args.threads} torch threads, "
          f"ORT threads {args.ort_threads or 'default'}, spinning {args.ort_spinning}, COG helper {args.cog_helper}; "
          f"default model {default.name}",
          flush=True)

    runs: dict[str, dict] = {}
    if not args.no_naive:
        crop = crop_path(scene, min(CROP, *shape))
        runs["naive torch loop (crop)"] = measure("naive", crop, models["default"]["torch"], args, "default")
    factors = list(dict.fromkeys(int(f) for f in args.downsamples.split(",") if f))
    if not factors or min(factors) < 1:
        raise SystemExit(f"--downsamples: whole numbers >= 1, comma-separated (got '{args.downsamples}')")
    for label, files in models.items():
        backends = [b for b in (args.backends if label == "default" else args.compare_backends).split(",") if b]
        for b in backends:
            for factor in factors if label == "default" else [1]:
                r = measure(b, scene, files[b], args, label, factor)
                r["iou"] = iou_against_truth(Path(r["mask"]), truth)
                name = f"{label} {b}" + (f" downsample {factor}" if factor > 1 else "")
                runs[name] = r
                print(f"  {name}: {r['seconds']:.1f} s", flush=True)

    def rate(r):
        return r["km2"] / r["seconds"]

    base = runs.get("naive torch loop (crop)")
    def cpu_rate(r):
        return r["km2"] / r["cpu_s"]

    # CPU seconds count the work whatever else the machine runs; on a shared machine compare those.
    print("\n| run | seconds | km²/s (valid) | × naive | CPU s | km² per CPU s | × naive (CPU) | peak RSS MB "
          "| water IoU |\n|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        ratio = f"{rate(r) / rate(base):.2f}" if base else "-"
        cpu_ratio = f"{cpu_rate(r) / cpu_rate(base):.2f}" if base else "-"
        iou = f"{r['iou']:.4f}" if "iou" in r else "-"
        print(f"| {name} | {r['seconds']:.1f} | {rate(r):.1f} | {ratio} | {r['cpu_s']:.1f} | {cpu_rate(r):.1f} | "
              f"{cpu_ratio} | {r['peak_rss_mb']:.0f} | {iou} |")
    if "default onnx" in runs and "default onnx-int8" in runs:
        loss = 100 * (runs["default onnx"]["iou"] - runs["default onnx-int8"]["iou"])
        print(f"\nINT8 IoU loss against fp32 (default model, scene truth): {loss:+.2f} pt")
    for name, r in runs.items():
        plain = runs.get(name.split(" downsample ")[0])
        if " downsample " in name and plain:
            gain = 100 * (r["iou"] - plain["iou"])
            print(f"{name}: {plain['seconds'] / r['seconds']:.2f}x faster, IoU {gain:+.2f} pt against factor 1 "
                  f"(scene truth)")

    print("\nwhere the seconds go (stage seconds summed over the reader, predictor and writer threads):")
    print("| run | wall | " + " | ".join(STAGES) + " |\n|---|---|" + "---|" * len(STAGES))
    for name, r in runs.items():
        if "stage_seconds" in r:
            st = r["stage_seconds"]
            print(f"| {name} | {r['seconds']:.1f} | " + " | ".join(f"{st[s]:.1f}" for s in STAGES) + " |")
    pred = [r for r in runs.values() if "tiles" in r]
    if pred:
        r = pred[0]
        print(f"(tiles {r['tiles']}, predicted {r['tiles_predicted']}: "
              f"{100 * (1 - r['tiles_predicted'] / r['tiles']):.0f}% skipped as all no data)")

    sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    if sizes:
        print("\npeak RSS (MB), default model, same settings:\n| run | " +
              " | ".join(f"{s:,}²" for s in sizes) + f" | {shape[1]:,} x {shape[0]:,} | ratio |\n|---|" +
              "---|" * (len(sizes) + 2))
        for b in [b for b in ("onnx-int8", "onnx") if f"default {b}" in runs]:
            small = [measure(b, scene_path(s, s)[0], models["default"][b], args, "default")["peak_rss_mb"]
                     for s in sizes]
            big = runs[f"default {b}"]["peak_rss_mb"]
            print(f"| {b} | " + " | ".join(f"{v:.0f}" for v in small) + f" | {big:.0f} | {big / small[0]:.3f} |")

    defaults = [k for k in runs if k.startswith("default")]
    main_name = "default onnx-int8" if "default onnx-int8" in runs else (defaults[0] if defaults else None)
    main_run = runs.get(main_name) if main_name else None
    if main_run:
        print(f"(RESULT is the '{main_name}' run)")
        ratio = rate(main_run) / rate(base) if base else float("nan")
        print(f"RESULT seconds={main_run['seconds']:.1f} km2_per_s={rate(main_run):.1f} "
              f"peak_rss_mb={main_run['peak_rss_mb']:.0f} ratio_vs_naive={ratio:.2f}")


if __name__ == "__main__":
    main()
