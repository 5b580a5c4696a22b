import json

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.synthetic import synth_scene, write_scene
from floodwatch.errors import DataError
from floodwatch.inference.chips import infer_chips, read_chip
from floodwatch.inference.predictor import water_probability


class DarkIsWater:
    """Known output: probability from a logistic of the normalised VH (dark = water)."""

    preprocessing = Preprocessing()

    def predict(self, batch):
        logits = np.stack([np.zeros_like(batch[:, 1]), -4.0 * (batch[:, 1] + 0.4)], axis=1)
        return water_probability(torch.from_numpy(logits))


@pytest.fixture(scope="module")
def chip_tif(tmp_path_factory):
    s = synth_scene(48, 40, seed=5, water_fraction=0.3, nodata_border=4, crs="EPSG:32633",
                    origin=(350000.0, 5200000.0), pixel_size=20.0, id="scene5")
    path = tmp_path_factory.mktemp("in") / "scene5.tif"
    write_scene(s, path)
    return path, s


def test_geotiff_outputs_keep_crs_transform_and_match_the_predictor(chip_tif, tmp_path):
    path, s = chip_tif
    records = infer_chips(DarkIsWater(), [path], tmp_path / "out", progress=False)
    out = records[0]["outputs"]
    with rasterio.open(path) as src, rasterio.open(out["mask_tif"]) as m, rasterio.open(out["prob_tif"]) as p:
        assert m.crs == src.crs and m.transform == src.transform and (m.width, m.height) == (40, 48)
        assert p.crs == src.crs and p.transform == src.transform
        mask, prob = m.read(1), p.read(1)
    expected = DarkIsWater().predict(Preprocessing().apply(s.image, s.valid)[None])[0]
    np.testing.assert_allclose(prob[s.valid], expected[s.valid], atol=1e-6)
    assert np.isnan(prob[~s.valid]).all() and (mask[~s.valid] == 255).all()
    np.testing.assert_array_equal(mask[s.valid], (expected[s.valid] >= 0.5).astype(np.uint8))
    # the dark-VH rule finds the synthetic water well, so the mask is not trivially empty or full
    truth = s.mask[s.valid] == 1
    found = mask[s.valid] == 1
    assert (found & truth).sum() / (found | truth).sum() > 0.5
    with Image.open(out["mask_png"]) as im:
        assert im.size == (40, 48) and set(np.unique(np.asarray(im))) <= {0, 255}
    with Image.open(out["overlay_png"]) as im:
        assert im.size == (2 * 40 + 4, 48)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["chips"][0]["water_fraction"] == pytest.approx(found.mean())


def test_png_chips_without_georef_write_pngs_only(tmp_path):
    from floodwatch.data.harmonise import to_db

    grey = np.full((32, 32), 150, np.uint8)
    grey[:, :10] = 10
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "tile.png")

    class OneBand(DarkIsWater):  # water below the dB of 8-bit 80, whatever the folders map is
        preprocessing = Preprocessing(bands=["VV"], clip=[(-50, 5)], offset=[float(to_db(80, "folders", "VV"))],
                                      scale=[0.2])

        def predict(self, batch):
            return (batch[:, 0] < 0.0).astype(np.float32)

    s = read_chip(tmp_path / "tile.png", bands=["VV"])
    assert s.georef is None and s.image.shape == (1, 32, 32) and s.bands == ("VV",)
    np.testing.assert_allclose(s.image[0], to_db(grey, "folders", "VV"))
    rec = infer_chips(OneBand(), [tmp_path / "tile.png"], tmp_path / "o", progress=False)[0]
    assert "mask_tif" not in rec["outputs"]
    mask = np.asarray(Image.open(rec["outputs"]["mask_png"]))
    assert (mask[:, :10] == 255).all() and (mask[:, 10:] == 0).all()


def test_etci_style_vv_png_finds_its_vh_partner(tmp_path):
    from floodwatch.data.harmonise import to_db

    for band, value in (("vv", 100), ("vh", 200)):
        (tmp_path / band).mkdir()
        Image.fromarray(np.full((16, 16), value, np.uint8)).save(tmp_path / band / f"t_x-1_y-2_{band}.png")
    s = read_chip(tmp_path / "vv" / "t_x-1_y-2_vv.png", bands=["VV", "VH"])
    assert s.bands == ("VV", "VH")
    np.testing.assert_allclose(s.image[1], to_db(np.full((16, 16), 200), "folders", "VH"))
    (tmp_path / "vh" / "t_x-1_y-2_vh.png").unlink()
    with pytest.raises(DataError, match="no t_x-1_y-2_vh.png"):
        read_chip(tmp_path / "vv" / "t_x-1_y-2_vv.png", bands=["VV", "VH"])


def test_bad_inputs_are_one_line_errors(chip_tif, tmp_path):
    path, _ = chip_tif
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: not a chip file"):
        infer_chips(DarkIsWater(), [tmp_path / "notes.txt"], tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="missing.tif: input chip not found"):
        infer_chips(DarkIsWater(), [tmp_path / "missing.tif"], tmp_path / "o", progress=False)

    class ThreeBand(DarkIsWater):
        preprocessing = Preprocessing(bands=["VV", "VH", "HH"], clip=[(-50, 5)] * 3, offset=[0] * 3, scale=[1] * 3)

    with pytest.raises(DataError, match="scene5: data has 2 band"):
        infer_chips(ThreeBand(), [path], tmp_path / "o", progress=False)


def test_a_chips_missing_pixels_are_its_nodata_nan_and_exact_zero(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(-12, 3, (2, 16, 16)).astype(np.float32)
    image[0, 0, :4] = -9999.0   # the file's nodata tag
    image[1, 1, :4] = 0.0       # the fill of dB products that tag none (STAC Overflow, Earth Engine)
    image[0, 2, :4] = np.nan
    image[1, 3, 0] = -0.02      # near 0 dB is data
    path = tmp_path / "c.tif"
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=2, dtype="float32",
                       nodata=-9999.0) as dst:
        dst.write(image)
    s = read_chip(path)
    want = np.ones((16, 16), bool)
    want[0, :4] = want[1, :4] = want[2, :4] = False
    np.testing.assert_array_equal(s.valid, want)
    assert np.isnan(s.image[0, 0, :4]).all() and s.image[1, 3, 0] == np.float32(-0.02)
