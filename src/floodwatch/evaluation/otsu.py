"""The classical baseline: Otsu's threshold on backscatter in dB, darker than the threshold = water.

Open water is a specular reflector, so it is dark in SAR; a bimodal histogram splits at the valley.
Per chip on VH is the Sen1Floods11 convention; per scene on VV suits sources such as ETCI whose tiles
are cut from one scene with a shared (8-bit) rendering, where many tiles hold only one class and a
per-tile threshold would invent water in dry tiles.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..data.sample import Sample, band_index, require_band
from ..data.stats import otsu_from_histogram, otsu_threshold
from ..errors import DataError

#: Fixed histogram edges for scene-wide thresholds: histograms of many chips can then simply be summed.
SCENE_EDGES = np.linspace(-50.0, 5.0, 1101)  # 0.05 dB bins over the pre-processing clip range


def otsu_water(image_db: np.ndarray, valid: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Boolean water mask of one band (H, W): below the threshold (per-chip Otsu if not given)."""
    band = np.asarray(image_db, np.float32)
    ok = np.asarray(valid, bool) & np.isfinite(band)
    if threshold is None:
        threshold = otsu_threshold(band[ok])
    if not np.isfinite(threshold):
        return np.zeros(band.shape, bool)
    return ok & (band < threshold)


def _band_histogram(sample: Sample, index: int) -> np.ndarray:
    """Counts of the sample's valid, finite values of band `index` over SCENE_EDGES (values clipped into range)."""
    b = sample.image[index]
    ok = sample.valid & np.isfinite(b)
    # bins + range (not an edge array) takes numpy's linear-time path for equal bins
    h, _ = np.histogram(np.clip(b[ok], SCENE_EDGES[0], SCENE_EDGES[-1]), bins=len(SCENE_EDGES) - 1,
                        range=(SCENE_EDGES[0], SCENE_EDGES[-1]))
    return h


def scene_thresholds(samples: Iterable[Sample], band: str = "VV") -> dict[str, float]:
    """One Otsu threshold per scene (samples grouped by `region`), from summed fixed-edge histograms."""
    hists: dict[str, np.ndarray] = {}
    for s in samples:
        if not s.is_empty:
            hists[s.region] = hists.get(s.region, 0) + _band_histogram(s, band_index(s, band))
    return {region: otsu_from_histogram(h, SCENE_EDGES) for region, h in hists.items()}


def pooled_threshold(samples: Iterable[Sample], band: str) -> float:
    """One Otsu threshold over all the samples' valid pixels of `band`; nan when there are none. Unlike the
    baselines, it does not fall back to the first band: a sample without `band` is a DataError."""
    total = np.zeros(len(SCENE_EDGES) - 1, np.int64)
    for s in samples:
        index = require_band(s, band)
        if not s.is_empty:
            total += _band_histogram(s, index)
    return otsu_from_histogram(total, SCENE_EDGES)


class OtsuBaseline:
    """Otsu water masks for samples: `scope` 'chip' (threshold per chip) or 'scene' (per region).

    Scene scope needs `fit(dataset)` first, a pass over the data to build each scene's histogram.
    """

    def __init__(self, band: str = "VH", scope: str = "chip") -> None:
        if scope not in ("chip", "scene"):
            raise DataError(f"otsu scope: '{scope}' is not one of chip, scene")
        self.band, self.scope = band, scope
        self.thresholds: dict[str, float] = {}

    @classmethod
    def for_dataset(cls, dataset: Sequence[Sample]) -> "OtsuBaseline":
        """The conventional baseline for the data: VV per scene for ETCI-like tiles, else VH per chip."""
        source = str(getattr(dataset, "format", "") or "")
        if not source:
            first = next((s for s in dataset if not s.is_empty), None)
            source = str(first.extra.get("source", "")) if first is not None else ""
        if source.lower().startswith("etci"):
            return cls(band="VV", scope="scene").fit(dataset)
        return cls(band="VH", scope="chip")

    def fit(self, dataset: Iterable[Sample]) -> "OtsuBaseline":
        if self.scope == "scene":
            self.thresholds = scene_thresholds(dataset, self.band)
        return self

    def describe(self) -> str:
        return f"Otsu on {self.band} in dB, one threshold per {self.scope}"

    def predict(self, sample: Sample) -> np.ndarray:
        threshold = None
        if self.scope == "scene":
            if sample.region not in self.thresholds:
                raise DataError(f"{sample.id}: no scene threshold for region '{sample.region}' (call fit first)")
            threshold = self.thresholds[sample.region]
        return otsu_water(sample.image[band_index(sample, self.band)], sample.valid, threshold)
