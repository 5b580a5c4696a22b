"""`fetch` against a loopback Planetary Computer with generated items: search, signing, windowed COG reads,
the mosaic of two items of one date (checked against a numpy reference), units, and the one-line errors."""
import json
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
import rasterio

import monitoring_helpers
from floodwatch.acquisition import Retries, fetch, resolve_source
from floodwatch.acquisition.read import grid_for
from floodwatch.errors import AccessError, CoverageError, NoItemsError, RateLimitError, UnitsError

import fake_pc
from fake_pc import EPSG, X0, Y1, utm_aoi

FAST = Retries(attempts=3, backoff_s=0.01)
# 100 x 200 px across the seam of items A and B (A's rows end at y = Y1 - 5120, B starts 240 m higher)
SEAM = utm_aoi(X0 + 1000, Y1 - 6000, X0 + 2000, Y1 - 4000)


@pytest.fixture
def pc(tmp_path, stac_api, file_server, monkeypatch):
    return fake_pc.start(stac_api, file_server, tmp_path / "blobs", monkeypatch)


def _source(pc):
    return resolve_source("pc-rtc", url=pc.api.url)


def _strict(path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_two_items_of_one_date_mosaic_against_numpy(pc, tmp_path):
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
                progress=False)
    (scene,) = res.scenes
    a_id, b_id = (i["id"] for i in pc.items[:2])
    assert scene.key == "2024-04-19" and [i["id"] for i in scene.items] == [a_id, b_id]
    assert scene.units_in == "linear" and scene.coverage == pytest.approx(1.0)
    with rasterio.open(scene.path) as src:
        data, grid_tr = src.read(), src.transform
        assert src.descriptions == ("VV", "VH") and src.crs.to_epsg() == EPSG
    a_tr = rasterio.transform.from_origin(X0, Y1, 10, 10)
    grid = grid_for(SEAM, f"EPSG:{EPSG}", a_tr, pad_px=16)
    assert tuple(grid_tr) == tuple(grid.transform) and data.shape == (2, grid.height, grid.width)
    want = fake_pc.expected_db(pc, grid, [a_id, b_id])
    np.testing.assert_allclose(data, want, rtol=0, atol=1e-5)
    # the seam is inside the window: rows from A, A's nodata edge filled from B, then B alone
    seam_row = int(round((grid.transform.f - (Y1 - 5120 + 80)) / 10))  # first row of A's nodata edge
    assert 0 < seam_row < grid.height - 8 and np.isfinite(data).all()
    # only the AOI's window of each COG travelled: a few 64 px tiles of the 512 px files, by range requests
    for item_id in (a_id, b_id):
        vv = next(pc.root.rglob(f"*{item_id.removesuffix('_rtc')}*/measurement/iw-vv.rtc.tiff"))
        served = sum(e - s + 1 for p, s, e in monitoring_helpers.RangeHandler.range_requests
                     if p.split("?")[0].endswith(str(vv.relative_to(pc.root))))
        assert 0 < served < 0.35 * vv.stat().st_size
    assert not monitoring_helpers.RangeHandler.full_requests
    # every asset request was signed with the token from the SAS endpoint, fetched once for the container
    assert all(fake_pc.SIG in p for p, *_ in monitoring_helpers.RangeHandler.range_requests)
    assert pc.token_requests == [("/api/sas/v1/token/sentinel1euwestrtc/sentinel1-grd-rtc", fake_pc.KEY)]
    # the manifest: strict JSON, what came from where, with no signature left in it
    doc = _strict(res.manifest)
    assert doc["source"] == "pc-rtc" and doc["collection"] == "sentinel-1-rtc" and doc["api"] == pc.api.url
    (s,) = doc["scenes"]
    assert s["path"] == "2024-04-19/scene.tif" and s["units"] == "dB" and s["source_units"] == "linear"
    assert s["items"][0] == {"id": a_id, "collection": "sentinel-1-rtc", "datetime": "2024-04-19T04:58:01Z",
                             "platform": "SENTINEL-1A", "orbit_state": "descending", "relative_orbit": 80,
                             "absolute_orbit": 53498, "instrument_mode": "IW",
                             "assets": {k: pc.items[0]["assets"][k.lower()]["href"] for k in ("vv", "vh")}}
    assert "sig=" not in res.manifest.read_text()
    assert "failed" not in doc and "not_attempted" not in doc  # only a fetch that failed part-way has them


