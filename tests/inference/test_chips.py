import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.synthetic import synth_scene, write_scene
from floodwatch.errors import DataError, FloodwatchError
from floodwatch.inference.chips import chip_sources, infer_chips, read_chip
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


def test_summary_lists_outputs_usable_from_another_folder(chip_tif, tmp_path, monkeypatch):
    path, _ = chip_tif
    monkeypatch.chdir(tmp_path)
    infer_chips(DarkIsWater(), [path], "out", progress=False)  # -o given relative, as on a command line
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    monkeypatch.chdir(path.parent)
    assert summary["chips"][0]["input"] == str(path)
    assert all(Path(p).is_file() for p in summary["chips"][0]["outputs"].values())


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
    with Image.open(out["overlay_png"]) as im:  # two panels side by side, a legend strip below them
        assert im.size[0] == 2 * 40 + 4 and im.size[1] > 48
        strip = np.asarray(im.convert("L"))[48:]
    assert (strip < 128).sum() > 50  # titles and colour names written there, not a blank strip
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


def test_etci_band_folders_pair_as_files_side_by_side_do(tmp_path):
    for band, value in (("vv", 100), ("vh", 200)):  # ETCI's layout: each band in its own folder
        (tmp_path / "tiles" / band).mkdir(parents=True)
        Image.fromarray(np.full((16, 16), value, np.uint8)).save(tmp_path / "tiles" / band / f"t_{band}.png")
    vv, vh = tmp_path / "tiles" / "vv" / "t_vv.png", tmp_path / "tiles" / "vh" / "t_vh.png"
    alone = chip_sources([vv], bands=["VV", "VH"])  # reads its VH from ../vh/
    assert [c.input for c in alone] == [str(vv)]
    for given in ([vv, vh], [vh, vv], [tmp_path / "tiles" / "vv", tmp_path / "tiles" / "vh"]):
        [source] = chip_sources(given, bands=["VV", "VH"])
        np.testing.assert_array_equal(source.read().image, alone[0].read().image)
    with pytest.raises(DataError, match=f"^{vv}: given twice"):
        chip_sources([vv, vh, vv], bands=["VV", "VH"])


def test_bad_inputs_are_one_line_errors(chip_tif, tmp_path):
    path, _ = chip_tif
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: not a chip file"):
        infer_chips(DarkIsWater(), [tmp_path / "notes.txt"], tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="missing.tif: input chip not found"):
        infer_chips(DarkIsWater(), [tmp_path / "missing.tif"], tmp_path / "o", progress=False)

    class ThreeBand(DarkIsWater):
        preprocessing = Preprocessing(bands=["VV", "VH", "HH"], clip=[(-50, 5)] * 3, offset=[0] * 3, scale=[1] * 3)

    with pytest.raises(DataError, match="scene5.tif: data has 2 band"):
        infer_chips(ThreeBand(), [path], tmp_path / "o", progress=False)


def test_library_messages_name_arguments_not_commands(chip_tif, tmp_path):
    """infer_chips said "infer: ... use `floodwatch evaluate`" from Python; the CLI maps `predictor` to -m."""
    path, _ = chip_tif

    class BiTemporal(DarkIsWater):
        meta = {"model_config": {"temporal": "bitemporal"}}

    with pytest.raises(DataError, match="^predictor: a bi-temporal model needs before/after pairs") as err:
        infer_chips(BiTemporal(), [path], tmp_path / "o", progress=False)
    assert "floodwatch" not in str(err.value) and not (tmp_path / "o").exists()
    with pytest.raises(DataError, match="^inputs: no input chips given"):
        infer_chips(DarkIsWater(), [], tmp_path / "o", progress=False)


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


# -- paired band files and data set folders: what `map` and `evaluate` read, `infer` reads alike ----------
def _outputs(records, *names):
    """{chip id: {output name: array}} of infer_chips' records."""
    out = {}
    for r in records:
        arrays = {}
        for name in names:
            if name.endswith("_tif"):
                with rasterio.open(r["outputs"][name]) as src:
                    arrays[name] = src.read(1)
            else:
                arrays[name] = np.asarray(Image.open(r["outputs"][name]))
        out[r["id"]] = arrays
    return out


