"""Bad input to `floodwatch fetch` and `run`: the catalogue (see tests/bad_inputs.py). Every row is refused before
the catalog is asked: `{api}` is a loopback port nothing listens on, so a row that got as far as the search
would fail naming the catalog rather than the flag."""
from __future__ import annotations

import json

import pytest

from tests.bad_inputs import Case, check, params
from tests.ports import free_port


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_acquisition")
    f = {"model": tiny_checkpoint, "db": d / "fw.db", "folder": d / "folder", "missing": d / "nothere.tif",
         "missing_geojson": d / "nothere.geojson", "aoi": d / "aoi.geojson",
         "api": f"http://127.0.0.1:{free_port()}"}
    f["folder"].mkdir()
    f["wide"] = d / "wide.geojson"
    f["wide"].write_text(json.dumps({"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1], [179, 1],
                                                                          [179, 0]]]}))
    f["aoi"].write_text(json.dumps({"type": "Polygon", "coordinates": [[[15, 44], [15.01, 44], [15.01, 44.01],
                                                                         [15, 44.01], [15, 44]]]}))
    return f


FETCH = "fetch --start 2024-04-19 --end 2024-04-19 --source {api} --collection sentinel-1-rtc -o {out}"
RUN = "run --aoi {aoi} --name x1 --date 2024-04-19 --source {api} --collection sentinel-1-rtc -m {model} " \
      "--db {db} -o {out}"
# map's model options, refused before the store is made and the catalog asked: the database is under {out} too
RUN_FRESH = "run --aoi {aoi} --name x1 --date 2024-04-19 --source {api} --collection sentinel-1-rtc " \
            "--db {out}/fw.db -o {out}/run"

CASES = [
    # fetch has no AOI database: --aoi is a GeoJSON file, and a name or a folder is refused, not a crash
    Case("fetch-aoi-name", FETCH + " --aoi town", ("--aoi: town: file not found",)),
    Case("fetch-aoi-folder", FETCH + " --aoi {folder}", ("--aoi: {folder}: is a folder, not a GeoJSON file",)),
    # an edge over 180° of longitude: a box across 180° or a band round the world? (aoi add refuses it alike)
    Case("fetch-aoi-wide-edge", FETCH + " --aoi {wide}", ("--aoi: {wide}:", "spans more than 180° of longitude")),
    Case("run-aoi-wide-edge", RUN + " --aoi {wide}", ("{wide}", "spans more than 180° of longitude")),
    # map's inputs, checked before the download rather than after it
    Case("run-hand-missing", RUN + " --hand {missing}", ("--hand: {missing}", "not found")),
    Case("run-dem-missing", RUN + " --dem {missing}", ("--dem: {missing}", "not found")),
    Case("run-dem-folder", RUN + " --dem {folder}", ("--dem: {folder}: is a folder",)),
    Case("run-exclude-missing", RUN + " --exclude {missing_geojson}", ("--exclude: {missing_geojson}", "not found")),
    Case("run-water-mask-missing", RUN + " --water-mask {missing}", ("--water-mask: {missing}", "not found")),
    Case("run-hand-wrong-layer", RUN + " --hand jrc-gsw", ("--hand: jrc-gsw: holds water, not hand",)),
    # map's model options and its refusals of them
    Case("run-refine-unknown", RUN_FRESH + " -m {model} --refine bogus", ("--refine: 'bogus': unknown method",)),
    Case("run-model-with-triton", RUN_FRESH + " -m {model} --backend triton",
         ("-m/--model", "not used with --backend triton")),
    Case("run-triton-unreachable", RUN_FRESH + " --backend triton --url {api}", ("{api} model 'flood'",)),
    Case("run-tta-transforms-unknown", RUN_FRESH + " -m {model} --tta-transforms spin",
         ("--tta-transforms: unknown transform(s) spin",)),
    Case("run-downsample-zero", RUN_FRESH + " -m {model} --downsample 0", ("--downsample", "Invalid value")),
    # refused by the model at the first tile, after the download: now before it
    Case("run-downsample-past-tile", RUN_FRESH + " -m {model} --tile 64 --downsample 16",
         ("--downsample: a factor of 16 leaves 4 px across a 64 px tile (--tile)",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    from floodwatch.monitoring.store import Store

    check(case, files, run_cli, tmp_path)
    if case.id.startswith("run-"):
        with Store(str(files["db"])) as store:
            assert store.aois() == []  # the AOI is stored only by a run that gets going
