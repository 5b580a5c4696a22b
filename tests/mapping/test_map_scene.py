"""map_scene end to end on georeferenced synthetic scenes, checked against numpy, pyproj.Geod and shapely."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from pyproj import Geod, Transformer
from shapely.geometry import shape
from shapely.ops import unary_union

from floodwatch.data.sample import WATER
from floodwatch.errors import FloodwatchError
from floodwatch.mapping import OUTPUT_NAMES, map_scene

from .helpers import WATER_DB, ConstantPredictor, ThresholdPredictor, make_scene, pixel_polygons, read

GEOD = Geod(ellps="WGS84")
TILING = dict(tile=64, overlap=16, batch=3, progress=False)


def geod_km2(mask: np.ndarray, transform, crs) -> float:
    """Independent area: pixel outlines -> EPSG:4326 -> area on the WGS84 ellipsoid."""
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    total = 0.0
    for poly in pixel_polygons(mask, transform):
        poly = shapely.segmentize(poly, max(abs(transform.a), abs(transform.e)) * 8)
        ll = shapely.transform(poly, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        total += abs(GEOD.geometry_area_perimeter(ll)[0])
    return total / 1e6


def iou(a, b) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module", params=["utm", "geographic"])
def mapped(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "utm":  # 300 x 200: neither side a multiple of the 64 px tile
        kw = dict(crs="EPSG:32633", origin=(400000.0, 5300000.0), pixel_size=10.0)
    else:  # about 7 m x 11 m pixels at 50° N
        kw = dict(crs="EPSG:4326", origin=(10.0, 50.0), pixel_size=1e-4)
    sample = make_scene(d / f"{request.param}.tif", 300, 200, seed=3, nodata_border=12, **kw)
    result = map_scene(d / f"{request.param}.tif", ThresholdPredictor(), d / "out", **TILING)
    return sample, result


def test_mask_is_the_exact_pointwise_answer_and_nodata_stays_nodata(mapped):
    sample, result = mapped
    mask, info = read(result.paths["mask"])
    expected = np.where(sample.valid, (sample.image[0] < WATER_DB).astype(np.uint8), 255)
    np.testing.assert_array_equal(mask, expected)  # no seams, no shifted tiles, borders kept
    assert (~sample.valid).sum() > 0 and (mask[~sample.valid] == 255).all()
    assert iou(mask == 1, sample.mask == WATER) > 0.97


def test_outputs_are_georeferenced_like_the_input(mapped):
    sample, result = mapped
    assert sorted(p.name for p in result.out_dir.iterdir()) == sorted(OUTPUT_NAMES.values())
    with rasterio.open(result.scene) as src:
        crs, transform = src.crs, src.transform
    for key in ("mask", "probability"):
        _, info = read(result.paths[key])
        assert info["crs"] == crs and info["transform"] == transform and info["shape"] == (300, 200)
        with rasterio.open(result.paths[key]) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    prob, info = read(result.paths["probability"])
    assert info["nodata"] == 255 and set(np.unique(prob)) <= {0, 100, 255}
    assert Image.open(result.paths["quicklook"]).size[0] >= 200


def test_area_matches_an_independent_ellipsoid_computation(mapped):
    sample, result = mapped
    stats = json.loads(result.paths["stats"].read_text())
    with rasterio.open(result.scene) as src:
        crs, transform = src.crs, src.transform
    mask, _ = read(result.paths["mask"])
    assert stats["flooded_km2"] == pytest.approx(geod_km2(mask == 1, transform, crs), rel=0.01)
    assert stats["valid_km2"] == pytest.approx(geod_km2(sample.valid, transform, crs), rel=0.01)
    assert stats["flooded_km2"] == pytest.approx(geod_km2(sample.mask == WATER, transform, crs), rel=0.02)
    assert stats["flooded_fraction"] == pytest.approx(stats["flooded_km2"] / stats["valid_km2"])
    assert stats["crs"] == crs.to_string() and stats["tiles"] == 6 * 4 and stats["backend"] == "threshold"
    assert stats["permanent_water_km2"] == 0 and stats["width"] == 200 and stats["height"] == 300


def test_polygons_are_lonlat_and_overlap_the_known_water(mapped):
    sample, result = mapped
    fc = json.loads(result.paths["polygons"].read_text())
    polys = [shape(f["geometry"]) for f in fc["features"]]
    assert polys and all(f["properties"]["area_km2"] > 0 for f in fc["features"])
    with rasterio.open(result.scene) as src:
        to_ll = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        truth = unary_union(pixel_polygons(sample.mask == WATER, src.transform))
    truth = shapely.transform(truth, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
    mapped_union = unary_union(polys)
    lon, lat = mapped_union.centroid.x, mapped_union.centroid.y
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert mapped_union.intersection(truth).area / mapped_union.union(truth).area > 0.95
    kept = sum(f["properties"]["area_km2"] for f in fc["features"])
    assert kept == pytest.approx(json.loads(result.paths["stats"].read_text())["polygon_area_km2"], rel=1e-4)


@pytest.mark.parametrize("probability", ["uint8", "float32"])
def test_constant_model_gives_a_constant_map(tmp_path, probability):
    sample = make_scene(tmp_path / "s.tif", 150, 170, nodata_border=8)
    r = map_scene(tmp_path / "s.tif", ConstantPredictor(0.37), tmp_path / "out", probability=probability, **TILING)
    prob, info = read(r.paths["probability"])
    inside = prob[sample.valid]
    if probability == "uint8":
        assert (inside == 37).all()
    else:
        np.testing.assert_allclose(inside, 0.37, atol=1e-6)
        assert np.isnan(prob[~sample.valid]).all()
    mask, _ = read(r.paths["mask"])
    assert (mask[sample.valid] == 0).all() and r.stats["flooded_km2"] == 0


def test_scene_smaller_than_a_tile(tmp_path):
    sample = make_scene(tmp_path / "tiny.tif", 40, 30, seed=5, water_fraction=0.3)
    r = map_scene(tmp_path / "tiny.tif", ThresholdPredictor(), tmp_path / "out", **TILING)
    mask, info = read(r.paths["mask"])
    assert info["shape"] == (40, 30) and r.stats["tiles"] == 1
    np.testing.assert_array_equal(mask, (sample.image[0] < WATER_DB).astype(np.uint8))


def test_cog_has_overviews(tmp_path):
    make_scene(tmp_path / "s.tif", 700, 600, seed=1)
    r = map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "out", tile=128, overlap=32, progress=False)
    for key in ("mask", "probability"):
        assert read(r.paths[key])[1]["overviews"]


def test_a_failing_cog_beside_vectorising_leaves_nothing(tmp_path, monkeypatch):
    """The probability COG is made beside vectorising (on a thread for a scene this small, so that the failure
    can be injected): its error still stops the run, and the output folder is not left half-written."""
    import floodwatch.mapping.outputs as outputs

    make_scene(tmp_path / "s.tif", 300, 200, seed=1)
    real = outputs.to_cog

    def failing(src, dst, level=6):
        if "probability" in dst.name:
            raise OSError("disk full")
        real(src, dst, level)

    monkeypatch.setattr(outputs, "to_cog", failing)
    with pytest.raises(OSError, match="disk full"):
        map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "out", tile=128, overlap=32, progress=False)
    assert not (tmp_path / "out" / "s").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_two_linear_single_band_files_equal_one_db_file(tmp_path):
    make_scene(tmp_path / "both.tif", 130, 90, seed=2)
    with rasterio.open(tmp_path / "both.tif") as src:
        profile = src.profile | {"count": 1}
        for i, name in ((1, "vv"), (2, "vh")):
            with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
                dst.write((10 ** (src.read(i) / 10)).astype(np.float32), 1)
    ref = map_scene(tmp_path / "both.tif", ThresholdPredictor(), tmp_path / "a", **TILING)
    lin = map_scene(tmp_path / "vv.tif", ThresholdPredictor(), tmp_path / "b", vh=tmp_path / "vh.tif",
                    units="linear", **TILING)
    np.testing.assert_array_equal(read(ref.paths["mask"])[0], read(lin.paths["mask"])[0])
    assert lin.stats["flooded_km2"] == pytest.approx(ref.stats["flooded_km2"])


def test_all_nodata_scene_gives_an_empty_map(tmp_path):
    make_scene(tmp_path / "s.tif", 70, 80)
    with rasterio.open(tmp_path / "s.tif", "r+") as ds:
        ds.write(np.full((2, 70, 80), np.nan, np.float32))
    pred = ThresholdPredictor()
    r = map_scene(tmp_path / "s.tif", pred, tmp_path / "out", **TILING)
    assert (read(r.paths["mask"])[0] == 255).all() and pred.calls == 0
    assert r.stats["flooded_km2"] == 0 and r.stats["valid_km2"] == 0
    assert r.stats["flooded_fraction"] is None  # no share of nothing seen, not 0 % flooded
    assert json.loads(r.paths["polygons"].read_text())["features"] == []


def test_permanent_water_mask_in_another_grid_is_counted_apart(tmp_path):
    sample = make_scene(tmp_path / "s.tif", 160, 140, seed=4, water_fraction=0.35)
    water = sample.image[0] < WATER_DB
    # Reference water at 20 m on the scene's CRS: each 10 m pixel must pick up its 2x2 parent (nearest).
    coarse = np.zeros((80, 70), np.uint8)
    coarse[:, :35] = water[::2, :70:2]
    t = sample.georef.affine()
    with rasterio.open(tmp_path / "perm.tif", "w", driver="GTiff", width=70, height=80, count=1, dtype="uint8",
                       crs=sample.georef.crs, transform=t @ t.scale(2)) as dst:
        dst.write(coarse, 1)
    r = map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "out", water_mask=tmp_path / "perm.tif",
                  **TILING)
    reference = np.repeat(np.repeat(coarse, 2, 0), 2, 1).astype(bool)
    mask, _ = read(r.paths["mask"])
    np.testing.assert_array_equal(mask == 2, water & reference)
    np.testing.assert_array_equal(mask == 1, water & ~reference)
    s = r.stats
    assert s["permanent_water_km2"] > 0 and s["flooded_km2"] > 0
    assert s["permanent_water_km2"] + s["flooded_km2"] == pytest.approx(s["water_km2"])
    assert s["permanent_water_reference_km2"] >= s["permanent_water_km2"]


def test_permanent_water_mask_in_lonlat_is_reprojected(tmp_path):
    sample = make_scene(tmp_path / "s.tif", 120, 120, seed=6, water_fraction=0.4)
    with rasterio.open(tmp_path / "s.tif") as src:
        bounds = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    w, s_, e, n = bounds
    # Permanent water everywhere west of the scene's middle longitude, on a 0.0005° grid.
    transform = rasterio.Affine((e - w + 0.02) / 100, 0, w - 0.01, 0, -(n - s_ + 0.02) / 100, n + 0.01)
    data = np.zeros((100, 100), np.uint8)
    mid_col = int(round(((w + e) / 2 - (w - 0.01)) / transform.a))
    data[:, :mid_col] = 1
    with rasterio.open(tmp_path / "perm.tif", "w", driver="GTiff", width=100, height=100, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=transform) as dst:
        dst.write(data, 1)
    r = map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "out", water_mask=tmp_path / "perm.tif",
                  **TILING)
    mask, _ = read(r.paths["mask"])
    water = sample.image[0] < WATER_DB
    # Away from the dividing meridian the answer is clear: west is permanent, east is new flood.
    assert (mask[:, :40][water[:, :40]] == 2).all() and (mask[:, 80:][water[:, 80:]] == 1).all()


class _TileMeanPredictor:
    """Not pointwise (each pixel gets its tile's mean VV mixed in), so the blending between windows shows."""

    backend = "tile-mean"

    def __init__(self):
        self.inner = ThresholdPredictor()
        self.preprocessing = self.inner.preprocessing

    def predict(self, batch: np.ndarray) -> np.ndarray:
        p = self.inner.predict(batch)
        return (0.5 * p + 0.5 * p.mean(axis=(1, 2), keepdims=True)).astype(np.float32)


def test_windows_of_any_width_give_the_same_map_and_every_stage_is_timed(tmp_path):
    make_scene(tmp_path / "s.tif", 230, 410, seed=4, nodata_border=20)
    kw = dict(tile=64, overlap=16, batch=2, progress=False, probability="float32")
    one = map_scene(tmp_path / "s.tif", _TileMeanPredictor(), tmp_path / "one", chunk_tiles=1, **kw)
    wide = map_scene(tmp_path / "s.tif", _TileMeanPredictor(), tmp_path / "wide", chunk_tiles=100, **kw)
    a, b = read(one.paths["probability"])[0], read(wide.paths["probability"])[0]
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(read(one.paths["mask"])[0], read(wide.paths["mask"])[0])
    for key in ("valid_pixels", "flooded_pixels", "polygons", "tiles_predicted"):
        assert one.stats[key] == wide.stats[key]
    stages = json.loads(one.paths["stats"].read_text())["stage_seconds"]
    assert list(stages) == ["read", "preprocess", "predict", "blend", "write", "overviews", "cog", "vectorise",
                            "stats"]
    assert all(v > 0 for v in stages.values())


def test_a_failing_cog_helper_process_names_the_file(tmp_path):
    """The helper process's error comes back as one FloodwatchError naming the output and the cause."""
    from floodwatch.errors import FloodwatchError
    from floodwatch.mapping.outputs import finish_raster_in_process

    with pytest.raises(FloodwatchError, match=r"out\.tif: the COG helper process failed: .*missing\.tif"):
        finish_raster_in_process(str(tmp_path / "missing.tif"), str(tmp_path / "out.tif"), "nearest", "x", {})
    assert not (tmp_path / "out.tif").exists()


def test_a_large_scene_makes_its_probability_cog_in_a_helper_process(tmp_path, monkeypatch):
    """The process path end to end (the size threshold lowered): the same outputs as the thread path."""
    import floodwatch.mapping.pipeline as pipeline

    make_scene(tmp_path / "s.tif", 300, 200, seed=1)
    runs = {}
    for name, threshold in (("thread", 10**12), ("process", 1)):
        monkeypatch.setattr(pipeline, "COG_PROCESS_PIXELS", threshold)
        runs[name] = map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / name, tile=128, overlap=32,
                               progress=False)
    for key in ("mask", "probability"):
        with rasterio.open(runs["thread"].paths[key]) as a, rasterio.open(runs["process"].paths[key]) as b:
            assert b.overviews(1) == a.overviews(1)
            np.testing.assert_array_equal(b.read(), a.read())
    assert runs["process"].stats["stage_seconds"]["cog"] > 0


