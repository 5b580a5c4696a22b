"""How much of a Sentinel-1 COG does `fetch` pull over HTTP for an AOI, against downloading the file?

    python benchmarks/fetch_window.py [--size 4096] [--block 512]

Writes a VV and a VH float32 GeoTIFF (size x size px, 10 m, internal tiles of `block` px and deflate, as
Planetary Computer's RTC COGs are), serves them from a loopback HTTP server that honours range requests,
and for square AOIs of several sizes measures, side by side in this run: the bytes GDAL requested through
floodwatch.acquisition.read.read_item (windowed, warped onto the AOI's grid) and its time, against fetching
both whole files. Prints one markdown table. No data needed; seconds at --size 1024, under a minute at the
default 4096.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "monitoring"))  # the tests' range-capable loopback file server

from monitoring_helpers import RangeHandler, serving  # noqa: E402

from floodwatch.acquisition.read import grid_for, read_item  # noqa: E402
from floodwatch.acquisition.signing import no_signing  # noqa: E402
from floodwatch.monitoring.geo import to_wgs84  # noqa: E402

X0, Y1, EPSG = 400000.0, 5000000.0, 32633
AOIS = (128, 512, 1024, 2048)  # square AOI sides in px; those over half the file are left out


def write(path: Path, size: int, block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.gamma(4.0, 0.1 / 4.0, size=(size, size)).astype(np.float32)  # speckled linear power
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                       crs=f"EPSG:{EPSG}", transform=Affine(10, 0, X0, 0, -10, Y1), nodata=-32768.0, tiled=True,
                       blockxsize=block, blockysize=block, compress="deflate", predictor=3) as dst:
        dst.write(data[None])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096, help="side of the two COGs in px")
    ap.add_argument("--block", type=int, default=512, help="their internal tile side in px")
    args = ap.parse_args(argv)
    if args.size < 2 * AOIS[0]:
        ap.error(f"--size: {args.size} px; at least {2 * AOIS[0]} (the smallest AOI, {AOIS[0]} px, is half of it at most)")
    if args.block < 16 or args.block % 16:
        ap.error(f"--block: {args.block} px; GeoTIFF tiles are a positive multiple of 16")
    from shapely.geometry import box

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, b in enumerate(("vv", "vh")):
            write(folder / f"{b}.tif", args.size, args.block, i)
        file_bytes = sum((folder / f"{b}.tif").stat().st_size for b in ("vv", "vh"))
        handler = type("H", (RangeHandler,), {"__init__": lambda self, *a, **k: RangeHandler.__init__(
            self, *a, directory=tmp, **k)})
        with serving(handler) as url:
            t0 = time.perf_counter()
            for b in ("vv", "vh"):
                urllib.request.urlopen(f"{url}/{b}.tif").read()
            t_full = time.perf_counter() - t0
            rows = []
            for px in AOIS:
                if px > args.size // 2:
                    continue
                off = (args.size - px) / 2 * 10
                aoi = to_wgs84(box(X0 + off, Y1 - off - px * 10, X0 + off + px * 10, Y1 - off), f"EPSG:{EPSG}")
                item = pystac.Item("bench", None, None, pystac.utils.str_to_datetime("2024-05-01T00:00:00Z"), {})
                for b in ("vv", "vh"):
                    item.add_asset(b, pystac.Asset(f"{url}/{b}.tif", media_type=pystac.MediaType.COG, roles=["data"]))
                grid = grid_for(aoi, f"EPSG:{EPSG}", Affine(10, 0, X0, 0, -10, Y1), pad_px=16)
                RangeHandler.range_requests, RangeHandler.full_requests = [], []
                t0 = time.perf_counter()
                data = read_item(item, grid, no_signing)
                t_win = time.perf_counter() - t0
                got = sum(e - s + 1 for _, s, e in RangeHandler.range_requests)
                got += sum(e - s + 1 for _, s, e in RangeHandler.full_requests)
                assert np.isfinite(data).all()
                rows.append((px, grid.width, got, t_win))
    print(f"{args.size} x {args.size} px COGs, {args.block} px tiles, deflate; both files {file_bytes / 1e6:.1f} MB, "
          f"whole download {t_full:.2f} s\n")
    print("| AOI (px) | grid with padding | bytes read | share of the files | time | time / whole download |")
    print("|---|---|---|---|---|---|")
    for px, w, got, t in rows:
        print(f"| {px} | {w} x {w} | {got / 1e6:.2f} MB | {100 * got / file_bytes:.1f} % | {t:.2f} s | "
              f"{t / t_full:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
