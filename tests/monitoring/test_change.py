import json

import numpy as np
import pytest
import rasterio
import torch

from floodwatch.data.preprocess import Preprocessing
from floodwatch.errors import FloodwatchError
from floodwatch.models import build_model
from floodwatch.models.checkpoint import save_checkpoint
from floodwatch.inference.predictor import TorchPredictor
from floodwatch.data.synthetic import write_scene
from floodwatch.monitoring.change import detect_change, logratio_change
from floodwatch.monitoring.geo import read_geojson_geometry, geodesic_area_km2

from monitoring_helpers import scene_pair


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_logratio_matches_numpy_definition():
    rng = np.random.default_rng(0)
    before = rng.uniform(-25, 0, (2, 16, 16)).astype(np.float32)
    after = rng.uniform(-25, 0, (2, 16, 16)).astype(np.float32)
    valid = np.ones((16, 16), bool)
    new, diff, thr = logratio_change(before[0], after[0], valid, -3.0)
    ratio = 10 ** (after[0] / 10) / 10 ** (before[0] / 10)  # linear power ratio
    np.testing.assert_array_equal(new, 10 * np.log10(ratio) < -3.0)
    assert thr == -3.0


def test_difference_finds_known_new_water(pair, predictor, tmp_path):
    before, after, truth = pair
    res = detect_change(before, after, predictor, tmp_path / "out", method="difference", tile=64, overlap=16)
    assert iou(res.new_water, truth) > 0.8
    # nothing that was water before is called new
    assert (res.new_water & (before.mask == 1)).sum() < 0.08 * truth.sum()
    with rasterio.open(res.paths["change_mask"]) as src:
        assert src.crs.to_string() == "EPSG:32633"
        assert src.transform == after.georef.affine()
        m = src.read(1)
    np.testing.assert_array_equal(m == 1, res.new_water)
    # polygons are EPSG:4326 and their ellipsoidal area matches pixel counting in UTM (10 m px) within 1%
    geom = read_geojson_geometry(res.paths["flood_polygons"])
    assert -180 <= geom.bounds[0] <= 180 and 40 < geom.bounds[1] < 50
    assert res.stats["flooded_km2"] == pytest.approx(geodesic_area_km2(geom))
    assert res.stats["flooded_km2"] == pytest.approx(res.new_water.sum() * 100 / 1e6, rel=0.01)
    assert json.loads(res.paths["stats"].read_text())["method"] == "difference"
    assert res.paths["quicklook"].stat().st_size > 1000


@pytest.mark.parametrize("threshold", [-3.0, "otsu"])
def test_logratio_baseline_on_files(tmp_path, threshold):
    before, after, truth = scene_pair(seed=5)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    res = detect_change(tmp_path / "b.tif", tmp_path / "a.tif", None, tmp_path / "out", method="logratio",
                        logratio_threshold=threshold)
    assert iou(res.new_water, truth) > 0.5
    assert res.stats["before"] == "b" and res.stats["after"] == "a"
    # the dB threshold the mask was cut at, also when Otsu fitted it, and where it came from
    assert isinstance(res.stats["threshold"], float) and res.stats["threshold"] < 0
    assert res.stats["threshold"] == -3.0 if threshold == -3.0 else res.stats["threshold"] != -3.0
    assert res.stats["threshold_from"] == ("otsu" if threshold == "otsu" else "given")
    assert res.stats["band"] == "VV" and res.stats["band_from"] == {"before": "name", "after": "name"}


def _brightened_pair():
    """Before, and after = before with a block 6 dB brighter (vegetation, a wet roof): no water came, none left."""
    from floodwatch.data.sample import Sample

    before, _, _ = scene_pair(size=64, seed=5)
    image = before.image.copy()
    image[:, 8:40, 8:40] += 6.0
    after = Sample(image=image, mask=None, valid=before.valid, id="after", georef=before.georef, bands=before.bands)
    return before, after


def test_an_otsu_fit_that_is_no_drop_maps_no_new_water(tmp_path):
    """Otsu always splits the histogram; on a pair that only brightened its split lies above the unchanged
    pixels' level (the median difference, 0 dB here), and cutting there would call them new water."""
    before, after = _brightened_pair()
    fitted = logratio_change(before.image[0], after.image[0], before.valid, "otsu")[2]
    assert fitted > 0  # the pair this test is about
    res = detect_change(before, after, None, tmp_path / "out", method="logratio", logratio_threshold="otsu")
    assert res.stats["flooded_pixels"] == 0 and not res.new_water.any()
    stats = json.loads(res.paths["stats"].read_text())
    assert stats["threshold"] == pytest.approx(fitted) and stats["threshold_from"] == "otsu"
    assert stats["threshold_applied"] is False
    assert len(stats["warnings"]) == 1 and f"+{fitted:.2f} dB" in stats["warnings"][0]
    # a typed threshold is applied as given (a drop of 3 dB: nothing here dropped)
    given = detect_change(before, after, None, tmp_path / "given", method="logratio")
    assert given.stats["threshold_applied"] is True and given.stats["warnings"] == []


