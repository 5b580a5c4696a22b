"""Time reading + pre-processing one chip with floodwatch vs a plain rasterio / PIL read, as ratios.

    python benchmarks/read_chip.py [--data ../shared/data] [--repeat 20]

Cases: a Sen1Floods11 512² GeoTIFF chip (VV, VH in dB + label) and, when present, an ETCI 2021 North Alabama
256² PNG tile. Without `sen1floods11/` under --data, a synthetic Sen1Floods11-layout chip is written to a
temporary folder (the first line says which chip was read). Prints the best of --repeat reads in ms for each
side and their ratio (floodwatch / plain), measured in this run. Takes seconds.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    import rasterio
    from PIL import Image

    from floodwatch.data import Preprocessing, open_dataset
    from floodwatch.data.synthetic import write_synthetic_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--repeat", type=int, default=20, help="reads per case; the best is kept")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat: {args.repeat} reads; at least 1")
    if args.data != DEFAULT_DATA and not args.data.is_dir():
        ap.error(f"--data: {args.data} is not a folder")  # a typo must not fall back to a synthetic chip unseen
    pre = Preprocessing()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        s1 = args.data / "sen1floods11"
        if not s1.is_dir():
            print(f"no {s1}: a synthetic Sen1Floods11-layout chip instead")
            s1 = write_synthetic_dataset(Path(tmp) / "s1", chips=1, size=512)
        ds = open_dataset(s1)
        rec = ds.records[0]

        def plain_tif():
            with rasterio.open(rec.paths["image"]) as f:
                img = f.read()
            with rasterio.open(rec.paths["label"]) as f:
                f.read(1)
            return np.nan_to_num((img + 12) / 5)

        def fw_tif():
            s = ds[0]
            return pre.apply(s.image, s.valid)

        cases.append(("sen1floods11 GeoTIFF 512px", fw_tif, plain_tif))
        etci_root = args.data / "etci2021" / "northal_20190302t234651"
        if etci_root.is_dir():
            eds = open_dataset(etci_root)
            erec = eds.records[0]

            def plain_png():
                vv = np.asarray(Image.open(erec.paths["vv"]))[..., 0]
                vh = np.asarray(Image.open(erec.paths["vh"]))[..., 0]
                np.asarray(Image.open(erec.paths["label"]))
                return np.stack([vv, vh]).astype(np.float32) / 255

            def fw_png():
                s = eds[0]
                return pre.apply(s.image, s.valid)

            cases.append(("etci PNG tile 256px", fw_png, plain_png))
        print(f"{'case':30s} {'floodwatch ms':>14s} {'plain ms':>10s} {'ratio':>7s}")
        for name, fw, plain in cases:
            fw(); plain()  # warm caches
            a, b = best_of(fw, args.repeat), best_of(plain, args.repeat)
            print(f"{name:30s} {1e3 * a:14.2f} {1e3 * b:10.2f} {a / b:7.2f}x")


if __name__ == "__main__":
    main()
