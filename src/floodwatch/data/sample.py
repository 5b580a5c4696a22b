"""The one sample type every reader returns."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

#: Mask value for pixels that are not scored and not learned from (nodata, unlabelled).
IGNORE_INDEX = 255
#: Class indices used throughout floodwatch (the course's notflood/flood).
NOT_WATER, WATER = 0, 1


@dataclass(frozen=True)
class GeoRef:
    """Where a chip lies on Earth: a CRS (WKT or 'EPSG:n') and an affine transform (rasterio order)."""

    crs: str
    transform: tuple[float, float, float, float, float, float]

    @classmethod
    def from_rasterio(cls, dataset_or_crs: Any, transform: Any = None) -> "GeoRef":
        if transform is None:  # an open rasterio dataset
            crs, transform = dataset_or_crs.crs, dataset_or_crs.transform
        else:
            crs = dataset_or_crs
        return cls(crs=crs.to_string() if hasattr(crs, "to_string") else str(crs),
                   transform=tuple(float(v) for v in tuple(transform)[:6]))

    def affine(self):
        from affine import Affine

        return Affine(*self.transform)

    def rasterio_crs(self):
        from rasterio.crs import CRS

        return CRS.from_user_input(self.crs)


@dataclass
class Sample:
    """One chip.

    image:  (C, H, W) float32 in dB (sources in other units are harmonised by their reader), NaN allowed
            where `valid` is False.
    mask:   (H, W) int64 with NOT_WATER / WATER / IGNORE_INDEX, or None for unlabelled chips.
    valid:  (H, W) bool, True where the image has data.
    before: (C, H, W) float32 pre-event image for bi-temporal sources (OMBRIA), else None.
    """

    image: np.ndarray
    mask: np.ndarray | None
    valid: np.ndarray
    id: str
    region: str = ""
    georef: GeoRef | None = None
    bands: tuple[str, ...] = ("VV", "VH")
    before: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # one line, as ChipDataset's: the dataclass default prints every array in full (a notebook's ds[0])
        valid = float(np.mean(self.valid)) if np.size(self.valid) else 0.0
        counts = self.class_counts()
        scored = counts["water"] + counts["not_water"]
        water = ("unlabelled" if self.mask is None else
                 f"water={counts['water'] / scored:.1%}" if scored else "water=n/a")
        return (f"Sample(id={self.id!r}, region={self.region!r}, bands={tuple(self.bands)}, "
                f"shape={self.shape}, dtype={self.image.dtype}, valid={valid:.1%}, {water}"
                f"{', before' if self.before is not None else ''}{', georef' if self.georef else ''})")

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def class_counts(self) -> dict[str, int]:
        """Pixels per class among those scored (labelled and holding data: ETCI labels no-data pixels too);
        'ignore' counts the rest (an ignore label, or no data). All zero for an unlabelled chip."""
        if self.mask is None:
            return {"water": 0, "not_water": 0, "ignore": 0}
        w = int(((self.mask == WATER) & self.valid).sum())
        n = int(((self.mask == NOT_WATER) & self.valid).sum())
        return {"water": w, "not_water": n, "ignore": int(self.mask.size) - w - n}

    @property
    def label(self) -> str:
        """What the mask's WATER marks: "water" (all surface water), or what the reader says in extra["label"]
        (OMBRIA: "flood", water there before left out)."""
        return str(self.extra.get("label") or "water")

    @property
    def is_empty(self) -> bool:
        """True for an all-nodata chip, or a labelled chip without a single scorable pixel."""
        if not self.valid.any():
            return True
        return self.mask is not None and not (self.mask != IGNORE_INDEX).any()


def _names_band(name: str | None, band: str) -> bool:
    # a description names a band when one of its words is the band: "VV", "Sigma0_VV", "vv (dB)"
    return bool(name) and band.upper() in re.split(r"[^A-Z0-9]+", name.upper())


def is_unnamed(name: str | None) -> bool:
    """A band without a name: none, or a reader's placeholder (B1, B2)."""
    return not name or re.fullmatch(r"B\d+", name.upper()) is not None  # B1, B2: readers' placeholders


#: bands listed by name in band_order's error, at most
MAX_SHOWN = 8


def band_order(names: Sequence[str | None], wanted: Sequence[str], where: str) -> list[int]:
    """0-based index of each `wanted` band among bands called `names` (descriptions or Sample.bands): the band
    that names it; bands named by none are taken in stored order, for the wanted bands left, only when there
    are exactly as many bands as wanted. Anything else (more bands than wanted and some not named, a band
    named something else where one is missing: HH, angle) is a DataError naming `where`."""
    order: list[int | None] = [next((i for i, n in enumerate(names) if _names_band(n, b)), None) for b in wanted]
    if None in order:
        free = iter(i for i, n in enumerate(names) if is_unnamed(n) and i not in order)
        if len(names) == len(wanted):
            order = [next(free, None) if i is None else i for i in order]
    if None in order:
        missing = [b for b, i in zip(wanted, order) if i is None]
        shown = ", ".join("unnamed" if is_unnamed(n) else n for n in names[:MAX_SHOWN])
        if len(names) > MAX_SHOWN:  # hundreds of "bands": an image whose bands are its last axis, not its first
            shown += (f", ... {len(names) - MAX_SHOWN} more; is the band axis last? bands come first, "
                      "(bands, height, width)")
        raise DataError(f"{where}: data has {len(names)} band(s) ({shown}) but the model expects {len(wanted)} "
                        f"({', '.join(wanted)}); no band is named {'/'.join(missing)}")
    return order  # type: ignore[return-value]


def band_index(sample: Sample, band: str) -> int:
    """Index of `band` in the sample; the first band when the sample's bands are not named that way."""
    names = [b.upper() for b in sample.bands]
    if band.upper() in names:
        return names.index(band.upper())
    if sample.image.shape[0] == 0:
        raise DataError(f"{sample.id}: image has no bands")
    return 0


def require_band(sample: Sample, band: str, purpose: str = "") -> int:
    """Index of `band` in the sample, with no fall-back: a sample without it is a DataError (naming `purpose`)."""
    names = [b.upper() for b in sample.bands]
    if band.upper() not in names:
        raise DataError(f"{sample.id}: no {band} band{' for ' + purpose if purpose else ''} "
                        f"(has {', '.join(sample.bands) or 'none'})")
    return names.index(band.upper())