def test_token_required_403_names_the_key(pc, tmp_path, monkeypatch):
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.planetarycomputer/settings.env either
    with pytest.raises(AccessError) as err:
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
              progress=False)
    msg = str(err.value)
    assert "HTTP 403" in msg and "requires an account" in msg and "PC_SDK_SUBSCRIPTION_KEY is not set" in msg
    assert "\n" not in msg and not (tmp_path / "out" / "fetch.json").exists()


def test_unsigned_blob_read_is_access_error(pc, tmp_path):
    # the same catalog as a plain STAC URL: nothing signs the hrefs, and the storage answers 409
    src = resolve_source(pc.api.url, collection="sentinel-1-rtc")
    with pytest.raises(AccessError, match="access to vv denied") as err:
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=src, retries=FAST, progress=False)
    assert "\n" not in str(err.value)


def test_empty_search(pc, tmp_path):
    with pytest.raises(NoItemsError, match="no Sentinel-1 items over the AOI between 2024-06-01T00:00:00Z and "
                                           "2024-06-30T23:59:59Z"):
        fetch(SEAM, "2024-06-01", "2024-06-30", tmp_path / "out", source=_source(pc), retries=FAST,
              progress=False)
    searches = [p for m, path, p in pc.api.requests if path == "/search"]
    assert searches and searches[0]["datetime"].startswith("2024-06-01T00:00:00Z/")


def test_429_then_success_and_persistent_429(pc, tmp_path):
    pc.api.faults = {"/search": [429, 429], "/api/sas": [429]}
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
                progress=False)
    assert len(res.scenes) == 1 and pc.api.faults == {"/search": [], "/api/sas": []}
    assert [p for m, p, _ in pc.api.requests if p == "/search"].count("/search") >= 3  # two 429s, then pages
    pc.api.faults = {"/search": [429] * 10}
    with pytest.raises(RateLimitError, match=r"rate limited \(HTTP 429\) after 3 retries"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out2", source=_source(pc), retries=FAST,
              progress=False)


def test_a_date_that_fails_after_others_were_written_leaves_their_manifest(pc, tmp_path, run_cli, monkeypatch):
    """Dates 1 and 3 readable, date 2's storage answers 503: date 1's scene is listed in fetch.json with the
    failure, in place of an earlier run's fetch.json, and the error is still the fetch's own (one line)."""
    import floodwatch.acquisition.read as read
    import s1_items
    from floodwatch.errors import AcquisitionError

    monkeypatch.setitem(read.GDAL_HTTP_ENV, "GDAL_HTTP_RETRY_DELAY", "0.05")
    day3 = fake_pc.DAY2 + timedelta(days=12)
    d = s1_items.rtc_item("S1A_IW_GRDH_1SDV_20240513T045751_20240513T045816_053848_067DF2_rtc", day3, EPSG,
                          fake_pc._bounds(0), pc.files)
    vv = s1_items.linear_field(fake_pc.SIZE, fake_pc.SIZE, seed=4)
    s1_items.write_item_cogs(pc.root, d, vv, vv * 0.2)
    pc.api.items = [*pc.items, d]
    c_id = pc.items[2]["id"]
    fake_pc.fail_reads(monkeypatch, c_id)
    aoi = utm_aoi(X0 + 1000, Y1 - 2000, X0 + 2000, Y1 - 1000)  # inside items A and C (and D)
    out = tmp_path / "out"
    (out / "2023-01-01").mkdir(parents=True)
    (out / "fetch.json").write_text('{"scenes": [{"key": "2023-01-01", "path": "2023-01-01/scene.tif"}]}\n')
    with pytest.raises(AcquisitionError, match=f"STAC item '{c_id}': cannot read") as err:
        fetch(aoi, "2024-04-01", "2024-05-31", out, source=_source(pc), retries=FAST, progress=False)
    assert err.value.__notes__ == [f"{out / 'fetch.json'} lists the 1 scene written before 2024-05-01"]
    assert (out / "2024-04-19" / "scene.tif").is_file() and not (out / "2024-05-01").exists()
    doc = _strict(out / "fetch.json")
    assert [s["key"] for s in doc["scenes"]] == ["2024-04-19"] and doc["skipped"] == []
    assert doc["scenes"][0]["items"][0]["id"] == pc.items[0]["id"]
    assert doc["failed"]["key"] == "2024-05-01" and doc["failed"]["items"] == [c_id]
    assert doc["failed"]["error"] == str(err.value) and "sig=" not in doc["failed"]["error"]
    assert doc["not_attempted"] == ["2024-05-13"]
    # the command: its one-line error says where the scenes written are listed
    w, s, e, n = aoi.bounds
    bad = run_cli("fetch", "--bbox", f"{w},{s},{e},{n}", "--start", "2024-04-01", "--end", "2024-05-31",
                  "--stac", pc.api.url, "-o", tmp_path / "cli", "-q")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cannot read" in bad.stderr
    assert bad.stderr.rstrip().endswith(f"; {tmp_path / 'cli' / 'fetch.json'} lists the 1 scene written before "
                                        "2024-05-01")
    assert _strict(tmp_path / "cli" / "fetch.json")["failed"]["key"] == "2024-05-01"
    # the first date failing writes nothing: the folder, fetch.json included, stays as the last run left it
    before = (out / "fetch.json").read_bytes()
    with pytest.raises(AcquisitionError, match="cannot read"):
        fetch(aoi, "2024-05-01", "2024-05-31", out, source=_source(pc), retries=FAST, progress=False)
    assert (out / "fetch.json").read_bytes() == before and not (out / "2024-05-13").exists()