def _assert_same_outputs(got, want):
    assert sorted(got) == sorted(want)
    for chip in want:
        for name, array in want[chip].items():
            np.testing.assert_array_equal(got[chip][name], array, err_msg=f"{chip} {name}")


def test_a_folder_of_vv_vh_png_pairs_predicts_as_the_same_chips_stacked(tmp_path):
    from floodwatch.data.harmonise import EIGHT_BIT_TO_DB

    rng = np.random.default_rng(3)
    pairs, stacked = tmp_path / "pairs", tmp_path / "stacked"
    pairs.mkdir(), stacked.mkdir()
    expected = {}
    for chip in ("t_x-0_y-0", "t_x-1_y-0"):
        water = rng.random((24, 20)) < 0.3
        vv = np.where(water, rng.integers(0, 40, water.shape), rng.integers(110, 230, water.shape)).astype(np.uint8)
        vh = np.where(water, rng.integers(0, 40, water.shape), rng.integers(90, 200, water.shape)).astype(np.uint8)
        Image.fromarray(np.stack([vv] * 3, -1)).save(pairs / f"{chip}_vv.png")  # ETCI's RGB-of-grey PNGs
        Image.fromarray(vh).save(pairs / f"{chip}_vh.png")
        # the same chip as one two-band dB GeoTIFF, through the documented 8-bit map written out by hand
        db = np.stack([v.astype(np.float32) * np.float32(EIGHT_BIT_TO_DB["etci"][b][0])
                       + np.float32(EIGHT_BIT_TO_DB["etci"][b][1]) for v, b in ((vv, "VV"), (vh, "VH"))])
        with rasterio.open(stacked / f"{chip}.tif", "w", driver="GTiff", width=20, height=24, count=2,
                           dtype="float32") as dst:
            dst.write(db)
        expected[chip] = DarkIsWater().predict(Preprocessing().apply(db, np.ones((24, 20), bool))[None])[0]
    got = infer_chips(DarkIsWater(), [pairs], tmp_path / "o_pairs", progress=False)
    want = infer_chips(DarkIsWater(), [stacked], tmp_path / "o_stacked", progress=False)
    assert [r["id"] for r in got] == ["t_x-0_y-0", "t_x-1_y-0"]  # one chip per pair, named without _vv
    assert [r["input"] for r in got] == [str(pairs / "t_x-0_y-0_vv.png"), str(pairs / "t_x-1_y-0_vv.png")]
    assert sorted(p.name for p in (tmp_path / "o_pairs").iterdir()) == sorted(
        [f"{c}_{k}.png" for c in expected for k in ("mask", "prob", "overlay")] + ["summary.json"])
    names = ("mask_png", "prob_png", "overlay_png")
    _assert_same_outputs(_outputs(got, *names), _outputs(want, *names))
    for chip, prob in expected.items():
        mask = np.asarray(Image.open(tmp_path / "o_pairs" / f"{chip}_mask.png"))
        np.testing.assert_array_equal(mask, np.where(prob >= 0.5, 255, 0))
        assert 0 < (mask == 255).mean() < 1


@pytest.fixture
def stac_pairs(tmp_path):
    """STAC Overflow-style single-band dB GeoTIFF pairs, and the same chips stacked into two-band GeoTIFFs
    (written with rasterio from the band files, not by floodwatch)."""
    from tests.data import fakes

    fakes.stac_overflow(tmp_path / "so", labels="", metadata=False)
    pairs = tmp_path / "so" / "train_features"
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    for vv in sorted(pairs.glob("*_vv.tif")):
        chip = vv.name[:-len("_vv.tif")]
        with rasterio.open(vv) as a, rasterio.open(pairs / f"{chip}_vh.tif") as b:
            profile = {**a.profile, "count": 2}
            bands = np.concatenate([a.read(), b.read()])
        with rasterio.open(stacked / f"{chip}.tif", "w", **profile) as dst:
            dst.write(bands)
    return pairs, stacked


