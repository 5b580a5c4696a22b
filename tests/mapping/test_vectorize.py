"""vectorize_mask: block-by-block polygons equal the whole raster's, and the GeoJSON is what it says."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import shape

from floodwatch.mapping.vectorize import vectorize_mask


def _mask_file(path, mask):
    profile = dict(driver="GTiff", height=mask.shape[0], width=mask.shape[1], count=1, dtype="uint8",
                   crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(mask.astype(np.uint8), 1)
    return path


def _blobs(seed: int, shape=(96, 80)) -> np.ndarray:
    """Smoothed noise: blobs of every size, many crossing 16 px block edges, some with holes, and pixels
    that touch only at a corner (separate polygons with 4-connectivity), once inside a block and once across
    block edges (a group of cut pieces whose union is two polygons)."""
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > 0.05
    for r, c in ((40, 40), (31, 31)):  # the second pair meets at a corner of four 16 px blocks
        mask[r - 2:r + 4, c - 2:c + 4] = False
        mask[r, c] = mask[r + 1, c + 1] = True
    return mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocks_give_the_whole_rasters_polygons(tmp_path, seed):
    mask = _blobs(seed)
    path = _mask_file(tmp_path / "mask.tif", mask)
    reference = [shape(g) for g, _ in features.shapes(mask.astype(np.uint8), mask=mask, connectivity=4)]
    results = {}
    for block in (16, 4096):
        out = tmp_path / f"poly_{block}.geojson"
        info = vectorize_mask(path, out, simplify=0, block=block)
        results[block] = [shape(f["geometry"]) for f in json.loads(out.read_text())["features"]]
        assert info["features"] == len(results[block]) == len(reference)
    # the same polygons, in lon/lat: where blocks cut an outline it keeps extra vertices on straight pixel
    # edges, which bend by a few parts in a million once projected
    small, one = results[16], results[4096]
    np.testing.assert_allclose(sorted(p.area for p in small), sorted(p.area for p in one), rtol=1e-5)
    covered = shapely.union_all(one)
    assert shapely.union_all(small).symmetric_difference(covered).area < 1e-5 * covered.area
    assert sum(len(p.interiors) for p in small) == sum(len(p.interiors) for p in reference)


def test_no_water_writes_an_empty_collection(tmp_path):
    path = _mask_file(tmp_path / "mask.tif", np.zeros((40, 40), bool))
    info = vectorize_mask(path, tmp_path / "p.geojson", block=16)
    assert info == {"features": 0, "area_km2": 0.0, "removed": 0}
    assert json.loads((tmp_path / "p.geojson").read_text())["features"] == []