def test_several_dates_and_partial_coverage(pc, tmp_path, capsys):
    # AOI: its western 40% lies west of the items, so at most 60% is covered
    aoi = utm_aoi(X0 - 400, Y1 - 1500, X0 + 600, Y1 - 500)
    src = _source(pc)
    res = fetch(aoi, "2024-04-01", "2024-05-31", tmp_path / "out", source=src, min_coverage=0.5, retries=FAST,
                progress=False)
    assert [s.key for s in res.scenes] == ["2024-04-19", "2024-05-01"]
    assert [s.coverage for s in res.scenes] == pytest.approx([0.6, 0.6], abs=0.02)
    assert "partial coverage, the items cover 60% of the AOI" in capsys.readouterr().err
    with pytest.raises(CoverageError, match=r"cover at most 60% of the AOI \(2024-04-19\), below `min_coverage` 80%"):
        fetch(aoi, "2024-04-01", "2024-05-31", tmp_path / "out2", source=src, min_coverage=0.8, retries=FAST,
              progress=False)


def test_uncalibrated_grd_refused(pc, tmp_path):
    with pytest.raises(UnitsError, match="uncalibrated GRD digital numbers.*use `source` pc-rtc.*SNAP"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source="pc-grd", progress=False)
    # a generic catalog whose assets say uint16: refused from the metadata, before any pixel is read
    for item in pc.items:
        for b in ("vv", "vh"):
            item["assets"][b]["raster:bands"][0]["data_type"] = "uint16"
    src = resolve_source(pc.api.url, collection="sentinel-1-rtc")
    with pytest.raises(UnitsError, match="uint16 pixels are uncalibrated"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=src, progress=False)
    assert not monitoring_helpers.RangeHandler.range_requests


def test_units_override_and_detection(pc, tmp_path):
    # --units db on linear data would write a scene `map` refuses (after the download): refused here, unwritten
    src = replace(_source(pc), units="db")
    with pytest.raises(UnitsError, match="units: dB was given, but the pixels of 2024-04-19 look like linear power"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=src, retries=FAST, progress=False)
    assert not (tmp_path / "out" / "2024-04-19").exists() and not (tmp_path / "out" / "fetch.json").exists()
    # an override is taken at its word where the pixels agree
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "lin", source=replace(_source(pc), units="linear"),
                retries=FAST, progress=False)
    with rasterio.open(res.scenes[0].path) as ds:
        assert np.nanmax(ds.read(1)) < 0 and res.scenes[0].units_in == "linear"
    # ...and 'auto' on a catalog that does not say detects linear power (no negative values)
    src = replace(_source(pc), units="auto")
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out2", source=src, retries=FAST, progress=False)
    assert res.scenes[0].units_in == "linear"


