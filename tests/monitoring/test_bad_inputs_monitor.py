"""Bad input to `floodwatch change` and `aoi ...`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import json

import pytest

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
    return f


CHANGE = "change --before {before} --after {after} -m {model} -o {out}"

CASES = [
    # before/after that are not two images of one place: refused, not "0 km² of new water"
    Case("change-elsewhere", "change --before {elsewhere} --after {after} -m {model} -o {out}",
         ("{elsewhere}", "does not overlap", "{after}")),
    Case("change-other-crs", "change --before {other_crs} --after {after} -m {model} -o {out}",
         ("{other_crs}", "does not overlap")),
    Case("change-logratio-elsewhere", "change --before {elsewhere} --after {after} --method logratio -o {out}",
         ("{elsewhere}", "does not overlap")),
    Case("change-one-band-before", "change --before {one_band} --after {after} -m {model} -o {out}",
         ("{one_band}", "1 band")),
    Case("change-one-band-after", "change --before {before} --after {one_band} -m {model} -o {out}",
         ("{one_band}", "1 band")),
    Case("change-int8", "change --before {int8} --after {after} -m {model} -o {out}", ("{int8}", "int8")),
    Case("change-out-under-file", "change --before {before} --after {after} -m {model} -o {file}/c",
         ("{file} is a file",)),
    Case("change-out-holds-user-file", "change --before {before} --after {after} -m {model} -o {keep}",
         ("{keep}: holds notes.txt, which change did not write",), absent=()),
    # the limits map sets on the same flags (typer's min for --tile and --batch, the library's for --threshold)
    Case("change-batch-negative", CHANGE + " --batch -1", ("'--batch'",)),
    Case("change-batch-zero", CHANGE + " --batch 0", ("'--batch'",)),
    Case("change-batch-size-zero", CHANGE + " --batch-size 0", ("'--batch'",)),
    Case("change-threshold-2", CHANGE + " --threshold 2", ("--threshold: 2.0 must be between 0 and 1",)),
    Case("change-threshold-0", CHANGE + " --threshold 0", ("--threshold: 0.0 must be between 0 and 1",)),
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
