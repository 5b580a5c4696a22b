"""Terrain-aware mapping on synthetic terrain: shadow/layover against a brute-force ray test, exclusion in
map_scene (counted apart, areas adding up), HAND from a DEM, flood depth against a planted water level."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import rasterio

from floodwatch.errors import DataError, FloodwatchError
from floodwatch.mapping import map_scene
from floodwatch.mapping.outputs import EXCLUDED
from floodwatch.mapping.terrain import (HAND_ABOVE, LAYOVER, SHADOW, STEEP, USER_MASK, Terrain, ascending_heading,
                                        look_geometry, shadow_layover)

from .helpers import ThresholdPredictor, read
from .terrain_scenes import (PIXEL, bowl, brute_force_shadow, hill, write_raster, write_sar)

TILING = dict(tile=64, overlap=16, batch=4, progress=False)
SHAPE = (120, 160)
HILL = dict(centre=(60, 50), height_m=250.0, sigma_m=60.0)
#: the scene looks due east (heading 0, right-looking) at 38 degrees, as its GeoTIFF tags say
LOOK_TAGS = {"PLATFORM_HEADING": "0", "INCIDENCE_ANGLE": "38"}


@pytest.mark.parametrize("look_az, sensor", [(90.0, "west"), (270.0, "east")])
def test_shadow_matches_a_brute_force_line_of_sight_test(look_az, sensor):
    dem = hill(SHAPE, **HILL)
    shadow, layover = shadow_layover(dem, PIXEL, PIXEL, look_az, (38.0, 38.0))
    expected = brute_force_shadow(dem, 38.0, sensor=sensor)
    assert expected.sum() > 100
    np.testing.assert_array_equal(shadow, expected)
    # the slope facing the sensor is steeper than 38 degrees: it lies over (lays over) the ground in front
    cols = np.arange(SHAPE[1])
    facing = cols < HILL["centre"][1] if sensor == "west" else cols > HILL["centre"][1]
    assert layover[HILL["centre"][0], facing].sum() > 5
    assert layover[:, facing].sum() > 3 * layover[:, ~facing].sum()  # mostly in front of the hill


def test_oblique_look_moves_the_shadow_with_the_look_direction():
    dem = hill(SHAPE, **HILL)
    east, _ = shadow_layover(dem, PIXEL, PIXEL, 90.0, (38.0, 38.0))
    oblique, _ = shadow_layover(dem, PIXEL, PIXEL, 90.0 - 30.0, (38.0, 38.0))  # looking east-north-east
    assert oblique.sum() == pytest.approx(east.sum(), rel=0.15)  # a round hill: same shadow, turned
    rows, cols = np.nonzero(oblique)
    dy, dx = -(rows.mean() - HILL["centre"][0]), cols.mean() - HILL["centre"][1]
    assert math.degrees(math.atan2(dx, dy)) == pytest.approx(60.0, abs=8.0)  # azimuth of the shadow


def test_flat_ground_has_no_shadow_layover_or_slope_flags():
    dem = np.full((50, 70), 12.0, np.float32)
    shadow, layover = shadow_layover(dem, PIXEL, PIXEL, 78.0, (30.0, 46.0))
    assert not shadow.any() and not layover.any()


def test_look_geometry_from_tags_sidecar_and_approximation(tmp_path):
    scene = write_sar(tmp_path / "s.tif", np.zeros((8, 8), bool), tags=LOOK_TAGS)
    g = look_geometry(Terrain(), scene, 47.0, 1e3)
    assert g.incidence_deg == (38.0, 38.0) and g.headings_deg == (0.0,) and "metadata" in g.source
    bare = write_sar(tmp_path / "b.tif", np.zeros((8, 8), bool))
    (tmp_path / "b.json").write_text(json.dumps({"type": "Feature", "properties": {"sat:orbit_state": "descending"}}))
    g = look_geometry(Terrain(), bare, 47.0, 1e3)
    assert g.incidence_deg == (38.0, 38.0) and "assumed" in g.source
    assert g.headings_deg[0] == pytest.approx(180.0 - ascending_heading(47.0))
    assert -14 < ascending_heading(47.0) < -10  # Sentinel-1 ascending passes head a little west of north
    (tmp_path / "b.json").unlink()
    g = look_geometry(Terrain(), bare, 47.0, 260e3)
    assert g.incidence_deg == (30.0, 46.0) and len(g.headings_deg) == 2  # whole swath, orbit unknown
    g = look_geometry(Terrain(orbit="ascending", incidence_deg=33.0), bare, 0.0, 1e3)
    assert g.incidence_deg == (33.0, 33.0) and g.headings_deg == (pytest.approx(ascending_heading(0.0)),)


@pytest.fixture(scope="module")
def shadow_scene(tmp_path_factory):
    """A steep hill west of flat ground; the SAR is dark in the hill's radar shadow and in a flooded field."""
    d = tmp_path_factory.mktemp("shadow")
    dem = hill(SHAPE, **HILL)
    shadow = brute_force_shadow(dem, 38.0)
    field = np.zeros(SHAPE, bool)
    field[20:50, 110:150] = True  # flat, low, far from the hill: real flood
    write_raster(d / "dem.tif", dem)
    write_sar(d / "scene.tif", shadow | field, tags=LOOK_TAGS)
    return d, dem, shadow, field


