"""Terrain in the windowed pipeline: exclusion flags, masks and depth applied per window of tile columns
give the same maps as one window across the scene; masks read column windows; the object-storage output
carries the terrain files; cluster workers get absolute terrain paths."""
from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import box, mapping

from floodwatch.mapping import map_scene
from floodwatch.mapping.masks import open_mask
from floodwatch.mapping.outputs import EXCLUDED
from floodwatch.mapping.parallel import _resolve_source
from floodwatch.mapping.terrain import SHADOW, USER_MASK, Terrain

from .helpers import ThresholdPredictor, read
from .terrain_scenes import CRS, PIXEL, brute_force_shadow, hill, write_raster, write_sar

#: 160 px wide at tile 64 / overlap 16: three tile columns, so chunk_tiles=1 gives three windows per row
TILING = dict(tile=64, overlap=16, batch=4, progress=False)
SHAPE = (120, 160)
LOOK_TAGS = {"PLATFORM_HEADING": "0", "INCIDENCE_ANGLE": "38"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A steep hill casting a shadow east, a flooded field, a lake (GeoJSON) over part of the field, and a
    user exclusion strip straddling the boundary between the first two tile columns."""
    d = tmp_path_factory.mktemp("windows")
    dem = hill(SHAPE, centre=(60, 50), height_m=250.0, sigma_m=60.0)
    shadow = brute_force_shadow(dem, 38.0)
    field = np.zeros(SHAPE, bool)
    field[20:50, 40:150] = True
    field &= ~shadow
    write_raster(d / "dem.tif", dem)
    write_sar(d / "scene.tif", shadow | field, tags=LOOK_TAGS)
    user = np.zeros(SHAPE, np.uint8)
    user[25:45, 44:60] = 1  # columns 44-60: across the first window's right edge (48)
    write_raster(d / "user.tif", user)
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, x1 = 400000 + 130 * PIXEL, 400000 + 150 * PIXEL
    y0, y1 = 5300000 - 50 * PIXEL, 5300000 - 20 * PIXEL
    (lon0, lat0), (lon1, lat1) = to_ll.transform(x0, y0), to_ll.transform(x1, y1)
    (d / "lake.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(lon0, lat0, lon1, lat1))}]}))
    return d, shadow, field, user.astype(bool)


def _terrain(d: Path) -> Terrain:
    return Terrain(dem=d / "dem.tif", exclude=d / "user.tif", hand_from_dem=False, depth=True)


def test_terrain_per_window_equals_one_window_across_the_scene(scene, tmp_path):
    d, shadow, field, user = scene
    runs = {n: map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / f"c{n}", terrain=_terrain(d),
                         water_mask=d / "lake.geojson", chunk_tiles=n, **TILING) for n in (1, 100)}
    narrow, wide = runs[1], runs[100]
    for name in ("mask", "exclusion", "depth"):
        np.testing.assert_array_equal(read(narrow.paths[name])[0], read(wide.paths[name])[0])
    for key in ("flooded_pixels", "excluded_water_km2", "area_split_km2", "excluded_area_km2", "polygons"):
        assert narrow.stats[key] == pytest.approx(wide.stats[key], rel=1e-12)
    # and the windowed map is right on its own, against the planted layers
    mask, flags = read(narrow.paths["mask"])[0], read(narrow.paths["exclusion"])[0]
    assert ((flags[shadow] & SHADOW) != 0).all() and ((flags[user] & USER_MASK) != 0).all()
    assert (mask[shadow] == EXCLUDED).all()
    assert (mask[field & user] == EXCLUDED).all()
    # the lake wins over the field (its box's edge pixels may fall either way after reprojection)
    assert (mask[21:49, 131:149] == 2).all()
    # left of the lake, every dark pixel is flood unless a flag (shadow, the hill's slope, user) excludes it
    dark = (shadow | field)[:, :128]
    expected = np.where(dark & (flags[:, :128] != 0), EXCLUDED, np.where(dark, 1, 0))
    np.testing.assert_array_equal(mask[:, :128], expected)
    s = narrow.stats
    assert sum(s["area_split_km2"].values()) == pytest.approx(s["valid_km2"], rel=1e-9)
    depth = read(narrow.paths["depth"])[0]
    assert np.isfinite(depth[mask == 1]).all() and np.isnan(depth[mask != 1]).all()


def test_masks_read_column_windows_as_slices_of_the_whole(scene, tmp_path):
    d, *_ = scene
    coarse = np.zeros((SHAPE[0] // 4, SHAPE[1] // 4), np.uint8)  # 40 m pixels: resampled onto the 10 m grid
    coarse[5:20, 8:30] = 1
    write_raster(tmp_path / "coarse.tif", coarse, pixel=4 * PIXEL)
    wholes = {}
    with rasterio.open(d / "scene.tif") as ref:
        for source in (tmp_path / "coarse.tif", d / "lake.geojson", d / "user.tif"):
            m = open_mask(source, ref)
            try:
                whole = wholes[source.name] = m.read_window(0, SHAPE[0], 0, SHAPE[1])
                assert whole.shape == SHAPE and whole.any()
                for r0, r1, c0, c1 in ((0, 64, 48, 112), (37, 120, 96, 160), (10, 11, 0, 1), (5, 50, 7, 7)):
                    np.testing.assert_array_equal(m.read_window(r0, r1, c0, c1), whole[r0:r1, c0:c1])
            finally:
                m.close()
    assert wholes["coarse.tif"].sum() == 15 * 22 * 16  # 40 m pixels on the 10 m grid, aligned: 4 x 4 each
    np.testing.assert_array_equal(wholes["user.tif"], scene[3])


def test_object_storage_output_carries_the_terrain_files(scene, tmp_path):
    d, *_ = scene
    result = map_scene(d / "scene.tif", ThresholdPredictor(), "memory://bucket/terrain", terrain=_terrain(d),
                       chunk_tiles=1, **TILING)
    assert result.out_dir == "memory://bucket/terrain/scene"
    assert result.paths["exclusion"] == "memory://bucket/terrain/scene/exclusion.tif"
    assert result.paths["depth"] == "memory://bucket/terrain/scene/flood_depth.tif"
    fs = fsspec.filesystem("memory")
    names = {Path(p).name for p in fs.ls("/bucket/terrain/scene", detail=False)}
    assert {"exclusion.tif", "flood_depth.tif", "flood_mask.tif", "stats.json"} <= names
    local = map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / "local", terrain=_terrain(d), **TILING)
    with rasterio.MemoryFile(fs.cat(result.paths["exclusion"])) as mem, mem.open() as ds:
        np.testing.assert_array_equal(ds.read(1), read(local.paths["exclusion"])[0])
    assert json.loads(fs.cat(result.paths["stats"]))["terrain"]["dem"] == str(d / "dem.tif")


def test_cluster_workers_get_absolute_terrain_paths_and_public_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _resolve_source("dem/dem.tif") == str(tmp_path / "dem" / "dem.tif")
    for name in ("glo30-dem", "glo30-hand", "jrc-gsw", "worldcover", "https://h/x.tif", None):
        assert _resolve_source(name) == name
