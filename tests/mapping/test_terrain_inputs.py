"""Terrain layers as users bring them: units other than metres, no-data values a file does not declare, an
exclusion raster of another place, and sources that cannot be read (a URL that is missing or unreachable, a
public layer whose server does not answer); each is one error naming the Terrain field it came from."""
from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest
import rasterio

from floodwatch.cli.main import main
from floodwatch.errors import DataError
from floodwatch.mapping import map_scene
from floodwatch.mapping.terrain import HAND_ABOVE, STEEP, Terrain
from floodwatch.mapping.terrain_sources import PUBLIC_LAYERS

from .helpers import ThresholdPredictor, read
from .range_server import RangeServer
from .terrain_scenes import hill, write_raster, write_sar

TILING = dict(tile=64, overlap=16, batch=4, progress=False)
SHAPE = (64, 64)
FOOT, US_FOOT = 0.3048, 1200 / 3937


@pytest.fixture
def scene(tmp_path):
    dark = np.zeros(SHAPE, bool)
    dark[10:50, 5:60] = True
    write_sar(tmp_path / "s.tif", dark, tags={"PLATFORM_HEADING": "0", "INCIDENCE_ANGLE": "38"})
    return tmp_path


def write_with_unit(path, data, unit, *, tag=False):
    write_raster(path, data)
    with rasterio.open(path, "r+") as ds:
        if tag:
            ds.update_tags(units=unit)
        else:
            ds.units = (unit,)
    return path


def flags_of(scene, out, **terrain):
    r = map_scene(scene / "s.tif", ThresholdPredictor(), scene / out, terrain=Terrain(**terrain), **TILING)
    return read(r.paths["exclusion"])[0], r


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("unit, per_unit, tag", [("ft", FOOT, False), ("US survey foot", US_FOOT, False),
                                                 ("feet", FOOT, True)])
def test_hand_in_feet_is_read_as_metres(scene, unit, per_unit, tag):
    hand_m = np.tile(np.linspace(0, 40, SHAPE[1], dtype=np.float32), (SHAPE[0], 1))  # 15 m at column 24
    write_raster(scene / "hand_m.tif", hand_m)
    write_with_unit(scene / "hand_ft.tif", hand_m / per_unit, unit, tag=tag)
    in_m, _ = flags_of(scene, "m", hand=scene / "hand_m.tif")
    in_ft, _ = flags_of(scene, "ft", hand=scene / "hand_ft.tif")
    assert (in_m & HAND_ABOVE).any() and ((in_m & HAND_ABOVE) == (in_ft & HAND_ABOVE)).all()


def test_dem_in_feet_gives_the_slope_and_depth_of_its_metres(scene):
    dem_m = hill(SHAPE, (32, 32), 150.0, 80.0)
    write_raster(scene / "dem_m.tif", dem_m)
    write_with_unit(scene / "dem_ft.tif", dem_m / FOOT, "ft")
    in_m, rm = flags_of(scene, "m", dem=scene / "dem_m.tif", hand_from_dem=False, depth=True)
    in_ft, rf = flags_of(scene, "ft", dem=scene / "dem_ft.tif", hand_from_dem=False, depth=True)
    assert (in_m & STEEP).any() and ((in_m & STEEP) == (in_ft & STEEP)).all()
    assert rf.stats["terrain"]["depth"]["max_m"] == pytest.approx(rm.stats["terrain"]["depth"]["max_m"], rel=1e-4)


def test_a_layer_in_another_unit_is_refused(scene):
    write_with_unit(scene / "db.tif", np.full(SHAPE, 3.0, np.float32), "dB")
    with pytest.raises(DataError, match=r"^hand: .*db.tif: HAND is in 'dB', not metres or feet"):
        flags_of(scene, "o", hand=scene / "db.tif")
    assert not (scene / "o" / "s").exists()


@pytest.mark.parametrize("void", [-32768, -9999])
def test_undeclared_no_data_in_a_dem_is_refused(scene, void):
    """Voids with no nodata tag would read as cliffs: layover and shadow over the whole scene."""
    dem = np.full(SHAPE, 120, np.int16)
    dem[:, :10] = void
    write_raster(scene / "void.tif", dem)
    with pytest.raises(DataError, match=rf"^dem: .*void.tif: DEM has values of {void} m .*no-data value"):
        flags_of(scene, "o", dem=scene / "void.tif", hand_from_dem=False)
    write_raster(scene / "declared.tif", dem, nodata=void)  # declared, the same voids are just no data
    flags, _ = flags_of(scene, "ok", dem=scene / "declared.tif", hand_from_dem=False)
    assert not flags[:, 12:].any()


