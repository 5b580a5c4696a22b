"""The classical baseline: Otsu's threshold on backscatter in dB, darker than the threshold = water.

Open water is a specular reflector, so it is dark in SAR; a bimodal histogram splits at the valley.
Per chip on VH is the Sen1Floods11 convention; per scene on VV suits sources such as ETCI whose tiles
are cut from one scene with a shared (8-bit) rendering, where many tiles hold only one class and a
per-tile threshold would invent water in dry tiles.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..data.harmonise import EIGHT_BIT_TO_DB, to_8bit, to_db
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


def _from_8bit(sample: Sample, band: str) -> bool:
    """Whether `band` of the sample holds whole 8-bit grey levels through one of the readers' 8-bit-to-dB maps
    (harmonise.EIGHT_BIT_TO_DB: the course's folders, OMBRIA): every value maps back to a grey level and
    forward to itself. Backscatter measured in dB does not fall on such a lattice."""
    index = band_index(sample, band)
    values = sample.image[index][sample.valid & np.isfinite(sample.image[index])]
    return values.size > 0 and any(
        np.array_equal(to_db(to_8bit(values, source, band), source, band), values)
        for source, maps in EIGHT_BIT_TO_DB.items() if band in maps)


class OtsuBaseline:
    """Otsu water masks for samples: `scope` 'chip' (threshold per chip) or 'scene' (per region).

    Scene scope needs `fit(dataset)` first, a pass over the data to build each scene's histogram.
    """

    def __init__(self, band: str = "VH", scope: str = "chip", eight_bit: bool = False, after: bool = False) -> None:
        if scope not in ("chip", "scene"):
            raise DataError(f"otsu scope: '{scope}' is not one of chip, scene")
        self.band, self.scope = band, scope
        #: the dB are 8-bit grey levels through a fitted linear map: what `describe` says Otsu ran on
        self.eight_bit = eight_bit
        #: bi-temporal chips (OMBRIA): Otsu sees the after image only, which `describe` says
        self.after = after
        self.thresholds: dict[str, float] = {}

    @classmethod
    def for_dataset(cls, dataset: Sequence[Sample]) -> "OtsuBaseline":
        """The conventional baseline for the data: VV per scene for ETCI-like tiles, else VH per chip (the first
        band where the chips have no VH, as `band_index` picks it, and named so)."""
        first = next((s for s in dataset if not s.is_empty), None)
        source = str(getattr(dataset, "format", "") or "")
        if not source:
            source = str(first.extra.get("source", "")) if first is not None else ""
        band, scope = ("VV", "scene") if source.lower().startswith("etci") else ("VH", "chip")
        if first is not None:
            band = first.bands[band_index(first, band)] if len(first.bands) == first.image.shape[0] else band
        eight_bit = first is not None and (source.lower().startswith("etci") or _from_8bit(first, band))
        after = first is not None and first.before is not None
        baseline = cls(band=band, scope=scope, eight_bit=eight_bit, after=after)
        return baseline.fit(dataset) if scope == "scene" else baseline

    def fit(self, dataset: Iterable[Sample]) -> "OtsuBaseline":
        if self.scope == "scene":
            self.thresholds = scene_thresholds(dataset, self.band)
        return self

    def describe(self) -> str:
        # a linear map does not move Otsu's split: on 8-bit data it is the split of the grey levels
        if self.after:  # bi-temporal chips: not the before image, nor the change
            values = "of the after pictures (8-bit grey levels mapped to dB)" if self.eight_bit else \
                "of the after images in dB"
        else:
            values = "of 8-bit pictures (grey levels mapped to dB)" if self.eight_bit else "in dB"
        return f"Otsu on {self.band} {values}, one threshold per {self.scope}"

    def predict(self, sample: Sample) -> np.ndarray:
        threshold = None
        if self.scope == "scene":
            if sample.region not in self.thresholds:
                raise DataError(f"{sample.id}: no scene threshold for region '{sample.region}' (call fit first)")
            threshold = self.thresholds[sample.region]
        return otsu_water(sample.image[band_index(sample, self.band)], sample.valid, threshold)
