"""Real Sen1Floods11 chips (EPSG:4326, dB, NaN nodata) go through map_scene unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from floodwatch.mapping import map_scene

from tests.band_files import ALL_NAN, band_file_pairs
from .helpers import WATER_DB, ThresholdPredictor, read

TILING = dict(tile=128, overlap=32, batch=4, progress=False)


def test_sen1floods11_chip_maps_georeferenced(shared_data, tmp_path):
    chip = next(p for p in sorted((shared_data / "sen1floods11" / "S1Hand").glob("*_S1Hand.tif"))
                if not p.name.startswith(("Paraguay_34417", "Ghana")))
    r = map_scene(chip, ThresholdPredictor(), tmp_path, **TILING)
    mask, info = read(r.paths["mask"])
    with rasterio.open(chip) as src:
        vv = src.read(1)
        assert info["crs"] == src.crs and info["transform"] == src.transform
    valid = np.isfinite(vv)
    np.testing.assert_array_equal(mask, np.where(valid, (vv < WATER_DB).astype(np.uint8), 255))
    # A 512 px chip at ~10 m is about 26 km²: a sanity bound on the ellipsoidal area of real pixels.
    assert 15 < r.stats["valid_km2"] < 35


def test_all_nan_real_chip_gives_an_empty_map(shared_data, tmp_path):
    r = map_scene(shared_data / "sen1floods11" / "S1Hand" / "Paraguay_34417_S1Hand.tif", ThresholdPredictor(),
                  tmp_path, **TILING)
    assert (read(r.paths["mask"])[0] == 255).all() and r.stats["valid_km2"] == 0 and r.stats["flooded_km2"] == 0
    assert r.stats["flooded_fraction"] is None


def test_real_chips_as_band_files_open_in_order_and_are_refused_swapped(shared_data, tmp_path):
    """Each Sen1Floods11 chip's VV and VH written as single-band files (one file per band, as STAC Overflow and
    Earth Engine exports come): VH lies several dB under VV on every chip, so the right pair opens and the
    swapped one is refused; the all-NaN chip gives no verdict either way."""
    from floodwatch.errors import DataError
    from floodwatch.mapping.scene import SceneReader

    for name, (vv, vh), (x_vv, x_vh) in band_file_pairs(shared_data, tmp_path):
        SceneReader(vv, vh=vh).close()
        if name.startswith(ALL_NAN):
            SceneReader(x_vv, vh=x_vh).close()
        else:
            with pytest.raises(DataError, match="look swapped"):
                SceneReader(x_vv, vh=x_vh)