@pytest.mark.parametrize("option", [{"min_area_m2": -1.0}, {"simplify": -0.5}, {"simplify": float("nan")}])
def test_negative_polygon_options_are_refused_before_any_output(tmp_path, option):
    make_scene(tmp_path / "s.tif", 32, 32)
    with pytest.raises(FloodwatchError, match=rf"{next(iter(option))}: .* must be at least 0"):
        map_scene(tmp_path / "s.tif", ThresholdPredictor(), tmp_path / "out", tile=32, overlap=8, **option)
    assert not (tmp_path / "out").exists()


def test_a_model_file_as_predictor_maps_as_the_loaded_predictor_does(tmp_path, tiny_checkpoint):
    from floodwatch.errors import InvalidArgumentError
    from floodwatch.inference import load_predictor
    from floodwatch.mapping import predictor_options

    make_scene(tmp_path / "s.tif", 70, 60)
    loaded = load_predictor(tiny_checkpoint, **predictor_options(tiny_checkpoint))
    runs = {"path": map_scene(tmp_path / "s.tif", str(tiny_checkpoint), tmp_path / "path", **TILING),
            "loaded": map_scene(tmp_path / "s.tif", loaded, tmp_path / "loaded", model=tiny_checkpoint, **TILING)}
    for key in ("mask", "probability"):
        a, _ = read(runs["path"].paths[key])
        b, _ = read(runs["loaded"].paths[key])
        np.testing.assert_array_equal(a, b)
    timing = ("runtime_s", "tiles_per_s", "km2_per_s", "stage_seconds")
    path_stats, loaded_stats = ({k: v for k, v in r.stats.items() if k not in timing} for r in runs.values())
    assert path_stats == loaded_stats and path_stats["model"] == str(tiny_checkpoint.absolute())
    assert path_stats["backend"] == "torch"  # as `map -m FILE` records it
    ensemble = map_scene(tmp_path / "s.tif", [tiny_checkpoint, tiny_checkpoint], tmp_path / "ens", **TILING)
    assert ensemble.stats["model"] == [str(tiny_checkpoint.absolute())] * 2
    with pytest.raises(InvalidArgumentError, match="^model: "):  # one file recorded, another one run
        map_scene(tmp_path / "s.tif", tiny_checkpoint, tmp_path / "x", model="other.pt", **TILING)
    assert not (tmp_path / "x").exists()
