"""8-bit SAR pictures (ETCI, OMBRIA, the course's PNG folders) to dB, so every reader returns dB.

ETCI's and OMBRIA's 8-bit renderings come without a documented dB scale, so the maps here are fitted on
the shared data's statistics: a straight line dB = a * v + b chosen so that the source's 8-bit quantiles
land on Sen1Floods11's dB quantiles (least squares over the 2, 5, 10, 25, 50, 75, 90, 95 and 98th
percentiles of all valid pixels). `fit_linear_map` is the fit; `tests/data/test_shared_data.py` re-runs it
on ../shared/data and checks these constants.

Fitted on 2026-11 from the shared data (10 Sen1Floods11 S1Hand chips, 2.36 M valid pixels; 356 ETCI
North Alabama tiles; 694 OMBRIA AFTER + 694 BEFORE pictures):

    Sen1Floods11 VV dB percentiles (2..98): -21.1 -17.8 -14.7 -11.9 -9.8 -8.0 -6.6 -5.7 -4.5
    Sen1Floods11 VH dB percentiles (2..98): -31.7 -28.5 -26.0 -20.1 -16.4 -14.3 -12.8 -11.9 -11.0
    ETCI VV 8-bit percentiles:                7    85   109   128   145   159   170   177   188
    ETCI VH 8-bit percentiles:               33   121   150   177   203   220   231   237   245
    OMBRIA 8-bit percentiles:                37    54    71   103   145   183   206   217   227

    ETCI VV:   dB = 0.09829 v - 23.866   (0 -> -23.9 dB, 255 -> +1.2 dB; residuals within 2.3 dB)
    ETCI VH:   dB = 0.10814 v - 38.614   (0 -> -38.6 dB, 255 -> -11.0 dB; residuals within 3.6 dB)
    OMBRIA:    dB = 0.07561 v - 21.553   (0 -> -21.6 dB, 255 -> -2.3 dB; residuals within 2.4 dB)

OMBRIA is single-band; its pictures are treated as VV (the OMBRIA paper uses VV) and fitted to VV.
The course's folders are ETCI-derived, so they use the ETCI map. Caveats: the water shares differ between
the sets (water is 4.7 % of the labelled ETCI pixels, 26 % of the Sen1Floods11 ones), and ETCI's rendering may differ scene to scene, so
the maps are approximate; per-chip or per-scene normalisation still matters.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: (slope, intercept) of dB = slope * v + intercept, per source and band.
EIGHT_BIT_TO_DB: dict[str, dict[str, tuple[float, float]]] = {
    "etci": {"VV": (0.09829, -23.866), "VH": (0.10814, -38.614)},
    "ombria": {"VV": (0.07561, -21.553)},
}
EIGHT_BIT_TO_DB["folders"] = EIGHT_BIT_TO_DB["etci"]

#: percentiles used for the fit (the tails are left out: 0 and 255 saturate in 8-bit).
FIT_PERCENTILES = (2, 5, 10, 25, 50, 75, 90, 95, 98)


def to_db(values: np.ndarray, source: str, band: str) -> np.ndarray:
    """8-bit values of one band -> float32 dB with the fitted map of `source`."""
    slope, intercept = EIGHT_BIT_TO_DB[source][band]
    return (np.asarray(values, np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def to_8bit(db: np.ndarray, source: str, band: str) -> np.ndarray:
    """The inverse map, rounded and clipped to 0..255 (NaN -> 0); used to write the course's PNG layout."""
    slope, intercept = EIGHT_BIT_TO_DB[source][band]
    v = (np.asarray(db, np.float32) - np.float32(intercept)) / np.float32(slope)
    return np.clip(np.rint(np.nan_to_num(v, nan=0.0)), 0, 255).astype(np.uint8)


def fit_linear_map(source_values: np.ndarray, reference_db: np.ndarray,
                   percentiles: Sequence[float] = FIT_PERCENTILES) -> tuple[float, float]:
    """(slope, intercept) mapping `source_values`' percentiles onto `reference_db`'s (least squares)."""
    x = np.percentile(np.asarray(source_values).ravel(), percentiles)
    y = np.percentile(np.asarray(reference_db).ravel(), percentiles)
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)
