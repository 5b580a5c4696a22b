"""Bad input to `floodwatch change` and `aoi ...`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from floodwatch.monitoring.change import detect_change
from tests.bad_inputs import Case, binary_file, check, params, plain_file, rewrite_raster
from tests.mapping.helpers import make_scene


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_monitor")
    f = {"model": tiny_checkpoint, "file": plain_file(d / "a_file"), "db": d / "fw.db",
         "after": d / "after.tif", "before": d / "before.tif", "elsewhere": d / "elsewhere.tif",
         "other_crs": d / "other_crs.tif", "binary_geojson": binary_file(d / "binary.geojson")}
    make_scene(f["after"], 64, 64, seed=0)
    make_scene(f["before"], 64, 64, seed=1)
    make_scene(f["elsewhere"], 64, 64, seed=1, origin=(500000.0, 5300000.0))  # 100 km east
    rewrite_raster(f["before"], f["other_crs"], crs="EPSG:4326")  # same numbers, read as degrees
    f["one_band"] = rewrite_raster(f["before"], d / "one_band.tif", bands=[1])
    f["int8"] = rewrite_raster(f["before"], d / "int8.tif", dtype="int8")
    for name, body in {"hexagon": {"type": "Hexagon", "coordinates": [[0, 0], [1, 1]]},
                       "no_type": {"coordinates": [0, 0]}}.items():
        f[name] = d / f"{name}.geojson"
        f[name].write_text(json.dumps(body))
    f["keep"] = d / "keep"  # the user's own folder, holding a file change does not write
    f["keep"].mkdir()
    (f["keep"] / "notes.txt").write_text("mine\n")
    f["deep"] = d / "deep.geojson"
    f["deep"].write_text("[" * 100_000 + "]" * 100_000)
    f["deep_coords"] = d / "deep_coords.geojson"
    f["deep_coords"].write_text('{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}")
    # Python's JSON reader takes NaN and turns 1e400 into infinity; GeoJSON allows neither
    for name, x in (("nan_coords", "NaN"), ("huge_coords", "1e400")):
        f[name] = d / f"{name}.geojson"
        f[name].write_text('{"type": "Polygon", "coordinates": [[[0, 0], [' + x + ', 0], [1, 1], [0, 0]]]}')
    f["aoi"] = d / "aoi.geojson"  # a good AOI, for rows about the other options of `aoi add`
    f["aoi"].write_text(json.dumps({"type": "Polygon", "coordinates": [[[13, 45], [13.1, 45], [13.1, 45.1],
                                                                          [13, 45]]]}))
    f["folder"] = d / "folder.geojson"
    f["folder"].mkdir()
    f["three_bands"] = _three_unnamed_bands(f["after"], d / "three_bands.tif")
    f["png_before"], f["png_after"] = _picture(d / "before.png", 90), _picture(d / "after.png", 40)
    f["linear"] = _linear_power(f["before"], d / "linear.tif")
    f["vv_before"] = _one_named_band(f["before"], d / "vv_before.tif", "VV")
    f["vv_after"] = _one_named_band(f["after"], d / "vv_after.tif", "VV")
    f["chg"] = d / "chg"  # a change output folder, for `aoi record`
    detect_change(f["before"], f["after"], None, f["chg"], method="logratio")
    return f


def _three_unnamed_bands(src, dst):
    """VV, VH and VV again, float32, no band descriptions: nothing says which band is which."""
    import rasterio

    with rasterio.open(src) as s:
        data, profile = s.read(), s.profile
    with rasterio.open(dst, "w", **(profile | {"count": 3})) as out:
        out.write(np.concatenate([data, data[:1]]))
    return dst


def _linear_power(src, dst):
    """The same backscatter in linear power (10^(dB/10)), as Planetary Computer's RTC assets hold it."""
    import rasterio

    with rasterio.open(src) as s:
        data, profile, names = s.read(), s.profile, s.descriptions
    with rasterio.open(dst, "w", **profile) as out:
        out.write((10 ** (data / 10)).astype(np.float32))
        out.descriptions = names
    return dst


def _one_named_band(src, dst, name):
    """The first band alone, its description `name`."""
    import rasterio

    with rasterio.open(src) as s:
        data, profile = s.read([1]), s.profile | {"count": 1}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        out.descriptions = (name,)
    return dst


def _picture(path, level):
    from PIL import Image

    Image.fromarray(np.full((32, 32), level, np.uint8)).save(path)
    return path


CHANGE = "change --before {before} --after {after} -m {model} -o {out}"
LOGRATIO = "change --before {before} --after {after} --method logratio -o {out}"
# refusals before the store (under {out}: a made one fails the row) and before the catalog (nothing listens there)
WATCH = "aoi watch x --stac http://127.0.0.1:9 --collection s1 --db {out}/fw.db -o {out}/watch"