def test_dark_pixels_in_radar_shadow_are_excluded_and_counted_apart(shadow_scene, tmp_path):
    d, dem, shadow, field = shadow_scene
    terrain = Terrain(dem=d / "dem.tif", hand_from_dem=False)
    r = map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / "out", terrain=terrain, **TILING)
    mask, _ = read(r.paths["mask"])
    flags, info = read(r.paths["exclusion"])
    assert info["driver"] == "GTiff" and info["nodata"] == 255
    assert ((flags[shadow] & SHADOW) != 0).all()
    assert (mask[shadow] == EXCLUDED).all() and (mask[field] == 1).all()
    assert (mask == 1).sum() == field.sum()  # nothing else became flood
    s = r.stats
    px_km2 = PIXEL * PIXEL / 1e6
    assert s["excluded_water_km2"] == pytest.approx(shadow.sum() * px_km2, rel=0.01)
    assert s["flooded_km2"] == pytest.approx(field.sum() * px_km2, rel=0.01)
    assert s["terrain"]["look_geometry"]["headings_deg"] == [0.0]
    assert s["excluded_area_km2"]["shadow"] == pytest.approx(((flags & SHADOW) != 0).sum() * px_km2, rel=0.01)
    # without terrain the same shadow is mapped as flood: the false water the exclusion removes
    plain = map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / "plain", **TILING)
    assert plain.stats["flooded_km2"] == pytest.approx((shadow | field).sum() * px_km2, rel=0.01)
    assert plain.stats["excluded_water_km2"] == 0 and "exclusion" not in plain.paths
    polys = json.loads(r.paths["polygons"].read_text())["features"]
    assert len(polys) == 1  # only the field


def test_stats_areas_add_up_to_the_valid_area(shadow_scene, tmp_path):
    """Flood + permanent water (a GeoJSON reference) + dark-but-excluded (shadow, user mask) + dry = valid."""
    from pyproj import Transformer
    from shapely.geometry import box, mapping

    d, dem, shadow, field = shadow_scene
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    x0, y1 = 400000 + 130 * PIXEL, 5300000 - 20 * PIXEL  # the field's columns 130-150: permanent water
    x1, y0 = 400000 + 150 * PIXEL, 5300000 - 50 * PIXEL
    (lon0, lat0), (lon1, lat1) = to_ll.transform(x0, y0), to_ll.transform(x1, y1)
    (tmp_path / "lake.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(lon0, lat0, lon1, lat1))}]}))
    user = np.zeros(SHAPE, np.uint8)
    user[20:50, 110:115] = 1
    write_raster(tmp_path / "user.tif", user)
    terrain = Terrain(dem=d / "dem.tif", exclude=tmp_path / "user.tif", hand_from_dem=False)
    r = map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / "out", terrain=terrain,
                  water_mask=tmp_path / "lake.geojson", **TILING)
    s = json.loads(r.paths["stats"].read_text())
    split = s["area_split_km2"]
    assert set(split) == {"flood", "permanent_water", "excluded_water", "dry"}
    assert sum(split.values()) == pytest.approx(s["valid_km2"], rel=1e-9)
    mask, _ = read(r.paths["mask"])
    counts = {"flood": (mask == 1).sum(), "permanent_water": (mask == 2).sum(),
              "excluded_water": (mask == EXCLUDED).sum(), "dry": (mask == 0).sum()}
    assert counts["permanent_water"] == pytest.approx(20 * 30, abs=60)  # the rasterised box (edges differ)
    assert counts["excluded_water"] == shadow.sum() + 5 * 30
    for k, n in counts.items():  # each part, against its own pixel count
        assert split[k] == pytest.approx(n * s["valid_km2"] / mask.size, rel=0.01, abs=1e-9)
    flags, _ = read(r.paths["exclusion"])
    assert ((flags[20:50, 110:115] & USER_MASK) != 0).all()