def test_an_otsu_fit_above_0_db_is_a_drop_on_an_offset_picture_pair(tmp_path):
    """8-bit pictures (OMBRIA's) put a pair's unchanged pixels several dB apart: the after picture 4 dB brighter
    overall, its flooded block 2 dB darker than before. Otsu's cut lies above 0 dB but below the unchanged
    level (there the median difference), so it is a drop and is applied."""
    from floodwatch.data.sample import Sample

    before, _, _ = scene_pair(size=64, seed=5)
    before = Sample(image=before.image, mask=None, valid=before.valid, id="before", georef=before.georef,
                    bands=before.bands, extra={"picture": True})
    image = before.image + 4.0 + np.random.default_rng(0).normal(0, 1.0, before.image.shape).astype(np.float32)
    image[:, 8:40, 8:40] -= 6.0
    after = Sample(image=image, mask=None, valid=before.valid, id="after", georef=before.georef, bands=before.bands,
                   extra={"picture": True})
    res = detect_change(before, after, None, tmp_path / "out", method="logratio", logratio_threshold="otsu")
    assert 0 < res.stats["threshold"] < 3.0 < res.stats["unchanged_level_db"] < 4.5
    assert res.stats["threshold_applied"] is True and res.stats["warnings"] == []
    flooded = np.zeros(res.new_water.shape, bool)
    flooded[8:40, 8:40] = True
    assert res.new_water[flooded].mean() > 0.95 and res.new_water[~flooded].mean() < 0.01


def test_an_otsu_fit_maps_a_flood_over_most_of_a_calibrated_pair(tmp_path):
    """dB scenes: the unchanged level is 0 dB whatever share flooded; 60 % of the pair 8 dB darker is mapped
    (a median rule would put the unchanged level inside the flood and map nothing)."""
    from floodwatch.data.sample import Sample

    before, _, _ = scene_pair(size=64, seed=5)
    image = before.image + np.random.default_rng(1).normal(0, 0.5, before.image.shape).astype(np.float32)
    flooded = np.zeros(image.shape[1:], bool)
    flooded[:, :38] = True  # 38 of 64 columns: 59 %
    image[:, flooded] -= 8.0
    after = Sample(image=image, mask=None, valid=before.valid, id="after", georef=before.georef, bands=before.bands)
    res = detect_change(before, after, None, tmp_path / "out", method="logratio", logratio_threshold="otsu",
                        min_pixels=1)
    assert res.stats["threshold"] < 0 and res.stats["unchanged_level_db"] == 0.0
    assert res.stats["threshold_applied"] is True
    assert res.new_water[flooded].mean() > 0.99 and res.new_water[~flooded].mean() < 0.01


def test_one_unnamed_band_serves_as_the_asked_band_and_stats_say_so(tmp_path):
    """A one-band GeoTIFF without a description (as an OMBRIA picture) is taken as --band by position."""
    import rasterio

    before, after, _ = scene_pair(size=64)
    paths = []
    for s in (before, after):
        write_scene(s, tmp_path / f"{s.id}.tif")
        with rasterio.open(tmp_path / f"{s.id}.tif") as src:
            profile, data = src.profile | {"count": 1}, src.read([1])
        with rasterio.open(tmp_path / f"{s.id}_1.tif", "w", **profile) as dst:
            dst.write(data)  # no description
        paths.append(tmp_path / f"{s.id}_1.tif")
    res = detect_change(*paths, None, tmp_path / "out", method="logratio", band="vh")
    stats = json.loads(res.paths["stats"].read_text())
    assert stats["band"] == "VH" and stats["band_from"] == {"before": "position", "after": "position"}
    named = detect_change(tmp_path / "before.tif", tmp_path / "after.tif", None, tmp_path / "named",
                          method="logratio", band="VV")
    np.testing.assert_array_equal(res.new_water, named.new_water)  # the same pixels, the band 1 of both


def test_a_named_band_is_not_taken_for_another(tmp_path):
    from floodwatch.data.sample import Sample

    before, after, _ = scene_pair(size=64)
    vv = [Sample(image=s.image[:1], mask=None, valid=s.valid, id=s.id, georef=s.georef, bands=("VV",))
          for s in (before, after)]
    with pytest.raises(FloodwatchError, match=r"^band: 'VH' is not one of the bands of 'before' \(VV\)$"):
        detect_change(*vv, None, tmp_path / "o", method="logratio", band="VH")
    assert not (tmp_path / "o").exists()