CASES = [
    # before/after that are not two images of one place: refused, not "0 km² of new water"
    Case("change-elsewhere", "change --before {elsewhere} --after {after} -m {model} -o {out}",
         ("{elsewhere}", "does not overlap", "{after}")),
    Case("change-other-crs", "change --before {other_crs} --after {after} -m {model} -o {out}",
         ("{other_crs}", "does not overlap")),
    Case("change-logratio-elsewhere", "change --before {elsewhere} --after {after} --method logratio -o {out}",
         ("{elsewhere}", "does not overlap")),
    Case("change-one-band-before", "change --before {one_band} --after {after} -m {model} -o {out}",
         ("--before: {one_band}", "1 band", "--method logratio")),
    Case("change-one-band-after", "change --before {before} --after {one_band} -m {model} -o {out}",
         ("--after: {one_band}", "1 band")),
    # OMBRIA-like pictures are VV only: the two-band model cannot read them, the log-ratio can
    Case("change-pictures-with-a-model", "change --before {png_before} --after {png_after} -m {model} -o {out}",
         ("--before: {png_before}", "--method logratio")),
    Case("change-before-missing", "change --before {file}_none.tif --after {after} -m {model} -o {out}",
         ("--before: {file}_none.tif",)),
    Case("change-int8", "change --before {int8} --after {after} -m {model} -o {out}", ("{int8}", "int8")),
    Case("change-out-under-file", "change --before {before} --after {after} -m {model} -o {file}/c",
         ("{file} is a file",)),
    Case("change-out-holds-user-file", "change --before {before} --after {after} -m {model} -o {keep}",
         ("{keep}: holds notes.txt, which change did not write",), absent=()),
    # the limits map sets on the same flags (typer's min for --tile and --batch, the library's for --threshold)
    Case("change-batch-negative", CHANGE + " --batch -1", ("'--batch'",)),
    Case("change-batch-zero", CHANGE + " --batch 0", ("'--batch'",)),
    Case("change-batch-size-zero", CHANGE + " --batch-size 0", ("'--batch'",)),
    Case("change-threshold-2", CHANGE + " --threshold 2", ("--threshold: 2.0 must lie strictly between 0 and 1",)),
    Case("change-threshold-0", CHANGE + " --threshold 0", ("--threshold: 0.0 must lie strictly between 0 and 1",)),
    Case("change-tile-negative", CHANGE + " --tile -5", ("'--tile'",)),
    Case("change-tile-zero", CHANGE + " --tile 0", ("'--tile'",)),
    Case("change-tile-7", CHANGE + " --tile 7", ("'--tile'",)),
    # AOIs from GeoJSON that is not GeoJSON
    Case("aoi-unknown-type", "aoi add x --geojson {hexagon} --db {db}", ("{hexagon}", "hexagon"), absent=()),
    Case("aoi-no-type", "aoi add x --geojson {no_type} --db {db}", ("{no_type}", "not a GeoJSON"), absent=()),
    Case("aoi-deep-json", "aoi add x --geojson {deep} --db {db}", ("{deep}", "nested too deeply"), absent=()),
    Case("aoi-deep-coordinates", "aoi add x --geojson {deep_coords} --db {db}", ("{deep_coords}", "nested"),
         absent=()),
    Case("aoi-binary", "aoi add x --geojson {binary_geojson} --db {db}", ("{binary_geojson}", "not UTF-8"),
         absent=()),
    Case("aoi-nan-coordinates", "aoi add x --geojson {nan_coords} --db {db}", ("{nan_coords}", "finite"), absent=()),
    Case("aoi-infinite-coordinates", "aoi add x --geojson {huge_coords} --db {db}", ("{huge_coords}", "finite"),
         absent=()),
    Case("aoi-geojson-folder", "aoi add x --geojson {folder} --db {db}",
         ("{folder}: is a folder, not a GeoJSON file",), absent=()),
    # the library's message starts with its parameter, which the CLI shows as the argument ("AOI name 'my town'")
    Case("aoi-name-with-space", "aoi add 'my town' --geojson {aoi} --db {db}",
         ("NAME: 'my town' is not an AOI name",), absent=()),
    # webhooks httpx cannot send to: they passed `aoi add`, then failed every alert (or crashed the run)
    Case("aoi-webhook-unparsable", "aoi add x --geojson {aoi} --webhook http://[::1/hook --db {db}",
         ("--webhook", "'http://[::1/hook'", "not a valid URL"), absent=()),
    Case("aoi-webhook-port", "aoi add x --geojson {aoi} --webhook http://127.0.0.1:99999/hook --db {db}",
         ("--webhook", "port 99999"), absent=()),
    Case("aoi-webhook-space", "aoi add x --geojson {aoi} --webhook 'https://exa mple.com/hook' --db {db}",
         ("--webhook", "'https://exa mple.com/hook'", "white space"), absent=()),
    # unnamed bands are VV, VH only in a file of one or two: in three they could be anything (band_order's rule)
    Case("change-three-unnamed-bands", "change --before {before} --after {three_bands} -m {model} -o {out}",
         ("{three_bands}", "3 band(s)")),
    Case("change-logratio-three-unnamed-bands",
         "change --before {before} --after {three_bands} --method logratio -o {out}",
         ("--band", "{three_bands}", "unnamed")),
    # linear power read as dB is backscatter near 0 dB: "no new water", silently; refused as map and infer do
    Case("change-linear-before", "change --before {linear} --after {after} --method logratio -o {out}",
         ("{linear}", "looks like linear power")),
    Case("change-linear-after", "change --before {before} --after {linear} -m {model} -o {out}",
         ("{linear}", "looks like linear power")),
    # a band the file names is that band, never another: only an unnamed one-band scene serves as any band
    Case("change-logratio-band-not-in-scene",
         "change --before {vv_before} --after {vv_after} --method logratio --band VH -o {out}",
         ("--band: 'VH' is not one of the bands of {vv_before} (VV)",)),
    Case("change-logratio-threshold-nan", LOGRATIO + " --logratio-threshold nan", ("--logratio-threshold", "nan")),
    Case("change-logratio-threshold-minus-inf", LOGRATIO + " --logratio-threshold=-inf",
         ("--logratio-threshold", "-inf")),
    Case("change-logratio-threshold-rise", LOGRATIO + " --logratio-threshold 2", ("--logratio-threshold", "below 0")),
    # pictures have no georeference: nothing to place in an AOI, refused before any output
    Case("change-picture-acquired", "change --before {png_before} --after {png_after} --method logratio -o {out} "
         "--acquired 2024-05-01 --db {db}", ("--acquired", "{png_before}", "no georeference")),
    Case("change-acquired-future", LOGRATIO + " --acquired 2999-01-01 --db {db}", ("--acquired", "in the future")),
    # a database that cannot be opened fails before the work whose recording it would fail
    Case("change-acquired-corrupt-db", LOGRATIO + " --acquired 2024-05-01 --db {file}",
         ("{file}", "cannot open the monitoring database")),
    Case("map-acquired-corrupt-db", "map {after} -m {model} -o {out} --tile 64 --overlap 16 --acquired 2024-05-01 "
         "--db {file}", ("{file}", "cannot open the monitoring database"), absent=("{out}",)),
    Case("aoi-record-before-sentinel1", "aoi record {chg} --acquired 1900-01-01 --db {db}",
         ("--acquired", "before Sentinel-1's launch"), absent=()),
    Case("aoi-record-future", "aoi record {chg} --acquired 2999-01-01 --db {db}", ("--acquired", "in the future"),
         absent=()),
    Case("aoi-record-not-a-date", "aoi record {chg} --acquired notadate --db {db}", ("--acquired: 'notadate'",),
         absent=()),
    # map's model options and its refusals of them
    Case("watch-refine-unknown", WATCH + " -m {model} --refine bogus", ("--refine: 'bogus': unknown method",)),
    Case("watch-model-with-triton", WATCH + " -m {model} --backend triton",
         ("-m/--model", "not used with --backend triton")),
    Case("watch-tta-transforms-unknown", WATCH + " -m {model} --tta-transforms spin",
         ("--tta-transforms: unknown transform(s) spin",)),
    Case("watch-downsample-zero", WATCH + " -m {model} --downsample 0", ("--downsample", "Invalid value")),
    Case("watch-downsample-past-tile", WATCH + " -m {model} --tile 64 --downsample 16",
         ("--downsample: a factor of 16 leaves 4 px across a 64 px tile (--tile)",)),
    # readers open an existing database only: a mistyped --db is named, not made and shown empty
    Case("aoi-list-missing-db", "aoi list --db {out}/typo.db", ("{out}/typo.db", "monitoring database not found")),
    Case("aoi-history-missing-db", "aoi history x --db {out}/typo.db",
         ("{out}/typo.db", "monitoring database not found")),
    Case("aoi-retry-alerts-missing-db", "aoi retry-alerts --db {out}/typo.db",
         ("{out}/typo.db", "monitoring database not found")),
    Case("aoi-history-png-suffix", "aoi history x --png {out}.txt --db {db}", ("--png", "{out}.txt", ".png"),
         absent=("{out}.txt",)),
    Case("db-under-file", "aoi list --db {file}/fw.db", ("{file}",), absent=()),
    Case("aoi-record-not-output", "aoi record {file} --acquired 2024-05-01T00:00:00Z --db {db}", ("{file}",),
         absent=()),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
    assert sorted(p.name for p in files["keep"].iterdir()) == ["notes.txt"]  # never replaced by a refused run


def test_refused_aois_were_not_stored(files, run_cli, tmp_path):
    from floodwatch.monitoring.store import Store

    check(CASES[-2], files, run_cli, tmp_path)
    with Store(str(files["db"])) as store:
        assert [a.name for a in store.aois()] == []
