"""Real Sen1Floods11 chips written as one single-band GeoTIFF per band (STAC Overflow's and Earth Engine's
layout), right and swapped, for the readers that pair band files by content (map's and infer's)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import rasterio

ALL_NAN = "Paraguay_34417"  # a chip that is all no data: no verdict either way


def band_file_pairs(shared_data: Path, folder: Path) -> Iterator[tuple[str, tuple[Path, Path], tuple[Path, Path]]]:
    """Per chip: (its name, (vv, vh) files in the right order, (vv, vh) files holding each other's band)."""
    chips = sorted((shared_data / "sen1floods11").glob("S1Hand*/*_S1Hand.tif"))
    assert any(c.name.startswith(ALL_NAN) for c in chips)
    for chip in chips:
        with rasterio.open(chip) as src:
            profile, vv, vh = src.profile | {"count": 1}, src.read(1), src.read(2)
        for name, band in (("c_vv", vv), ("c_vh", vh), ("s_vv", vh), ("s_vh", vv)):
            with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
                dst.write(band, 1)
        yield chip.name, (folder / "c_vv.tif", folder / "c_vh.tif"), (folder / "s_vv.tif", folder / "s_vh.tif")
