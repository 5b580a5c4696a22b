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


def test_a_polygon_across_the_antimeridian_is_cut_at_180(tmp_path):
    """A lake on 180° in a UTM zone 60 scene (Fiji): unsplit, its outline jumps from 179.9° to -179.9° and a GIS
    draws it as a band round the world (RFC 7946 §3.1.9 asks for the cut). The cut keeps its area and its hole."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32760", always_xy=True).transform(180.0, -17.0)
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    mask[25:30, 12:17] = False  # a hole west of 180°
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", height=60, width=60, count=1, dtype="uint8", crs="EPSG:32760",
                       transform=from_origin(x - 300, y + 300, 10, 10)) as ds:
        ds.write(mask.astype(np.uint8), 1)
    info = vectorize_mask(path, tmp_path / "p.geojson", simplify=0)
    (feature,) = json.loads((tmp_path / "p.geojson").read_text())["features"]
    geom = shape(feature["geometry"])
    assert geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2
    for part in geom.geoms:  # one on each side, each narrow, meeting at ±180°
        assert part.is_valid and part.bounds[2] - part.bounds[0] < 0.01
    assert sorted(round(abs(p.bounds[0] + p.bounds[2]) / 2) for p in geom.geoms) == [180, 180]
    assert sum(len(p.interiors) for p in geom.geoms) == 1
    ground = (mask.sum()) * 100 / 1e6  # km², within UTM's scale factor (~1.0006 here)
    assert info["area_km2"] == pytest.approx(ground, rel=2e-3)


@pytest.mark.parametrize("bottom_up", [False, True])
def test_rings_follow_the_right_hand_rule_whatever_the_grid(tmp_path, bottom_up):
    """RFC 7946 §3.1.6: outer rings anticlockwise, holes clockwise. A bottom-up grid (positive pixel height)
    traced every ring the other way round."""
    from affine import Affine

    mask = _blobs(0)
    transform = (Affine(10, 0, 500000, 0, 10, 3999040) if bottom_up
                 else Affine(10, 0, 500000, 0, -10, 4000000))
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", height=mask.shape[0], width=mask.shape[1], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=transform) as ds:
        ds.write(mask.astype(np.uint8), 1)
    vectorize_mask(path, tmp_path / "p.geojson", block=16)
    polys = [p for f in json.loads((tmp_path / "p.geojson").read_text())["features"]
             for p in getattr(shape(f["geometry"]), "geoms", [shape(f["geometry"])])]
    assert polys and all(p.exterior.is_ccw for p in polys)
    holes = [h for p in polys for h in p.interiors]
    assert holes and not any(h.is_ccw for h in holes)