def test_vv_vh_geotiff_pairs_predict_as_the_same_chips_stacked(stac_pairs, tmp_path):
    pairs, stacked = stac_pairs
    names = ("mask_tif", "prob_tif", "mask_png", "prob_png", "overlay_png")
    want = infer_chips(DarkIsWater(), [stacked], tmp_path / "o_stacked", progress=False)
    folder = infer_chips(DarkIsWater(), [pairs], tmp_path / "o_folder", progress=False)
    files = infer_chips(DarkIsWater(), sorted(pairs.iterdir(), reverse=True), tmp_path / "o_files", progress=False)
    assert [r["id"] for r in folder] == ["awc00", "awc01", "kuo05"]
    assert [r["id"] for r in files] == ["kuo05", "awc01", "awc00"]  # files as given, each VH with its VV
    _assert_same_outputs(_outputs(folder, *names), _outputs(want, *names))
    _assert_same_outputs(_outputs(files, *names), _outputs(want, *names))
    with rasterio.open(pairs / "awc01_vv.tif") as src, rasterio.open(folder[1]["outputs"]["prob_tif"]) as p:
        assert p.crs == src.crs and p.transform == src.transform
        vv = src.read(1)
        prob = p.read(1)
    # the fixture's missing pixels (0.0, top-left of each chip, in VH or in VV only) are no data in the pair
    assert np.isnan(prob[:6, :2]).all() and np.isnan(prob[:4, :4]).all() and np.isfinite(prob[6:, 4:]).all()
    assert (vv[:4, :2] != 0).all()  # VV has data where only VH is missing: the pair's rule, both bands


def test_a_folder_mixing_pairs_and_stacked_chips_keeps_every_chip(stac_pairs, chip_tif, tmp_path):
    import shutil

    pairs, _ = stac_pairs
    mixed = tmp_path / "mixed"
    shutil.copytree(pairs, mixed)
    shutil.copy(chip_tif[0], mixed / "scene5.tif")  # a stacked chip beside the pairs: not dropped
    records = infer_chips(DarkIsWater(), [mixed], tmp_path / "out", progress=False)
    assert [r["id"] for r in records] == ["awc00", "awc01", "kuo05", "scene5"]


def test_an_etci_data_set_folder_is_read_as_evaluate_reads_it(tmp_path):
    from floodwatch.data import open_dataset
    from tests.data import fakes

    root = fakes.etci(tmp_path / "etci", scene="sc_20200101t000000", cols=2, rows=2)
    records = infer_chips(DarkIsWater(), [root], tmp_path / "o", progress=False)
    ids = sorted(f"sc_20200101t000000_x-{x}_y-{y}" for x in range(2) for y in range(2))
    assert sorted(r["id"] for r in records) == ids
    dataset = open_dataset(root, labelled_only=False)  # what `evaluate --data` reads
    for r in records:
        s = dataset.get(r["id"])
        assert r["input"] == str(root / "sc_20200101t000000" / "tiles" / "vv" / f"{r['id']}_vv.png")
        prob = DarkIsWater().predict(Preprocessing().apply(s.image, s.valid)[None])[0]
        mask = np.asarray(Image.open(r["outputs"]["mask_png"]))
        np.testing.assert_array_equal(mask, np.where(s.valid & (prob >= 0.5), 255, 0))
        assert 0 < (mask == 255).mean() < 1
    # its tiles/vv/ folder alone: the same chips, the same predictions
    vv_only = infer_chips(DarkIsWater(), [root / "sc_20200101t000000" / "tiles" / "vv"], tmp_path / "o_vv",
                          progress=False)
    names = ("mask_png", "prob_png")
    _assert_same_outputs(_outputs(vv_only, *names), _outputs(records, *names))
    # or its tiles/ folder (vv/, vh/, flood_label/ in it), as evaluate --data reads it
    tiles = infer_chips(DarkIsWater(), [root / "sc_20200101t000000" / "tiles"], tmp_path / "o_tiles", progress=False)
    _assert_same_outputs(_outputs(tiles, *names), _outputs(records, *names))