def test_units_given_against_the_pixels_are_refused_either_way():
    """--units linear on dB assets turned every pixel into no data and failed as "covers 0 % of the AOI"."""
    from floodwatch.acquisition.read import check_units

    rng = np.random.default_rng(0)
    db, linear = rng.normal(-14, 4, (2, 64, 64)), rng.uniform(0.001, 0.4, (2, 64, 64))
    with pytest.raises(UnitsError, match="units: linear was given, but the pixels of 2024-05-01 look like dB; give "
                                         "`units` db or auto"):
        check_units(db, "2024-05-01", "linear")
    with pytest.raises(UnitsError, match="units: dB was given, but the pixels of 2024-05-01 look like linear power"):
        check_units(linear, "2024-05-01", "db")
    check_units(db, "2024-05-01", "db")
    check_units(linear - 0.002, "2024-05-01", "linear")  # noise removal dips some power below 0: still power
    filled = np.where(rng.random(db.shape) < 0.95, 0.0, db)  # mostly an untagged 0 fill: no vote
    check_units(filled, "2024-05-01", "db")


def _items_served(pc):
    """The item dicts the loopback API answers with (edit them to change what the catalog says)."""
    return {i["id"]: i for i in pc.api.items}


def test_relative_asset_hrefs_are_named_not_a_traceback(pc, tmp_path):
    """An API item has no self link to resolve a relative href against: pystac gives None, which crashed in
    rasterio.open (TypeError) in fetch and in `aoi watch`."""
    from floodwatch.errors import AcquisitionError

    for item in _items_served(pc).values():
        item["assets"]["vv"]["href"] = "measurement/iw-vv.rtc.tiff"
    with pytest.raises(AcquisitionError, match="asset 'vv' has the relative href 'measurement/iw-vv.rtc.tiff' and "
                                               "the item no self link"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST, progress=False)
    assert not (tmp_path / "out" / "fetch.json").exists()


def test_items_listing_vv_vh_without_an_asset_name_their_assets(pc, tmp_path):
    """The message said "none with VV and VH (polarisations: VH, VV)" when the items list both but lack the vh
    asset: it names the assets there are instead."""
    for item in _items_served(pc).values():
        del item["assets"]["vh"]
    with pytest.raises(NoItemsError, match=r"none with VV and VH \(they list VV and VH, but '\S+_rtc' has the "
                                           r"assets rendered_preview, tilejson, vv\)"):
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST, progress=False)


def test_cli_fetch(pc, tmp_path, run_cli):
    out = tmp_path / "cli"
    w, s, e, n = SEAM.bounds
    ok = run_cli("fetch", "--bbox", f"{w},{s},{e},{n}", "--start", "2024-04-19", "--end", "2024-04-19",
                 "--source", "pc-rtc", "--stac", pc.api.url, "-o", out, "-q")
    assert ok.returncode == 0, ok.stderr
    assert (out / "2024-04-19" / "scene.tif").is_file() and (out / "fetch.json").is_file()
    assert "2024-04-19" in ok.stdout and "100%" in ok.stdout
    bad = run_cli("fetch", "--bbox", f"{w},{s},{e},{n}", "--start", "2025-01-01", "--end", "2025-01-02",
                  "--source", "pc-rtc", "--stac", pc.api.url, "-o", tmp_path / "none", "-q")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no Sentinel-1 items" in bad.stderr
    assert not (tmp_path / "none" / "fetch.json").exists()
    both = run_cli("fetch", "--bbox", "1,2,3,4", "--aoi", tmp_path / "x.geojson", "--start", "2024-01-01",
                   "--end", "2024-01-02", "-o", tmp_path / "o")
    assert both.returncode == 2 and "exactly one" in both.stderr