def test_misaligned_before_is_reprojected(tmp_path, predictor):
    before, after, truth = scene_pair(size=64)
    # the same scene, written shifted by 8 px: the aligned result equals the unshifted one inside
    from floodwatch.data.sample import GeoRef, Sample
    t = list(before.georef.transform)
    shifted = Sample(image=np.pad(before.image, ((0, 0), (8, 0), (8, 0)), constant_values=np.nan),
                     mask=None, valid=np.pad(before.valid, ((8, 0), (8, 0))), id="b",
                     georef=GeoRef(before.georef.crs, (t[0], 0.0, t[2] - 80.0, 0.0, t[4], t[5] + 80.0)))
    a = detect_change(before, after, predictor, tmp_path / "a", tile=64)
    b = detect_change(shifted, after, predictor, tmp_path / "b", tile=64)
    assert iou(a.new_water, b.new_water) > 0.95


def test_bitemporal_model_gets_stacked_channels(tmp_path):
    torch.manual_seed(0)
    model = build_model(num_layers=10, in_channels=4, use_batch_norm=True)
    ckpt = save_checkpoint(tmp_path / "bt.pt", model, model_config={"num_layers": 10, "in_channels": 4,
                                                                      "temporal": "bitemporal"},
                           preprocessing=Preprocessing())
    pred = TorchPredictor(ckpt, device="cpu")
    seen = []
    orig = pred.predict
    pred.predict = lambda x: (seen.append(x.shape), orig(x))[1]
    before, after, _ = scene_pair(size=64)
    res = detect_change(before, after, pred, tmp_path / "out", method="bitemporal", tile=64, overlap=0)
    assert seen and all(s[1] == 4 for s in seen)
    assert res.new_water.shape == after.shape
    with pytest.raises(FloodwatchError, match="bi-temporal"):
        detect_change(before, after, pred, tmp_path / "x", method="difference")


def test_bad_inputs(tmp_path, pair, predictor):
    before, after, _ = pair
    with pytest.raises(FloodwatchError, match="not found"):
        detect_change(tmp_path / "nope.tif", after, predictor, tmp_path / "o")
    with pytest.raises(FloodwatchError, match="^method: "):
        detect_change(before, after, predictor, tmp_path / "o", method="magic")
    with pytest.raises(FloodwatchError, match="needs a model"):
        detect_change(before, after, None, tmp_path / "o", method="difference")
    with pytest.raises(FloodwatchError, match="bi-temporal"):
        detect_change(before, after, predictor, tmp_path / "o", method="bitemporal")
    assert not (tmp_path / "o").exists()


def test_read_scene_takes_untagged_zero_fill_as_no_data(tmp_path):
    from floodwatch.monitoring.change import read_scene

    image = np.full((2, 8, 8), -12.0, np.float32)
    image[0, 0, :3] = 0.0       # Earth Engine exports unmasked to 0, no nodata tag
    image[1, 1, :2] = -9999.0   # the nodata tag
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", width=8, height=8, count=2, dtype="float32",
                       nodata=-9999.0) as dst:
        dst.write(image)
    s = read_scene(tmp_path / "s.tif")
    assert not s.valid[0, :3].any() and not s.valid[1, :2].any() and s.valid.sum() == 64 - 5
    assert np.isnan(s.image[0, 0, :3]).all() and np.isnan(s.image[1, 1, :2]).all()


