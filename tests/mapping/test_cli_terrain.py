"""`floodwatch map` with terrain options: outputs, the extra table column, and one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from floodwatch.cli.main import main

from .terrain_scenes import hill, write_raster, write_sar


def run(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


@pytest.fixture
def scene(tmp_path):
    dark = np.zeros((64, 64), bool)
    dark[20:40, 30:60] = True
    write_sar(tmp_path / "s.tif", dark, tags={"ORBIT_DIRECTION": "ASCENDING"})
    write_raster(tmp_path / "dem.tif", hill((64, 64), (32, 16), 200.0, 60.0))
    return tmp_path


def test_map_with_dem_depth_and_exclude(scene, tiny_checkpoint, capsys):
    (scene / "no.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    code = run(["map", str(scene / "s.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "out"), "--dem",
                str(scene / "dem.tif"), "--depth", "--exclude", str(scene / "no.geojson"), "--hand-max", "10",
                "--tile", "64", "--overlap", "0", "-q"])
    assert code in (0, None), capsys.readouterr().err
    out = scene / "out" / "s"
    assert {"exclusion.tif", "flood_depth.tif"} <= {p.name for p in out.iterdir()}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["terrain"]["hand_max_m"] == 10 and stats["terrain"]["hand_source"].startswith("pysheds")
    assert "ascending" in stats["terrain"]["look_geometry"]["source"]
    assert sum(stats["area_split_km2"].values()) == pytest.approx(stats["valid_km2"], rel=1e-9)


@pytest.mark.parametrize("extra, message", [
    (["--depth"], "--depth: needs --dem"),
    (["--dem", "missing.tif"], "--dem: missing.tif: DEM not found"),
    (["--orbit", "sideways"], "--orbit: 'sideways' is not one of ascending, descending"),
    (["--exclude", "nothing.geojson"], "nothing.geojson: exclusion mask not found"),
    # layers of another place: read as all no data, they would exclude nothing, or count all water as flood
    (["--dem", "far.tif"], "far.tif: DEM has no data over the scene"),
    (["--hand", "far.tif"], "far.tif: HAND has no data over the scene"),
    (["--water-mask", "far.tif"], "--water-mask: far.tif: water mask does not reach the scene"),
    (["--hand", "."], ": is a folder, not a HAND"),
    (["--hand", "s.tif"], "s.tif: HAND has a median of -8.0 m over the scene"),  # the scene's dB, not HAND
    # in the 1 km margin read around the scene for shadows, not over the scene
    (["--dem", "beside.tif"], "beside.tif: DEM has no data over the scene"),
])
def test_terrain_errors_are_one_line(scene, tiny_checkpoint, capsys, monkeypatch, extra, message):
    write_raster(scene / "far.tif", hill((64, 64), (32, 16), 200.0, 60.0), origin=(600000.0, 5300000.0))
    write_raster(scene / "beside.tif", hill((64, 30), (32, 15), 200.0, 60.0), origin=(400840.0, 5300000.0))
    monkeypatch.chdir(scene)
    code = run(["map", str(scene / "s.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "out"), "-q", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (scene / "out" / "s").exists()


def test_a_world_wide_water_mask_in_degrees_reaches_a_utm_scene(scene, tiny_checkpoint, capsys):
    """One EPSG:4326 layer for the whole world serves every scene, west of a UTM zone's central meridian too
    (the world's box has no sensible extent in one zone; the scene's box goes into degrees instead)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(scene / "world.tif", "w", driver="GTiff", width=360, height=180, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(-180, 90, 1, 1)) as ds:
        ds.write(np.ones((1, 180, 360), np.uint8))
    code = run(["map", str(scene / "s.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "out"), "--water-mask",
                str(scene / "world.tif"), "--tile", "64", "--overlap", "0", "-q"])
    assert code in (0, None), capsys.readouterr().err
    stats = json.loads((scene / "out" / "s" / "stats.json").read_text())
    assert stats["water_km2"] > 0 and stats["permanent_water_km2"] == pytest.approx(stats["water_km2"])