def test_the_output_folder_is_checked_before_the_search(pc, tmp_path, run_cli):
    """A file in the way, or a place nothing can be written, fails before any request, not after the download."""
    from floodwatch.errors import FloodwatchError

    (tmp_path / "a_file").write_text("in the way")
    for out, what in ((tmp_path / "a_file", "a_file is a file"), (tmp_path / "a_file" / "x", "a_file is a file"),
                      ("/proc/x", "not writable")):
        with pytest.raises(FloodwatchError, match=what):
            fetch(SEAM, "2024-04-19", "2024-04-19", out, source=_source(pc), retries=FAST, progress=False)
    assert not pc.api.requests and not pc.token_requests
    w, s, e, n = SEAM.bounds
    bad = run_cli("fetch", "--bbox", f"{w},{s},{e},{n}", "--start", "2024-04-19", "--end", "2024-04-19",
                  "--stac", pc.api.url, "-o", "/proc/x")
    assert bad.returncode == 2 and "/proc/x" in bad.stderr and "fetching" not in bad.stderr + bad.stdout
    assert not pc.api.requests


def test_an_oversized_bbox_is_named_as_the_bbox(pc, tmp_path, run_cli):
    big = run_cli("fetch", "--bbox", "12,44,15,46", "--start", "2024-04-19", "--end", "2024-04-19",
                  "--stac", pc.api.url, "-o", tmp_path / "out", "-q")
    assert big.returncode == 2 and big.stderr.count("\n") == 1
    assert big.stderr.startswith("error: --bbox: ") and "more than 100 Mpx" in big.stderr
    assert not (tmp_path / "out").exists()


def test_an_unreachable_token_endpoint_is_named(pc, tmp_path, monkeypatch):
    from floodwatch.errors import AcquisitionError
    from tests.ports import free_port

    sas = f"http://127.0.0.1:{free_port()}/api/sas/v1/token"  # nothing listens there
    monkeypatch.setenv("PC_SDK_SAS_URL", sas)
    with pytest.raises(AcquisitionError, match="SAS token request to " + sas + "/.* failed") as err:
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST, progress=False)
    assert "\n" not in str(err.value)


def test_cog_429_is_retried_then_reported(pc, tmp_path, monkeypatch):
    import floodwatch.acquisition.read as read

    monkeypatch.setitem(read.GDAL_HTTP_ENV, "GDAL_HTTP_RETRY_DELAY", "0.05")
    monitoring_helpers.RangeHandler.faults[:] = [429]  # the first COG request: GDAL retries it
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
                progress=False)
    assert len(res.scenes) == 1 and not monitoring_helpers.RangeHandler.faults
    monitoring_helpers.RangeHandler.faults[:] = [429] * 20
    with pytest.raises(RateLimitError, match=r"rate limited \(HTTP 429\) after GDAL's retries") as err:
        fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out2", source=_source(pc), retries=FAST,
              progress=False)
    assert "\n" not in str(err.value)


