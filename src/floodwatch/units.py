"""Whether backscatter values look like dB or like linear power: one rule for every reader (`map`, `infer`,
`change`: data.files) and for `fetch`/`aoi watch` (acquisition.read), each raising its own error.

Power in linear units (Planetary Computer's RTC gamma0, 0.001-0.5) read as dB would map as backscatter near
0 dB, brighter than any land: no water at all, silently. dB read as power turns every negative value into no
data: an empty map. In dB almost no pixel lies in [0, 2]; power cannot go below -1 (noise removal dips a calm
lake's VH a little below 0, not further). 8-bit grey levels (0-255, ETCI's PNG renderings) stored as floats
read as dB would be brighter than any land: their median lies far above any band's in dB.
"""
from __future__ import annotations

import numpy as np


def looks_linear(x: np.ndarray, ok: np.ndarray) -> bool:
    """Values said to be dB (`ok`: the valid pixels) that are linear power: nearly all in [0, 2]."""
    n = np.count_nonzero(ok)
    return bool(n >= 100 and np.count_nonzero(ok & (x > -0.05) & (x <= 2)) > 0.9 * n)


def looks_db(x: np.ndarray, ok: np.ndarray) -> bool:
    """Values said to be linear power (`ok`: the valid pixels) that are dB: most below -1."""
    return bool(np.count_nonzero(ok & (x < -1.0)) > 0.5 * max(1, np.count_nonzero(ok)))


#: a band whose median lies above this many dB is not backscatter in dB: land medians sit near -8 dB (VV) and
#: -15 dB (VH), and even a chip of dense city stays under +10; 8-bit grey levels (0..255) lie far above it
MAX_MEDIAN_DB = 10.0


def bright_band(x: np.ndarray, ok: np.ndarray) -> tuple[int, float] | None:
    """(band, median) of the first band of (bands, H, W) `x` said to be dB (`ok`: valid pixels, (H, W) or per
    band) whose median lies above MAX_MEDIAN_DB, as 8-bit grey levels do; None where every band could be dB."""
    ok = np.broadcast_to(ok, x.shape)
    for i, (band, good) in enumerate(zip(x, ok)):
        if np.count_nonzero(good) >= 100 and (median := float(np.median(band[good]))) > MAX_MEDIAN_DB:
            return i, median
    return None
