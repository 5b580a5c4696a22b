"""8-bit SAR pictures (ETCI, OMBRIA, the course's PNG folders) to dB, so every reader returns dB.

Per scene (the ETCI reader's `harmonise="scene"`): the map is fitted on the scene's own pixels, without labels,
when the reader first loads one of its tiles: the scene's 8-bit dark and bright mode medians are put on
`REFERENCE_MODES` (`scene_map`). ETCI renders each scene differently (flood at median VV 16 of 255 in North
Alabama, 84 in Bangladesh), so one fixed map per source puts one scene's flood where another's land is.
This is a step of inference on the scene itself, with no labels: it costs one extra pass over the scene's
VV/VH pictures (a histogram; about as long as reading the scene once). It is not the default: in the
leave-one-event-out table (docs/benchmarks.md, 2026-11-30) a model trained with scene maps on every other
event scored 0.08 on North Alabama (Otsu 0.14) and 0.40 on Bangladesh, where the fixed map's North-Alabama
model scored 0.55. The dark mode's median moves with how much of a scene is water (5 % in North Alabama),
so matching it puts a scene's water at another dB than the reference's mixture of water and dark land.

ETCI's and OMBRIA's 8-bit renderings come without a documented dB scale, so the maps here are fitted on
the shared data's statistics, without labels: a straight line dB = a * v + b that puts the source's dark
and bright modes on Sen1Floods11's. Each side is split in two by an Otsu threshold of its pooled pixels and
each class is summarised by its median; the two (8-bit, dB) median pairs fix the line (`fit_mode_map`).
`tests/data/test_shared_data.py` re-runs the fit on ../shared/data and checks these constants.

Fitted on 2026-11-24 from the shared data (10 labelled Sen1Floods11 S1Hand chips, 2.36 M valid pixels,
labels unused; 356 ETCI North Alabama tiles; 694 OMBRIA AFTER + 694 BEFORE pictures):

    dark / bright mode medians     VV               VH
    Sen1Floods11 (dB)              -14.25 / -9.03   -25.51 / -15.45
    ETCI (8-bit)                   21 / 147         46 / 205
    OMBRIA (8-bit, one band)       98 / 179

    ETCI VV:   dB = 0.04146 v - 15.121   (0 -> -15.1 dB, 255 -> -4.5 dB)
    ETCI VH:   dB = 0.06323 v - 28.416   (0 -> -28.4 dB, 255 -> -12.3 dB)
    OMBRIA:    dB = 0.06450 v - 20.571   (0 -> -20.6 dB, 255 -> -4.1 dB)

Why modes and not quantiles: the first maps (2026-11-23) matched the sets' 2..98th percentiles by least
squares. Water is 4.7 % of ETCI's pixels and 26 % of Sen1Floods11's, and ETCI's darkest water saturates at 0,
so that fit stretched ETCI's dark end: ETCI water landed near -22 dB VV / -34 dB VH while Sen1Floods11's
water sits near -18 / -26 dB, and an ETCI-trained model called most Sen1Floods11 water land (water IoU 0.23).
The medians of the two modes do not depend on how much of each there is. With these maps the same model
scores 0.62 on the Sen1Floods11 chips (docs/benchmarks.md). Caveat: the Sen1Floods11 statistics come from
the very chips that model is scored on (their images, not their labels); the shared data has no others.

OMBRIA is single-band; its pictures are treated as VV (the OMBRIA paper uses VV). The course's folders are
ETCI-derived, so they use the ETCI map. ETCI's rendering may differ from scene to scene, and its narrow VV
range (10.6 dB) means Sen1Floods11 water below -15 dB VV becomes 0 when written as course PNGs
(`data convert`); the maps are approximate.
"""
from __future__ import annotations

import numpy as np

#: (slope, intercept) of dB = slope * v + intercept, per source and band.
EIGHT_BIT_TO_DB: dict[str, dict[str, tuple[float, float]]] = {
    "etci": {"VV": (0.04146, -15.121), "VH": (0.06323, -28.416)},
    "ombria": {"VV": (0.06450, -20.571)},
}
EIGHT_BIT_TO_DB["folders"] = EIGHT_BIT_TO_DB["etci"]


#: dB of the dark and bright modes (Otsu-split medians) that a scene's 8-bit modes are put on, per band:
#: Sen1Floods11's pooled modes (the table above). `benchmarks/generalisation.py` refits them per fold on the
#: training events' Sen1Floods11 chips only.
REFERENCE_MODES: dict[str, tuple[float, float]] = {"VV": (-14.25, -9.03), "VH": (-25.51, -15.45)}


def to_db(values: np.ndarray, source: str, band: str) -> np.ndarray:
    """8-bit values of one band -> float32 dB with the fitted map of `source`."""
    slope, intercept = EIGHT_BIT_TO_DB[source][band]
    return (np.asarray(values, np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def to_8bit(db: np.ndarray, source: str, band: str) -> np.ndarray:
    """The inverse map, rounded and clipped to 0..255 (NaN -> 0); used to write the course's PNG layout."""
    slope, intercept = EIGHT_BIT_TO_DB[source][band]
    v = (np.asarray(db, np.float32) - np.float32(intercept)) / np.float32(slope)
    return np.clip(np.rint(np.nan_to_num(v, nan=0.0)), 0, 255).astype(np.uint8)


def mode_medians(values: np.ndarray) -> tuple[float, float]:
    """(dark, bright) medians of the two classes an Otsu threshold splits the finite `values` into."""
    from .stats import otsu_threshold  # the generic histogram split; no model or labels involved

    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    t = otsu_threshold(v)
    dark, bright = v[v < t], v[v >= t]
    if dark.size == 0 or bright.size == 0:
        raise ValueError("the values have a single mode: no dark/bright split to anchor a map on")
    return float(np.median(dark)), float(np.median(bright))


def histogram_mode_medians(counts: np.ndarray) -> tuple[float, float]:
    """(dark, bright) medians of a 256-bin 8-bit histogram split in two by its Otsu threshold."""
    from .stats import otsu_from_histogram

    counts = np.asarray(counts, np.float64)
    if counts.sum() == 0:
        raise ValueError("no data pixels")
    t = otsu_from_histogram(counts, np.arange(257, dtype=np.float64))
    cut = int(np.clip(np.ceil(t), 1, 255))
    halves = [(np.arange(0, cut), counts[:cut]), (np.arange(cut, 256), counts[cut:])]
    if any(c.sum() == 0 for _, c in halves):
        raise ValueError("the histogram has a single mode: no dark/bright split to anchor a map on")
    return tuple(float(v[np.searchsorted(np.cumsum(c), c.sum() / 2)]) for v, c in halves)


def scene_map(counts: np.ndarray, reference: tuple[float, float]) -> tuple[float, float]:
    """(slope, intercept) putting a scene's 8-bit dark/bright mode medians on the `reference` dB modes."""
    s_dark, s_bright = histogram_mode_medians(counts)
    slope = (reference[1] - reference[0]) / (s_bright - s_dark)
    return float(slope), float(reference[0] - slope * s_dark)


def fit_mode_map(source_values: np.ndarray, reference_db: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) putting the source's dark and bright modes on the reference's (two anchors, no labels)."""
    (s_dark, s_bright), (r_dark, r_bright) = mode_medians(source_values), mode_medians(reference_db)
    slope = (r_bright - r_dark) / (s_bright - s_dark)
    return float(slope), float(r_dark - slope * s_dark)