def test_hand_from_the_dem_excludes_high_ground_but_not_the_valley(tmp_path):
    """A V-shaped valley draining south: the floor is near its drainage, the shoulders far above it."""
    shape = (90, 90)
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dem = (100.0 - 0.02 * r * PIXEL + 0.2 * np.abs(c - 45) * PIXEL).astype(np.float32)  # 0.2: about 11 deg
    write_raster(tmp_path / "dem.tif", dem)
    dark = np.zeros(shape, bool)
    dark[:, 40:51] = True  # the valley floor
    dark[30:60, 5:12] = True  # a dark patch high on the west shoulder (HAND ~ 70 m)
    write_sar(tmp_path / "scene.tif", dark, tags=LOOK_TAGS)
    terrain = Terrain(dem=tmp_path / "dem.tif", hand_max=15.0, channel_km2=0.05)
    res = map_scene(tmp_path / "scene.tif", ThresholdPredictor(), tmp_path / "out", terrain=terrain, **TILING)
    flags, _ = read(res.paths["exclusion"])
    mask, _ = read(res.paths["mask"])
    assert ((flags[30:60, 5:12] & HAND_ABOVE) != 0).all() and (mask[30:60, 5:12] == EXCLUDED).all()
    assert ((flags[10:80, 43:48] & HAND_ABOVE) == 0).all() and (mask[10:80, 43:48] == 1).all()
    assert not (flags & (STEEP | SHADOW | LAYOVER)).any()  # 11 degree shoulders: nothing else applies
    assert "pysheds" in res.stats["terrain"]["hand_source"]


def test_given_hand_raster_and_hand_max(shadow_scene, tmp_path):
    d, dem, shadow, field = shadow_scene
    hand = np.zeros(SHAPE, np.float32)
    hand[:, 140:] = 20.0
    write_raster(tmp_path / "hand.tif", hand)
    for hand_max, expect in ((15.0, True), (25.0, False)):
        r = map_scene(d / "scene.tif", ThresholdPredictor(), tmp_path / f"o{hand_max}",
                      terrain=Terrain(hand=tmp_path / "hand.tif", hand_max=hand_max), **TILING)
        flags, _ = read(r.paths["exclusion"])
        assert ((flags[:, 141:] & HAND_ABOVE) != 0).all() == expect
        assert not (flags[:, :139] & HAND_ABOVE).any()