def test_a_band_file_without_its_partner_is_an_error_naming_it(stac_pairs, tmp_path):
    pairs, _ = stac_pairs
    lone = tmp_path / "lone"
    lone.mkdir()
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(lone / "c_vv.png")
    with pytest.raises(DataError, match=r"lone/c_vv.png: the model needs VV and VH; no c_vh.png beside it"):
        infer_chips(DarkIsWater(), [lone], tmp_path / "o", progress=False)
    (pairs / "awc00_vh.tif").rename(lone / "awc00_vh.tif")
    with pytest.raises(DataError, match=r"train_features/awc00_vv.tif: .*awc00_vh.tif"):  # as a file
        infer_chips(DarkIsWater(), [pairs / "awc00_vv.tif"], tmp_path / "o", progress=False)
    with pytest.raises(DataError, match=r"train_features/awc00_vv.tif: .*awc00_vh.tif"):  # in its folder
        infer_chips(DarkIsWater(), [pairs], tmp_path / "o", progress=False)
    (lone / "c_vv.png").unlink()
    with pytest.raises(DataError, match=r"lone/awc00_vh.tif: the model needs VV and VH; no awc00_vv.tif"):
        infer_chips(DarkIsWater(), [lone], tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
    # a one-band VV model needs no partner: the VV file alone is its chip, named without _vv
    class VVOnly(DarkIsWater):
        preprocessing = Preprocessing(bands=["VV"], clip=[(-50, 5)], offset=[-10.0], scale=[0.2])

        def predict(self, batch):
            return (batch[:, 0] < 0.0).astype(np.float32)

    rec = infer_chips(VVOnly(), [pairs / "awc01_vv.tif"], tmp_path / "o1", progress=False)[0]
    assert rec["id"] == "awc01" and rec["valid_pixels"] > 0


def test_a_failing_run_leaves_the_folder_as_it_was(chip_tif, tmp_path):
    path, _ = chip_tif
    out = tmp_path / "out"
    infer_chips(DarkIsWater(), [path], out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_band = tmp_path / "one_band.tif"
    with rasterio.open(path) as src:
        with rasterio.open(one_band, "w", **(src.profile | {"count": 1})) as dst:
            dst.write(src.read(1), 1)
    with pytest.raises(DataError, match="one_band.tif: data has 1 band"):  # after scene5 was predicted again
        infer_chips(DarkIsWater(), [path, one_band], out, threshold=0.9, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no .part folder, nothing overwritten
    with pytest.raises(DataError):
        infer_chips(DarkIsWater(), [path, one_band], tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


def test_sigterm_cleans_up_as_ctrl_c_does(chip_tif, tiny_checkpoint, tmp_path, monkeypatch, run_cli):
    """`kill` during `infer` left .staged.pid...part/ with the chips done so far; now SIGTERM unwinds as Ctrl-C
    does (exit status 143), and the process's own SIGTERM handler is back afterwards."""
    import os
    import signal

    from floodwatch.inference.predictor import TorchPredictor

    path, _ = chip_tif
    second = tmp_path / "second.tif"
    second.write_bytes(path.read_bytes())
    predict = TorchPredictor.predict
    seen = []

    def killed_on_the_second_chip(self, batch):
        seen.append(len(seen))
        if len(seen) == 2:  # the first chip's files are staged by now
            os.kill(os.getpid(), signal.SIGTERM)
        return predict(self, batch)

    def ours(signum, frame):  # what runs when main installs nothing: the test fails rather than pytest dying
        raise SystemExit("SIGTERM reached the caller's handler")

    monkeypatch.setattr(TorchPredictor, "predict", killed_on_the_second_chip)
    previous = signal.signal(signal.SIGTERM, ours)
    try:
        result = run_cli("infer", path, second, "-m", tiny_checkpoint, "-o", tmp_path / "out", "-q")
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.returncode == 143 and result.stderr.strip() == "terminated"
    assert not (tmp_path / "out").exists()  # the staged chip went with the run, and the folder it made


def test_a_rerun_replaces_the_output_folder(chip_tif, tmp_path):
    """A second run into the same folder left the first run's chips beside its own, which summary.json did not
    list; now the folder holds one run's outputs, as evaluate --save-predictions and change -o do."""
    path, _ = chip_tif
    other = tmp_path / "other.tif"
    other.write_bytes(path.read_bytes())
    out = tmp_path / "out"
    infer_chips(DarkIsWater(), [path], out, progress=False)
    records = infer_chips(DarkIsWater(), [other], out, progress=False)
    listed = {Path(f).name for r in records for f in r["outputs"].values()}
    assert {p.name for p in out.iterdir()} == listed | {"summary.json"}
    assert all(n.startswith("other_") for n in listed)
    assert [c["id"] for c in json.loads((out / "summary.json").read_text())["chips"]] == ["other"]


def test_a_folder_holding_other_files_is_refused_unchanged(chip_tif, tmp_path):
    path, _ = chip_tif
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(FloodwatchError, match=r"out: holds notes.txt, which chip inference \(infer, client\) did not write"):
        infer_chips(DarkIsWater(), [path], out, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob(".*part*"))


def test_outputs_are_known_by_the_summary_not_by_name(chip_tif, tmp_path):
    """A user's own truth_mask.tif is not an output because of its name; a GIS sidecar of an output is one."""
    path, _ = chip_tif
    out = tmp_path / "out"
    out.mkdir()
    (out / "truth_mask.tif").write_bytes(b"the user's labels")
    with pytest.raises(FloodwatchError, match=r"out: holds truth_mask.tif, which chip inference \(infer, client\) did not write"):
        infer_chips(DarkIsWater(), [path], out, progress=False)
    (out / "truth_mask.tif").unlink()
    records = infer_chips(DarkIsWater(), [path], out, progress=False)
    mask_tif = Path(records[0]["outputs"]["mask_tif"])
    (out / (mask_tif.name + ".aux.xml")).write_text("<PAMDataset/>")  # QGIS opened the mask
    infer_chips(DarkIsWater(), [path], out, progress=False)  # a rerun replaces both
    assert not (out / (mask_tif.name + ".aux.xml")).exists() and mask_tif.is_file()


def test_an_input_inside_the_output_folder_is_refused(chip_tif, tmp_path):
    """A chip inside -o would go with the folder a rerun replaces: refused, whether the folder's summary lists
    it (an earlier run's output, given back as input) or not (then the folder itself is refused)."""
    path, _ = chip_tif
    out = tmp_path / "out"
    out.mkdir()
    inside = out / "flood_mask.tif"
    inside.write_bytes(path.read_bytes())
    with pytest.raises(FloodwatchError, match=r"out: holds flood_mask.tif, which chip inference \(infer, client\) did not write"):
        infer_chips(DarkIsWater(), [inside], out, progress=False)
    (out / "summary.json").write_text(json.dumps({"chips": [{"outputs": {"mask_tif": str(inside)}}]}))
    with pytest.raises(DataError, match=r"flood_mask.tif: inside the output folder"):
        infer_chips(DarkIsWater(), [inside], out, progress=False)
    (out / "summary.json").unlink()
    assert [p.name for p in out.iterdir()] == ["flood_mask.tif"]


def test_unnamed_bands_in_vh_vv_order_are_refused_as_map_refuses_them(tmp_path):
    rng = np.random.default_rng(1)
    vv, vh = rng.normal(-11, 2, (64, 64)), rng.normal(-18, 2, (64, 64))
    for name, stack in (("swapped.tif", [vh, vv]), ("ordered.tif", [vv, vh])):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=64, height=64, count=2,
                           dtype="float32") as dst:
            dst.write(np.stack(stack).astype(np.float32))
    with pytest.raises(DataError, match=r"swapped.tif: its bands are not named and band 2 \(taken as VH\)"):
        read_chip(tmp_path / "swapped.tif", bands=["VV", "VH"])
    s = read_chip(tmp_path / "ordered.tif", bands=["VV", "VH"])
    np.testing.assert_allclose(s.image[1], vh.astype(np.float32))


def test_course_images_are_read_as_the_folders_reader_reads_them(tmp_path):
    """`data convert` writes RGB = VV, VH, (VV+VH)/2; `infer course/data` read them (the folders reader) and a
    single image or its images/ folder was refused as a colour picture."""
    from floodwatch.data import open_dataset
    from floodwatch.data.convert import to_images_masks
    from tests.data import fakes

    course = to_images_masks(open_dataset(fakes.sen1floods11(tmp_path / "s1", chips=2, splits=False)),
                             tmp_path / "course", progress=False)
    images = sorted((course / "images").glob("*.png"))
    assert len(images) == 2
    names = ("mask_png", "prob_png", "overlay_png")
    want = _outputs(infer_chips(DarkIsWater(), [course], tmp_path / "o_course", progress=False), *names)
    folder = infer_chips(DarkIsWater(), [course / "images"], tmp_path / "o_images", progress=False)
    _assert_same_outputs(_outputs(folder, *names), want)
    [one] = infer_chips(DarkIsWater(), [images[0]], tmp_path / "o_one", progress=False)
    _assert_same_outputs(_outputs([one], *names), {one["id"]: want[one["id"]]})
    s = read_chip(images[0], bands=["VV", "VH"])
    assert s.bands == ("VV", "VH") and s.extra["path"] == str(images[0])


def _scene_map_checkpoint(path, harmonise):
    """A tiny checkpoint whose training spec read an ETCI source with the reader option `harmonise`."""
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = dict(num_layers=10, in_channels=2, num_classes=2, use_batch_norm=True)
    sources = [{"path": "etci", "format": "etci2021", "options": {"harmonise": harmonise}},
               {"path": "s1", "format": "sen1floods11", "options": {}}]
    return save_checkpoint(path, build_model(**cfg), model_config=cfg, preprocessing=Preprocessing(),
                           spec={"dataset_config": {"sources": sources}})


def test_a_model_trained_on_per_scene_maps_warns_of_8bit_chips_read_with_the_fixed_map(chip_tif, tiny_checkpoint,
                                                                                        tmp_path):
    """Trained with ETCI's harmonise: scene (recorded in the checkpoint's spec), the model sees 8-bit chips through
    the fixed map here: the predictions differ from the training reader's, so infer says so (not an error)."""
    import warnings

    from floodwatch.inference.predictor import load_predictor

    Image.fromarray(np.full((32, 32), 120, np.uint8)).save(tmp_path / "t_vv.png")
    Image.fromarray(np.full((32, 32), 180, np.uint8)).save(tmp_path / "t_vh.png")
    scene = load_predictor(_scene_map_checkpoint(tmp_path / "scene.pt", "scene"), tta=True)  # through a wrapper
    with pytest.warns(UserWarning, match=r"t_vv.png: 8-bit input read through the fixed 8-bit -> dB map, but "
                                         r".*scene.pt was trained on maps fitted per scene"):
        infer_chips(scene, [tmp_path / "t_vv.png"], tmp_path / "o", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dB GeoTIFFs go through no 8-bit map; fixed-map models were read alike
        infer_chips(scene, [chip_tif[0]], tmp_path / "o_tif", progress=False)
        fixed = load_predictor(_scene_map_checkpoint(tmp_path / "fixed.pt", "fixed"))
        infer_chips(fixed, [tmp_path / "t_vv.png"], tmp_path / "o_fixed", progress=False)
    # an ensemble names the members trained so; a checkpoint without a spec (older ones) says nothing
    from floodwatch.inference.predictor import trained_on_scene_maps

    assert trained_on_scene_maps(load_predictor([tmp_path / "fixed.pt", tmp_path / "scene.pt"])) == \
        [str(tmp_path / "scene.pt")]
    assert trained_on_scene_maps(load_predictor(tiny_checkpoint)) == []