def test_an_exclusion_raster_of_another_place_is_an_error(scene):
    """It would exclude nothing; a vector file of a region may hold no polygon here, as documented."""
    write_raster(scene / "far.tif", np.ones(SHAPE, np.uint8), origin=(600000.0, 5300000.0))
    with pytest.raises(DataError, match=r"^exclude: .*far.tif: exclusion mask does not reach the scene"):
        flags_of(scene, "o", exclude=scene / "far.tif")
    (scene / "none.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    flags, _ = flags_of(scene, "v", exclude=scene / "none.geojson")
    assert not flags.any()


def test_a_dem_url_that_is_missing_or_unreachable_says_so(scene):
    (scene / "srv").mkdir()
    write_raster(scene / "srv" / "dem.tif", hill(SHAPE, (32, 32), 50.0, 80.0))
    with RangeServer(scene / "srv").serve() as url:
        flags_of(scene, "ok", dem=f"{url}/dem.tif", hand_from_dem=False)  # a URL that answers is read
        with pytest.raises(DataError, match=r"^dem: .*/gone.tif: DEM not found$"):
            flags_of(scene, "o", dem=f"{url}/gone.tif")
        (scene / "srv" / "tile_404.tif").write_bytes(b"II*\x00" + b"\x00broken" * 50)  # there, but no raster
        with pytest.raises(DataError, match=r"^dem: .*/tile_404.tif: DEM cannot be read \(.*TIFF"):
            flags_of(scene, "o", dem=f"{url}/tile_404.tif")
    with pytest.raises(DataError, match=r"^dem: .*/dem.tif: DEM cannot be read \(.*connect"):
        flags_of(scene, "o", dem=f"http://127.0.0.1:{closed_port()}/dem.tif")
    assert not (scene / "o" / "s").exists()


@pytest.mark.parametrize("field, name", [("dem", "glo30-dem"), ("hand", "glo30-hand")])
def test_an_unreachable_public_layer_names_it(scene, monkeypatch, field, name):
    layer = dataclasses.replace(PUBLIC_LAYERS[name], base_url=f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setitem(PUBLIC_LAYERS, name, layer)
    with pytest.raises(DataError, match=rf"^{field}: {name}: http://127.0.0.1:.*cannot read \(.*connect"):
        flags_of(scene, "o", **{field: name})
    assert not (scene / "o" / "s").exists()


def test_map_names_the_flag_of_a_layer_it_cannot_use(scene, tiny_checkpoint, capsys):
    """As `run` does (its layer check prefixes the option): one line, the flag first."""
    write_with_unit(scene / "db.tif", np.full(SHAPE, 3.0, np.float32), "dB")
    with pytest.raises(SystemExit) as exit_info:
        main(["map", str(scene / "s.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "out"), "-q",
              "--hand", str(scene / "db.tif")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: --hand: ") and "HAND is in 'dB'" in err


def test_an_exclusion_url_that_is_missing_or_unreachable_says_so(scene):
    """It said "is not a raster GeoTIFF or a vector file", as for a local file of another kind."""
    (scene / "srv").mkdir()
    with RangeServer(scene / "srv").serve() as url:
        with pytest.raises(DataError, match=r"^exclude: .*/gone.tif: exclusion mask not found$"):
            flags_of(scene, "o", exclude=f"{url}/gone.tif")
    with pytest.raises(DataError, match=r"^exclude: .*/x.tif: exclusion mask cannot be read \(.*connect"):
        flags_of(scene, "o", exclude=f"http://127.0.0.1:{closed_port()}/x.tif")
    (scene / "notes.tif").write_text("not a raster")
    with pytest.raises(DataError, match=r"notes.tif: exclusion mask is not a raster GeoTIFF or a vector file"):
        flags_of(scene, "o", exclude=scene / "notes.tif")
    assert not (scene / "o" / "s").exists()