def _reprojected(src_path, dst_path, crs="EPSG:4326"):
    """`src_path` warped into `crs` at about its own resolution (bilinear, NaN outside), as another tool would."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        transform, w, h = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        out = np.full((src.count, h, w), np.nan, np.float32)
        reproject(src.read(), out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs=crs, src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.bilinear)
        profile = dict(src.profile, crs=crs, transform=transform, width=w, height=h, nodata=np.nan)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(out)
    return dst_path


def test_before_in_another_crs_gives_the_same_change(tmp_path, predictor):
    before, after, truth = scene_pair(size=96)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    _reprojected(tmp_path / "b.tif", tmp_path / "b_4326.tif")
    with rasterio.open(tmp_path / "b_4326.tif") as src:
        assert src.crs.to_epsg() == 4326 and after.georef.crs == "EPSG:32633"
    same = detect_change(tmp_path / "b.tif", tmp_path / "a.tif", predictor, tmp_path / "same", tile=64)
    other = detect_change(tmp_path / "b_4326.tif", tmp_path / "a.tif", predictor, tmp_path / "other", tile=64)
    # two bilinear warps blur the before scene a little and may cut its edge pixels
    assert other.valid.sum() > 0.99 * same.valid.sum()
    assert iou(other.new_water, same.new_water) > 0.9
    assert iou(other.new_water, truth) > 0.75


def test_stats_bounds_are_west_south_east_north(tmp_path):
    before, after, _ = scene_pair(size=64)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    res = detect_change(tmp_path / "b.tif", tmp_path / "a.tif", None, tmp_path / "out", method="logratio")
    with rasterio.open(tmp_path / "a.tif") as src:
        expected = list(src.bounds)
    assert json.loads(res.paths["stats"].read_text())["bounds"] == pytest.approx(expected)
    # known geometry: 64 px of 10 m from the top-left corner (400000, 5000000) in UTM 33N
    assert expected == pytest.approx([400000.0, 5000000.0 - 640.0, 400000.0 + 640.0, 5000000.0])


@pytest.mark.parametrize("option, value, message", [
    ("threshold", 2.0, "^threshold: 2.0 must lie strictly between 0 and 1"),
    ("threshold", 0.0, "^threshold: "),
    ("batch", 0, "^batch: 0 must be at least 1"),
    ("batch", -1, "^batch: -1 must be at least 1"),
    ("tile", -5, "^tile: -5 px is too small"),
    ("tile", 0, "^tile: "),
    ("tile", 7, "^tile: 7 px is too small"),
])
def test_bad_options_are_refused_before_any_output(tmp_path, pair, predictor, option, value, message):
    before, after, _ = pair
    with pytest.raises(FloodwatchError, match=message):
        detect_change(before, after, predictor, tmp_path / "o", **{option: value})
    assert not (tmp_path / "o").exists()


def _logratio(before, after, out):
    return detect_change(before, after, None, out, method="logratio")


def test_an_output_folder_holding_the_users_files_is_refused_and_kept(tmp_path, pair, monkeypatch):
    before, after, _ = pair
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    import floodwatch.monitoring.change as change

    worked = []
    real = change.change_arrays
    monkeypatch.setattr(change, "change_arrays", lambda *a, **k: (worked.append(1), real(*a, **k))[1])
    with pytest.raises(FloodwatchError) as err:
        _logratio(before, after, keep)
    assert str(err.value) == f"{keep}: holds notes.txt, which change did not write; give a new or empty folder"
    assert not worked  # refused before the change was computed
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "mine"
    # the same beside an earlier run's outputs: they stay too
    res = _logratio(before, after, tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(FloodwatchError, match="holds notes.txt, which change did not write"):
        _logratio(before, after, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        [p.name for p in res.paths.values()] + ["notes.txt"])


def test_rerun_replaces_its_own_outputs_and_an_empty_folder_works(tmp_path, pair):
    before, after, _ = pair
    out = tmp_path / "out"
    out.mkdir()  # empty, as `mkdir out` leaves it
    first = _logratio(before, after, out)
    names = sorted(p.name for p in first.paths.values())
    assert sorted(p.name for p in out.iterdir()) == names
    (out / "stats.json").write_text("{}")  # an earlier run's output: replaced, not refused
    _logratio(before, after, out)
    assert sorted(p.name for p in out.iterdir()) == names
    assert json.loads((out / "stats.json").read_text())["method"] == "logratio"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_scenes_stored_vh_vv_are_read_by_band_name(pair, predictor, tmp_path):
    from floodwatch.data.sample import Sample

    before, after, _ = pair
    plain = detect_change(before, after, predictor, tmp_path / "plain", tile=64, overlap=16)
    paths = []
    for s, name in ((before, "b.tif"), (after, "a.tif")):  # written VH first, the descriptions say so
        swapped = Sample(image=s.image[::-1].copy(), mask=None, valid=s.valid, id=s.id, georef=s.georef,
                         bands=("VH", "VV"))
        write_scene(swapped, tmp_path / name)
        paths.append(tmp_path / name)
    res = detect_change(*paths, predictor, tmp_path / "swapped", tile=64, overlap=16)
    np.testing.assert_array_equal(res.new_water, plain.new_water)


def test_a_picture_and_a_geotiff_are_refused_naming_the_unplaced_one(tmp_path):
    """Of the same size they were "not on one grid" by their shapes, which were equal."""
    from PIL import Image

    before, _, _ = scene_pair()
    write_scene(before, tmp_path / "before.tif")
    h, w = before.shape
    Image.fromarray(np.full((h, w), 120, np.uint8)).save(tmp_path / "after.png")
    Image.fromarray(np.full((h + 8, w), 120, np.uint8)).save(tmp_path / "taller.png")
    with pytest.raises(FloodwatchError, match=r"after.png: has no georeference, and .*before.tif has one"):
        detect_change(tmp_path / "before.tif", tmp_path / "after.png", None, tmp_path / "o1", method="logratio")
    with pytest.raises(FloodwatchError, match=rf"taller.png: {h + 8}x{w} px and after .*after.png {h}x{w} px, "
                                              "pictures without georeference: they must be the same size"):
        detect_change(tmp_path / "taller.png", tmp_path / "after.png", None, tmp_path / "o2", method="logratio")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