def test_items_in_two_utm_zones_share_the_first_items_grid(tmp_path, stac_api, file_server, monkeypatch):
    """Item B in the neighbouring zone (EPSG:32632) is warped onto A's EPSG:32633 lattice: nearest keeps its
    measured values, and positions agree with rasterio.warp.reproject of B alone."""
    from pyproj import Transformer
    from rasterio.warp import Resampling, reproject

    import s1_items

    pc = fake_pc.start(stac_api, file_server, tmp_path / "blobs", monkeypatch)
    a = pc.items[0]
    tr = Transformer.from_crs(32633, 32632, always_xy=True)
    xs, ys = tr.transform([X0, X0 + 5120, X0, X0 + 5120], [Y1 - 4900, Y1 - 4900, Y1 - 10000, Y1 - 10000])
    bx0, by1 = np.floor(min(xs) / 10) * 10, np.ceil(max(ys) / 10) * 10
    w, h = int(np.ceil((max(xs) - bx0) / 10)), int(np.ceil((by1 - min(ys)) / 10))
    b = s1_items.rtc_item(pc.items[1]["id"], fake_pc.DAY1 + timedelta(seconds=25), 32632,
                          (bx0, by1 - 10 * h, bx0 + 10 * w, by1), pc.files)
    vv_b = s1_items.linear_field(h, w, seed=9)
    s1_items.write_item_cogs(pc.root, b, vv_b, vv_b * 0.2)
    pc.api.items = [a, b]
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
                progress=False)
    with rasterio.open(res.scenes[0].path) as src:
        got, crs, transform = src.read(1), src.crs, src.transform
    assert crs.to_epsg() == EPSG and res.scenes[0].coverage == pytest.approx(1.0)
    vv_a = pc.arrays[a["id"]][0]
    want_b = np.full(got.shape, np.nan, np.float32)
    reproject(vv_b, want_b, src_transform=rasterio.transform.from_origin(bx0, by1, 10, 10), src_crs="EPSG:32632",
              src_nodata=s1_items.NODATA, dst_transform=transform, dst_crs=crs, dst_nodata=np.nan,
              resampling=Resampling.nearest)
    r0 = int(round((Y1 - transform.f) / 10))  # row of A at the grid's top
    c0 = int(round((transform.c - X0) / 10))
    a_rows = fake_pc.SIZE - fake_pc.EDGE - r0  # grid rows still inside A's valid rows; B below them
    assert 0 < a_rows < got.shape[0]
    np.testing.assert_allclose(got[:a_rows], 10 * np.log10(vv_a[r0:r0 + a_rows, c0:c0 + got.shape[1]]), atol=1e-5)
    np.testing.assert_allclose(got[a_rows:], 10 * np.log10(want_b[a_rows:]), atol=1e-5)
    assert np.isin(got[a_rows:], (10 * np.log10(vv_b)).astype(np.float32)).all()  # measured values, not blends


def test_unit_detection_goes_by_the_majority():
    """Noise-removed power dips a little below 0 in places (a calm lake's VH): still power; dB backscatter, bright
    city corners above 0 dB included, is mostly negative."""
    from floodwatch.acquisition.read import detect_units

    rng = np.random.default_rng(0)
    power = 10 ** (rng.normal(-15, 4, (2, 50, 50)) / 10)
    power[1, :10] = -2e-4
    db = rng.normal(-14, 5, (2, 50, 50))
    db[0, :5] = 3.0
    assert detect_units(power) == "linear" and detect_units(db) == "db"
    db[:, :30] = 0.0  # most of the window untagged 0-fill: the rest decides
    assert detect_units(db) == "db"
    assert detect_units(np.full((2, 4, 4), np.nan)) == "linear"  # nothing to go by: as before, not dB


def test_the_scene_carries_the_items_orbit_unless_they_mix_passes(pc, tmp_path):
    """Terrain (mapping.terrain.scene_metadata) reads the pass from the scene's `orbit_direction` tag; a mosaic
    of an ascending and a descending item gets none (shadow and layover would be on the wrong side of part of
    it), and fetch.json says why."""
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "out", source=_source(pc), retries=FAST,
                progress=False)
    with rasterio.open(res.scenes[0].path) as src:
        assert src.tags().get("orbit_direction") == "descending"
    (scene,) = _strict(res.manifest)["scenes"]
    assert scene["orbit_state"] == "descending" and "orbit_note" not in scene
    a, b = pc.items[:2]
    pc.api.items = [a, {**b, "properties": {**b["properties"], "sat:orbit_state": "ascending"}}]
    res = fetch(SEAM, "2024-04-19", "2024-04-19", tmp_path / "mixed", source=_source(pc), retries=FAST,
                progress=False)
    assert len(res.scenes[0].items) == 2
    with rasterio.open(res.scenes[0].path) as src:
        assert "orbit_direction" not in src.tags()
    (scene,) = _strict(res.manifest)["scenes"]
    assert scene["orbit_state"] is None and "mix ascending and descending" in scene["orbit_note"]


def test_the_orbit_tag_is_one_terrain_reads():
    """fetch and mapping's terrain step do not import each other; their orbit names are held together here."""
    import importlib

    from floodwatch.mapping import terrain

    fetch_module = importlib.import_module("floodwatch.acquisition.fetch")  # the package exports fetch(), a function

    assert fetch_module.ORBIT_TAG == terrain._ORBIT[0] and fetch_module.ORBITS == terrain.ORBITS
