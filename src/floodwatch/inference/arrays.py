"""Water probability of a chip held in a numpy array, with the checks `infer` applies to a chip file.

A notebook's array has no file name, band descriptions or nodata tag to check it by, and a wrong one (bands
last, linear power, an 8-bit picture, VH before VV) still runs through the model and gives a confident, wrong
map. So the array is checked as `read_chip` checks a GeoTIFF (data.files: the same rules and thresholds),
plus what only an array can get wrong: its axis order and pixel type.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..data.files import missing_db, vh_above_vv
from ..data.harmonise import EIGHT_BIT_TO_DB, to_db
from ..data.sample import Sample
from ..errors import DataError, InvalidArgumentError
from ..units import bright_band, looks_db, looks_linear
from .base import Predictor, predict_samples

UNITS = ("db", "linear", "8bit")
_SAID = {"db": "dB", "linear": "linear power"}


def predict_array(image: Any, predictor: Predictor | str | os.PathLike | None = None, *,
                  bands: Sequence[str] = ("VV", "VH"), units: str = "db",
                  nodata: float | None = None) -> np.ndarray:
    """Water probability of one chip given as an array, as `floodwatch infer` computes it for a chip file.

    Args:
        image: (bands, H, W) backscatter, band axis first (rasterio's order), float in dB by default.
        predictor: a Predictor (`load_predictor`; load it once for many chips), or a model reference it
            loads: a file, a registered name, None for the default model (`floodwatch models info`).
        bands: the names of `image`'s bands, in order; the model takes the ones it needs by name.
        units: 'db'; 'linear' power (converted with 10 log10, zero power is no data); '8bit' grey levels
            (uint8, ETCI's PNG renderings), put into dB through the fixed 8-bit map `infer` uses for PNGs.
        nodata: a value marking missing pixels, besides NaN, exactly 0.0 dB and -100 dB or less.

    Returns:
        (H, W) float32 water probability, NaN where a band has no data; `prob >= 0.5` is the water mask at
        the default threshold.

    Raises:
        InvalidArgumentError: `units` or `bands` not understood, or an image of the wrong rank or band count.
        DataError: values that are not what `units` says (linear power as dB, dB as power, 8-bit levels as
            dB), integer pixels given as dB or power, or VH brighter than VV (bands swapped).
        ModelError, CheckpointError: a model reference that cannot be loaded.
    """
    from .predictor import load_predictor

    if not isinstance(predictor, Predictor):
        predictor = load_predictor(predictor)
    sample = array_sample(image, bands=bands, units=units, nodata=nodata)
    return predict_samples(predictor, [sample], batch=1)[0]


def array_sample(image: Any, *, bands: Sequence[str] = ("VV", "VH"), units: str = "db",
                 nodata: float | None = None, id: str = "image") -> Sample:
    """`image` as an unlabelled Sample in dB, after predict_array's checks (see there)."""
    if units not in UNITS:
        raise InvalidArgumentError(f"units: '{units}' is not one of {', '.join(UNITS)}")
    if isinstance(bands, str) or not all(isinstance(b, str) for b in bands) or not bands:
        raise InvalidArgumentError(f"bands: expected a list of band names such as ['VV', 'VH'], got {bands!r}")
    names = tuple(b.upper() for b in bands)
    x = np.asarray(image)
    _check_shape(x, names)
    if units == "8bit":
        # `nodata` is a grey level here: looked for before the levels become dB, where it would match nothing
        fill = x == nodata if nodata is not None and not np.isnan(nodata) else np.zeros(x.shape, bool)
        x, nodata = _from_8bit(x, names), None
    elif not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"image: pixel type {x.dtype}; expected float backscatter in {_SAID[units]} (an 8-bit "
                        "picture, e.g. an ETCI PNG: units '8bit')")
    x = x.astype(np.float32)  # a copy: the caller's array is left as it was
    ok = ~missing_db(x, nodata)
    if units == "8bit":
        ok &= ~fill
    if units == "linear":
        if looks_db(x, ok):
            raise DataError("image: most values are negative, which power in linear units cannot be; it looks like "
                            "dB (units 'db', the default)")
        ok &= x > 0  # zero power is the usual fill value of linear products
        with np.errstate(divide="ignore", invalid="ignore"):
            x = 10.0 * np.log10(x)
    elif units == "db":
        if looks_linear(x, ok):
            raise DataError("image: most values lie between 0 and 2, where backscatter in dB almost never is; it "
                            "looks like linear power (units 'linear' converts it)")
        _check_not_8bit(x, ok, names)
    valid = ok.all(axis=0)
    x[:, ~valid] = np.nan
    if "VV" in names and "VH" in names:  # no data is NaN by now, which vh_above_vv leaves out
        _check_vh_darker(x[names.index("VV")], x[names.index("VH")])
    return Sample(image=x, mask=None, valid=valid, id=id, bands=names)


def _check_shape(x: np.ndarray, names: tuple[str, ...]) -> None:
    n, want = len(names), f"({len(names)}, H, W) for bands {', '.join(names)}"
    if x.ndim == 3 and x.shape[0] != n and x.shape[-1] == n:
        raise InvalidArgumentError(f"image: shape {x.shape} has the bands last; expected {want}, band axis first "
                                   "(np.moveaxis(image, -1, 0))")
    if x.ndim != 3 or x.shape[0] != n:
        raise InvalidArgumentError(f"image: shape {x.shape}; expected {want} (`bands` names them)")
    if min(x.shape[1:]) < 1:
        raise InvalidArgumentError(f"image: shape {x.shape} holds no pixels")


def _from_8bit(x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"image: pixel type {x.dtype}; units '8bit' takes uint8 grey levels (0..255)")
    known = EIGHT_BIT_TO_DB["folders"]
    unknown = [b for b in names if b not in known]
    if unknown:
        raise InvalidArgumentError(f"bands: no 8-bit-to-dB map for {', '.join(unknown)} (known: {', '.join(known)})")
    return np.stack([to_db(band, "folders", name) for band, name in zip(x, names)])


def _check_not_8bit(x: np.ndarray, ok: np.ndarray, names: tuple[str, ...]) -> None:
    bright = bright_band(x, ok)
    if bright is not None:
        raise DataError(f"image: band {names[bright[0]]}'s median is {bright[1]:.0f} dB, far above any backscatter "
                        "in dB; 8-bit grey levels (an ETCI PNG)? give them as uint8 with units '8bit'")


def _check_vh_darker(vv: np.ndarray, vh: np.ndarray) -> None:
    """Refuse VH brighter than VV (data.files' rule for unnamed GeoTIFF bands): `bands` names them wrongly."""
    medians = vh_above_vv(vv, vh)
    if medians is not None:
        raise DataError(f"image: the band named VH is brighter than the one named VV (median {medians[1]:.1f} "
                        f"against {medians[0]:.1f} dB), where VH is the darker band; are they swapped? `bands` names "
                        "the image's bands in its order")