@pytest.mark.parametrize("level", [110.0, 112.3])
def test_depth_is_within_half_a_metre_of_a_planted_water_level(tmp_path, level):
    shape = (100, 100)
    dem = bowl(shape, (50, 50), bottom_m=100.0, slope=0.05)  # 0.5 m per 10 m pixel
    dem = dem + 0.05 * np.sin(np.arange(shape[1]) / 3.0)[None, :].astype(np.float32)  # a little relief
    write_raster(tmp_path / "dem.tif", dem)
    flooded = dem < level
    write_sar(tmp_path / "scene.tif", flooded, tags=LOOK_TAGS)
    terrain = Terrain(dem=tmp_path / "dem.tif", depth=True, hand_from_dem=False)
    r = map_scene(tmp_path / "scene.tif", ThresholdPredictor(), tmp_path / "out", terrain=terrain, **TILING)
    depth, info = read(r.paths["depth"])
    assert depth.dtype == np.float32 and np.isnan(depth[~flooded]).all()
    truth = level - dem[flooded]
    assert np.abs(depth[flooded] - truth).max() < 0.5
    feats = json.loads(r.paths["polygons"].read_text())["features"]
    assert len(feats) == 1
    p = feats[0]["properties"]
    assert p["water_level_m"] == pytest.approx(level, abs=0.5)
    assert p["depth_max_m"] == pytest.approx(level - float(dem.min()), abs=0.5)
    assert p["depth_mean_m"] == pytest.approx(float(truth.mean()), abs=0.5)
    assert r.stats["terrain"]["depth"]["max_m"] == pytest.approx(p["depth_max_m"], abs=1e-3)
    with rasterio.open(r.paths["depth"]) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_terrain_option_errors_name_the_field(tmp_path):
    write_sar(tmp_path / "s.tif", np.zeros((20, 20), bool))
    with pytest.raises(FloodwatchError, match="depth: needs a DEM"):
        map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "o", terrain=Terrain(depth=True,
                                                                                              exclude="x.tif"))
    with pytest.raises(FloodwatchError, match="hand_max"):
        map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "o", terrain=Terrain(hand_max=0, hand="h"))
    with pytest.raises(DataError, match="nope.tif: DEM not found"):
        map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "o",
                  terrain=Terrain(dem=tmp_path / "nope.tif", hand_from_dem=False))
    assert not (tmp_path / "o" / "s").exists()


def test_shapefile_water_mask_is_rasterised_on_the_scene_grid(tmp_path):
    import shapefile
    from pyproj import CRS

    dark = np.zeros((40, 60), bool)
    dark[10:30, 10:50] = True
    scene = write_sar(tmp_path / "s.tif", dark)
    x0, y0 = 400000 + 10 * PIXEL, 5300000 - 30 * PIXEL  # columns 10-30, rows 10-30 in UTM 33N
    x1, y1 = 400000 + 30 * PIXEL, 5300000 - 10 * PIXEL
    with shapefile.Writer(str(tmp_path / "lake"), shapeType=shapefile.POLYGON) as w:
        w.field("name", "C")
        w.poly([[(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)]])
        w.record("lake")
    (tmp_path / "lake.prj").write_text(CRS.from_epsg(32633).to_wkt("WKT1_ESRI"))
    r = map_scene(scene, ThresholdPredictor(), tmp_path / "out", water_mask=tmp_path / "lake.shp", **TILING)
    mask, _ = read(r.paths["mask"])
    assert (mask[10:30, 10:30] == 2).all() and (mask[10:30, 30:50] == 1).all()
    (tmp_path / "lake.prj").unlink()
    with pytest.raises(DataError, match="lake.shp: water mask has no .prj"):
        map_scene(scene, ThresholdPredictor(), tmp_path / "out2", water_mask=tmp_path / "lake.shp", **TILING)


@pytest.mark.parametrize("doc, message", [
    ([], "not GeoJSON (a JSON list, not an object)"),
    ("lake", "not GeoJSON (a JSON str, not an object)"),
    ({"type": "FeatureCollection", "features": ["lake"]}, "invalid geometry"),
    ({"type": "Polygon", "coordinates": [[0, 0]]}, "invalid geometry"),
    ({"type": "Feature", "crs": "EPSG:4326", "geometry": {"type": "Point", "coordinates": "x"}}, "invalid geometry"),
])
def test_malformed_geojson_masks_are_one_line_errors(tmp_path, doc, message):
    from floodwatch.mapping.masks import open_mask

    scene = write_sar(tmp_path / "s.tif", np.zeros((20, 20), bool))
    (tmp_path / "bad.geojson").write_text(json.dumps(doc))
    with rasterio.open(scene) as ref, pytest.raises(DataError, match=rf"bad.geojson: water mask .*{re.escape(message)}"):
        open_mask(tmp_path / "bad.geojson", ref)
