"""A monitoring store for the web-map tests, built directly (no model run): synthetic georeferenced COGs as
`floodwatch map` writes them (flood_mask.tif, flood_probability.tif), a SAR scene per date, stats.json, and
one record per acquisition through the store API. The flood is a disc that grows with time next to a river."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from floodwatch.mapping.outputs import build_overviews, to_cog

from monitoring_helpers import utm_box_ll

UTM = "EPSG:32633"
ORIGIN = (400000.0, 5000000.0)  # ~45.1 N, 13.7 E (Istria: land in the Natural Earth outlines)
PIXEL_M = 20.0
START = datetime(2024, 5, 1, 5, 0, tzinfo=timezone.utc)
REVISIT = timedelta(days=6)
RIVER_COLS = slice(30, 46)


def flood_radius_px(k: int, n: int) -> float:
    return 20.0 + 70.0 * (k / max(1, n - 1))


def write_tif(path: Path, array: np.ndarray, nodata, cog: bool, description: str) -> None:
    profile = dict(driver="GTiff", height=array.shape[-2], width=array.shape[-1], count=1 if array.ndim == 2 else
                   array.shape[0], dtype=array.dtype.name, crs=UTM, nodata=nodata, tiled=True, blockxsize=256,
                   blockysize=256, transform=from_origin(ORIGIN[0], ORIGIN[1], PIXEL_M, PIXEL_M))
    tmp = path.with_name("." + path.name + ".tmp.tif") if cog else path
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.write(array if array.ndim == 3 else array[None])
    if cog:  # the same COG conversion `map` uses
        build_overviews(tmp, resampling="nearest" if array.dtype == np.uint8 and nodata == 255 else "average",
                        description=description)
        to_cog(tmp, path)


def scene_arrays(k: int, n: int, size: int):
    """(flood mask codes, probability percent, VV/VH dB) for acquisition k of n."""
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size * 0.55) ** 2 + (xx - size * 0.6) ** 2 <= flood_radius_px(k, n) ** 2
    river = np.zeros((size, size), bool)
    river[:, RIVER_COLS] = True
    nodata = yy >= size - 8  # a strip the orbit did not image
    mask = np.zeros((size, size), np.uint8)
    mask[disc] = 1
    mask[river] = 2
    mask[nodata] = 255
    prob = np.where(disc | river, 92, 6).astype(np.uint8)
    prob[nodata] = 255
    vv = np.where(disc | river, -21.0, -8.0) + rng.normal(0, 1.5, (size, size))
    sar = np.stack([vv, vv - 7.0]).astype(np.float32)
    sar[:, nodata] = np.nan
    return mask, prob, sar


def web_store(tmp_path: Path, n: int = 3, size: int = 256, distinct: int = 6) -> tuple[Path, Path, list[dict]]:
    """(database, outputs folder, the records' expected numbers) with AOI 'delta' (threshold between the
    first and last flooded area) and `n` map records; at most `distinct` different rasters are written and
    later acquisitions reuse them (first-paint tests need many records, not many files)."""
    from pyproj import Transformer
    import shapely
    from shapely.geometry import Point, mapping

    from floodwatch.monitoring.aoi import add_aoi
    from floodwatch.monitoring.store import Store

    db, outputs, scenes = tmp_path / "fw.db", tmp_path / "outputs", tmp_path / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    tr = Transformer.from_crs(UTM, 4326, always_xy=True)
    pixel_km2 = PIXEL_M * PIXEL_M / 1e6
    variants = {}
    expected = []
    with Store(db) as store:
        side = size * PIXEL_M
        first_km2 = np.pi * flood_radius_px(0, n) ** 2 * pixel_km2
        last_km2 = np.pi * flood_radius_px(n - 1, n) ** 2 * pixel_km2
        add_aoi(store, "delta", utm_box_ll(ORIGIN[0], ORIGIN[1] - side, ORIGIN[0] + side, ORIGIN[1]),
                threshold_km2=round((first_km2 + last_km2) / 2, 2))
        for k in range(n):
            v = k if n <= distinct else round(k * (distinct - 1) / (n - 1))
            if v not in variants:
                mask, prob, sar = scene_arrays(v, distinct if n > distinct else n, size)
                folder = outputs / f"S1_{v:03d}"
                folder.mkdir(parents=True)
                scene = scenes / f"S1_{v:03d}.tif"
                write_tif(scene, sar, float("nan"), cog=False, description="VV, VH dB")
                write_tif(folder / "flood_mask.tif", mask, 255, cog=True,
                          description="flood: 1 flood, 0 dry, 2 permanent water, 255 no data")
                write_tif(folder / "flood_probability.tif", prob, 255, cog=True, description="water probability")
                (folder / "stats.json").write_text(json.dumps({"scene": str(scene.resolve()), "units": "db"}))
                cx, cy = ORIGIN[0] + (size * 0.6 + 0.5) * PIXEL_M, ORIGIN[1] - (size * 0.55 + 0.5) * PIXEL_M
                r = flood_radius_px(v, distinct if n > distinct else n) * PIXEL_M
                disc_ll = shapely.transform(Point(cx, cy).buffer(r, 64),
                                            lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                variants[v] = dict(folder=folder, flooded_km2=float((mask == 1).sum() * pixel_km2),
                                   permanent_water_km2=float((mask == 2).sum() * pixel_km2),
                                   valid_km2=float((mask != 255).sum() * pixel_km2), floods=mapping(disc_ll))
            var = variants[v]
            acquired = (START + k * REVISIT).strftime("%Y-%m-%dT%H:%M:%SZ")
            folder = var["folder"]
            rid = store.add_record(
                aoi="delta", acquired=acquired, scene_id=f"S1_{k:03d}", kind="map", flooded_km2=var["flooded_km2"],
                permanent_water_km2=var["permanent_water_km2"], valid_km2=var["valid_km2"],
                coverage=var["valid_km2"] / (size * size * pixel_km2), floods=var["floods"],
                paths={"flood_mask": folder / "flood_mask.tif", "flood_probability": folder / "flood_probability.tif",
                       "stats": folder / "stats.json"})
            expected.append({"id": rid, "acquired": acquired, "flooded_km2": var["flooded_km2"],
                             "permanent_water_km2": var["permanent_water_km2"]})
    return db, outputs, expected
