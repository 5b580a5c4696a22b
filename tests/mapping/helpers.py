"""Fake predictors and small georeferenced scenes for the mapping tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio import features

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.synthetic import synth_scene, write_scene

#: VV below this (dB) is water for the thresholding predictor: water is dark.
WATER_DB = -15.0


class ThresholdPredictor:
    """Exact, pointwise fake model: water probability 1 where VV < -15 dB, else 0."""

    backend = "threshold"

    def __init__(self):
        self.preprocessing = Preprocessing()
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        pre = self.preprocessing
        vv_db = batch[:, 0] / pre.scale[0] + pre.offset[0]  # undo the normalisation
        return (vv_db < WATER_DB).astype(np.float32)


class ConstantPredictor:
    backend = "constant"

    def __init__(self, value: float = 0.37):
        self.preprocessing = Preprocessing()
        self.value = value

    def predict(self, batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        return np.full((n, h, w), self.value, np.float32)


def make_scene(path: Path, height: int, width: int, *, seed: int = 0, crs: str = "EPSG:32633",
               origin=(400000.0, 5300000.0), pixel_size: float = 10.0, nodata_border: int = 0,
               water_fraction: float = 0.2):
    """Write a synthetic dual-pol dB scene with (almost) no speckle; returns the Sample (truth mask inside)."""
    sample = synth_scene(height, width, seed, crs=crs, origin=origin, pixel_size=pixel_size,
                         nodata_border=nodata_border, water_fraction=water_fraction, looks=1e4)
    write_scene(sample, path)
    return sample


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(1), {"crs": ds.crs, "transform": ds.transform, "nodata": ds.nodata, "shape": ds.shape,
                            "overviews": ds.overviews(1), "driver": ds.driver, "tiled": ds.profile.get("tiled")}


def pixel_polygons(mask: np.ndarray, transform):
    """Shapely polygons (scene CRS) of the True pixels."""
    from shapely.geometry import shape

    return [shape(g) for g, _ in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)]
