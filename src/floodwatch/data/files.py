"""Reading one raster or picture file, turning every failure into a DataError that names the file."""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np

from ..errors import DataError
from ..units import bright_band, looks_db, looks_linear
from .sample import IGNORE_INDEX, NOT_WATER, WATER, GeoRef


TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png", ".jpg", ".jpeg")


def chip_files(folder: Path) -> list[Path]:
    """The chip files directly in `folder` (GeoTIFF, PNG, JPG; any case), sorted: what `infer` and a
    semi-supervised `chips` folder read from a plain folder."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES + PNG_SUFFIXES)


#: one band of a chip or scene per file: <stem>_vv.<ext> and <stem>_vh.<ext> (the tag and suffix in any case)
_BAND_FILE = re.compile(r"^(?P<stem>.+)_(?P<band>vv|vh)(?P<suffix>\.(?:tiff?|png|jpe?g))$", re.IGNORECASE)
_SAME_SUFFIX = {".tiff": ".tif", ".jpeg": ".jpg"}


def band_file(name: str) -> tuple[str, str, str] | None:
    """(stem, 'vv' or 'vh', suffix as written) of a file name `<stem>_vv.<ext>` / `<stem>_vh.<ext>` (GeoTIFF,
    PNG or JPG); None for any other name."""
    m = _BAND_FILE.match(name)
    return (m["stem"], m["band"].lower(), m["suffix"]) if m else None


def pair_band_files(files: Sequence[str | Path]) -> list[tuple[str | Path, str | Path | None]]:
    """(file, VH file or None) per chip or scene: single-band files named <stem>_vv.<ext> and <stem>_vh.<ext>
    side by side (STAC Overflow's chips, ETCI's tiles, Earth Engine exports: one file per band) become one,
    the VV file first; every other file stays one of its own, in the order given. .tif pairs with .tiff and
    .jpg with .jpeg, never a GeoTIFF with a picture. Files left unpaired pair across ETCI's band folders
    (tiles/vv/<stem>_vv.png with tiles/vh/<stem>_vh.png). URLs pair by their paths (a query, such as a
    signature that differs per file, is not part of the name). `map` and `infer` both pair with this."""
    def location(f) -> str:
        where = str(f)
        if "://" in where:
            return urlsplit(where)._replace(query="", fragment="").geturl()
        return os.path.abspath(where)  # a_vv.tif and ./a_vh.tif lie side by side

    def keys(f) -> tuple[tuple[str, str], tuple[str, str] | None] | None:
        """(key beside, key across band folders or None); None for a file that is not a band file."""
        parent, _, name = location(f).rpartition("/")
        named = band_file(name)  # paths are case-sensitive (local, S3, GCS); the band tag and suffix are not
        if named is None:
            return None
        stem, band, suffix = named
        suffix = _SAME_SUFFIX.get(suffix.lower(), suffix.lower())
        grand, _, folder = parent.rpartition("/")
        across = (f"{grand}/<band>/{stem}{suffix}", band) if folder.lower() == band else None
        return (f"{parent}/{stem}{suffix}", band), across

    found = [keys(f) for f in files]
    claimed: dict[tuple[str, str], str | Path] = {}
    for f, k in zip(files, found):
        if k is not None:
            k = k[0]
            if k in claimed and location(claimed[k]) == location(f):
                also = "" if str(claimed[k]) == str(f) else f" (also as {claimed[k]})"
                raise DataError(f"{f}: given twice{also}")
            if k in claimed:
                raise DataError(f"{f}: the same {k[1].upper()} band as {claimed[k]}; keep one of them")
            claimed[k] = f
    partner: dict[int, int] = {}  # index of a VV file -> index of its VH file

    def pair_by(which: int) -> None:
        vh = {k[which][0]: i for i, k in enumerate(found) if k and k[which] and k[which][1] == "vh"
              and i not in partner.values()}
        for i, k in enumerate(found):
            if k and k[which] and k[which][1] == "vv" and i not in partner and k[which][0] in vh:
                partner[i] = vh.pop(k[which][0])

    pair_by(0)  # side by side first; then what is left, across band folders
    pair_by(1)
    taken = set(partner.values())
    return [(f, files[partner[i]] if i in partner else None) for i, f in enumerate(files) if i not in taken]


def partner_file(path: str | Path) -> Path | None:
    """The other band's file of a local `<stem>_vv.<ext>` / `<stem>_vh.<ext>` file: beside it or, ETCI's layout
    (tiles/vv/, tiles/vh/), in ../vh/ (../vv/); None when there is none or the name is not a band file's."""
    path = Path(path)
    name = partner_name(path.name)
    if name is None:
        return None
    other = "vh" if band_file(path.name)[1] == "vv" else "vv"
    return next((c for c in (path.with_name(name), path.parent.parent / other / name) if c.is_file()), None)


def partner_name(name: str) -> str | None:
    """`x_VH.png` for `x_VV.png`, `x_vv.tif` for `x_vh.tif` (the tag's case kept); None for other names."""
    named = band_file(name)
    if named is None:
        return None
    stem, band, suffix = named
    other = "vh" if band == "vv" else "vv"
    return f"{stem}_{other.upper() if name[len(stem) + 1:][:2].isupper() else other}{suffix}"


def read_geotiff(path: Path, *, bands: int | None = None,
                 nodata_to_nan: bool = False) -> tuple[np.ndarray, GeoRef | None, tuple]:
    """(array (C,H,W), georef or None, band descriptions). `bands`: the band count required; `nodata_to_nan`
    puts NaN where a float band holds its nodata value."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if bands is not None and src.count != bands:
                    raise DataError(f"{path}: has {src.count} band(s), expected {bands}")
                data = src.read()
                if nodata_to_nan and np.issubdtype(data.dtype, np.floating):
                    for band, nodata in zip(data, src.nodatavals):
                        if nodata is not None and not np.isnan(nodata):
                            band[band == band.dtype.type(nodata)] = np.nan
                georef = GeoRef.from_rasterio(src) if src.crs is not None else None
                return data, georef, tuple(src.descriptions)
    except RasterioError as exc:  # unreadable, truncated or corrupt: GDAL's text is the useful part
        raise DataError(f"{path}: unreadable GeoTIFF ({gdal_reason(exc, 200)})") from None


def gdal_reason(exc: Exception, limit: int) -> str:
    """GDAL's first line of an error, without rasterio's pointer to a chained exception no one will see."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    return text.replace(" See previous exception for details.", "").strip()[:limit]


def read_backscatter(path: Path, *, bands: int | None = None) -> tuple[np.ndarray, GeoRef | None, tuple]:
    """A GeoTIFF of backscatter in dB, as read_geotiff, with NaN wherever a pixel holds no data (see
    `missing_db`); integer pixels (DN, int8 quick-looks) are refused by every reader alike, since no dB scale
    can be assumed for them."""
    data, georef, descriptions = read_geotiff(path, bands=bands, nodata_to_nan=True)
    require_float(data.dtype, path)
    data[missing_db(data)] = np.nan
    check_not_linear(data, np.isfinite(data), path, "convert it to dB, 10 * log10(power), first; mapping a "
                     "scene with units 'linear' converts it itself")
    bright = bright_band(data, np.isfinite(data))
    if bright is not None:  # read as dB they would be brighter than any land: no water at all
        raise DataError(f"{path}: band {bright[0] + 1}'s median is {bright[1]:.0f}, far above any backscatter in "
                        "dB; the file looks like 8-bit grey levels stored as floats (give the 8-bit pictures, which "
                        "the ETCI and folders readers map to dB, or convert them to dB first)")
    return data, georef, descriptions


def check_not_linear(x: np.ndarray, ok: np.ndarray, name: str | Path, remedy: str) -> None:
    """Refuse dB data (`ok`: its valid pixels) that looks like linear power (floodwatch.units, which says why).
    `remedy` says what the caller offers instead."""
    if looks_linear(x, ok):
        raise DataError(f"{name}: most values lie between 0 and 2, where backscatter in dB almost never is; the "
                        f"file looks like linear power ({remedy})")


def check_not_db(x: np.ndarray, ok: np.ndarray, name: str | Path, remedy: str) -> None:
    """Refuse linear power (`ok`: its valid pixels) that looks like dB (floodwatch.units). `remedy` says what
    the caller offers instead."""
    if looks_db(x, ok):
        raise DataError(f"{name}: most values are negative, which power in linear units cannot be; the file looks "
                        f"like dB ({remedy})")


#: at or below this many dB a pixel is a fill value, not a measurement: 1e-10 of the power, far under any
#: sensor's noise floor (about -30 to -40 dB), and where untagged fills sit (-9999, -32768, float32's lowest)
FILL_DB = -100.0


def missing_db(x: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """True where a dB pixel holds no data: NaN or infinite, the file's `nodata`, exactly 0.0 (the fill of dB
    products that tag none: STAC Overflow's chips, Earth Engine exports unmasked to 0), or FILL_DB and below
    (untagged -9999 fills would otherwise read as the darkest water). Every reader of dB rasters (data
    sources, `infer`, `client`, `map`, `change`) decides it here."""
    missing = ~np.isfinite(x) | (x == 0.0) | (x <= FILL_DB)
    if nodata is not None and not np.isnan(nodata):
        missing |= x == x.dtype.type(nodata)
    return missing


def large_regions(mask: np.ndarray, min_pixels: int, *, diagonal: bool = False) -> np.ndarray:
    """`mask` less its connected regions of fewer than `min_pixels` (4-connected; 8 with `diagonal`): the
    swath fills of 8-bit renderings (255 in areas) without the bright specks that saturate too, and change's
    new water without its specks (holes are left as they are, unlike a sieve's)."""
    if min_pixels <= 1 or not mask.any():  # every region is that large
        return mask.copy()
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool) if diagonal else None)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= min_pixels)[labels]


#: how much brighter (dB, in the median) the band taken as VH must be for check_vh_darker to refuse: over calm
#: water both bands near their noise floors may come close; swapped, VH is 5-10 dB above "VV"
VH_ABOVE_VV_DB = 1.0


def check_vh_darker(vv: np.ndarray, vh: np.ndarray, where: str | Path, vv_band: int, vh_band: int,
                    min_pixels: int = 1000) -> None:
    """Unnamed bands taken as VV, VH by their order: refused where the one taken as VH is brighter in the median
    (of pixels finite in both, dB) by VH_ABOVE_VV_DB. Cross-polarised backscatter lies several dB below VV over
    land and water alike, so that says the file is VH, VV, which maps silently wrong (far less water). Too few
    pixels: no verdict."""
    medians = vh_above_vv(vv, vh, min_pixels)
    if medians is not None:
        raise DataError(f"{where}: its bands are not named and band {vh_band} (taken as VH) is brighter than band "
                        f"{vv_band} (taken as VV): median {medians[1]:.1f} against {medians[0]:.1f} dB, where VH is "
                        "the darker band; write them VV, VH in that order or name them (band descriptions)")


def vh_above_vv(vv: np.ndarray, vh: np.ndarray, min_pixels: int = 1000) -> tuple[float, float] | None:
    """(VV median, VH median) where the band taken as VH is brighter by VH_ABOVE_VV_DB (dB, pixels finite in
    both): the bands are swapped. None where they are not, or for too few pixels (no verdict)."""
    medians = _medians(vv, vh, min_pixels)
    return medians if medians is not None and medians[1] > medians[0] + VH_ABOVE_VV_DB else None


def _medians(vv: np.ndarray, vh: np.ndarray, min_pixels: int) -> tuple[float, float] | None:
    """Medians of the pixels finite in both bands; None (no verdict) for fewer than `min_pixels` of them."""
    both = np.isfinite(vv) & np.isfinite(vh)
    if np.count_nonzero(both) < min_pixels:
        return None
    return float(np.median(vv[both])), float(np.median(vh[both]))


#: how much brighter (8-bit levels, in the median) the picture named VV may be than the one named VH before
#: check_band_files refuses the pair. ETCI renders VH brighter than VV (dB = 0.063 v - 28.4 for VH against
#: 0.041 v - 15.1 for VV, `harmonise.EIGHT_BIT_TO_DB`), so in dB a swapped pair still reads VH the darker and
#: only the levels tell: VH lies 32 to 67 levels above VV in the median on every North Alabama tile and -18 to 76
#: on Bangladesh's (mostly-water tiles come closest), so 24 passes them all and refuses 100 % and 95 % of them
#: swapped. Its limit: a chip whose VH lies some 13 dB or more under VV renders with VH the darker and reads
#: swapped (of the Sen1Floods11 chips put through the ETCI map, Sri-Lanka_534068, 15 dB apart, does).
VV_ABOVE_VH_LEVELS = 24


def check_band_files(vv: np.ndarray, vh: np.ndarray, vv_file: str | Path, vh_file: str | Path, *,
                     eight_bit: bool = False, min_pixels: int = 1000) -> None:
    """One file per band, paired by their `_vv`/`_vh` names: refused where their content says each holds the
    other's band, which maps silently wrong. dB (the default): check_vh_darker's rule, VH is the darker band.
    `eight_bit`: vv, vh are the pictures' grey levels (NaN: no data), and the rule is that of the 8-bit
    renderings floodwatch reads (ETCI's, which `data convert` writes too): VH is rendered the brighter, so the
    pair gets a warning (not a refusal: see VV_ABOVE_VH_LEVELS's limit) where the VV picture is the brighter by
    VV_ABOVE_VH_LEVELS. Too few pixels with data in both: no verdict."""
    medians = _medians(vv, vh, min_pixels)
    if medians is None:
        return
    vv_median, vh_median = medians
    if eight_bit and vv_median > vh_median + VV_ABOVE_VH_LEVELS:
        # a warning, not a refusal: a real chip whose VH lies far under VV renders so too (no threshold parts them)
        warnings.warn(f"{vv_file}, {vh_file}: look swapped: the VV picture is brighter than the VH one (median "
                      f"{vv_median:.0f} against {vh_median:.0f} of 255), where 8-bit renderings (ETCI's) show VH the "
                      "brighter; swap the files' _vv/_vh names if they hold each other's band", stacklevel=2)
    if not eight_bit and vh_median > vv_median + VH_ABOVE_VV_DB:
        raise DataError(f"{vv_file}, {vh_file}: look swapped: the VH file is brighter than the VV one (median "
                        f"{vh_median:.1f} against {vv_median:.1f} dB), where VH is the darker band; swap the "
                        "files' _vv/_vh names if they hold each other's band")


def require_float(dtype: np.dtype, path: Path) -> None:
    if not np.issubdtype(dtype, np.floating):
        raise DataError(f"{path}: pixel type {dtype}; expected float backscatter (dB or linear power)")


def check_same_grid(ref: GeoRef | None, ref_path: Path, other: GeoRef | None, other_path: Path) -> None:
    """A label (or second image) must lie on its image's grid: same CRS and transform, not only the size."""
    if ref is None and other is None:
        return
    if (ref is None) != (other is None):
        which = "has no georeference" if other is None else "is georeferenced"
        raise DataError(f"{other_path}: {which} but {Path(ref_path).name} "
                        f"{'is georeferenced' if other is None else 'has none'}; expected the same grid")
    if _crs_differs(ref.crs, other.crs):
        raise DataError(f"{other_path}: CRS {other.crs} does not match {Path(ref_path).name} ({ref.crs})")
    if not np.allclose(ref.transform, other.transform, rtol=0, atol=1e-6 * max(1.0, abs(ref.transform[0]))):
        raise DataError(f"{other_path}: transform (origin {other.transform[2]:.6g}, {other.transform[5]:.6g}; "
                        f"pixel {other.transform[0]:.6g}) does not match {Path(ref_path).name} "
                        f"(origin {ref.transform[2]:.6g}, {ref.transform[5]:.6g}; pixel {ref.transform[0]:.6g})")


def _crs_differs(a: str, b: str) -> bool:
    if a == b:
        return False
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(a) != CRS.from_user_input(b)
    except Exception:  # an unparsable CRS string: compare the text
        return True


def read_picture(path: Path) -> np.ndarray:
    """An 8-bit PNG/JPG as (H,W) for gray or (H,W,C) for colour; palette and 16-bit images are converted."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode in ("I;16", "I", "F"):
                raise DataError(f"{path}: {im.mode} pictures are not 8-bit; expected an 8-bit PNG/JPG")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or truncated picture ({exc})") from None
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: pixel type {arr.dtype}, expected 8-bit")
    if arr.ndim == 3 and arr.shape[2] == 4:  # alpha carries no backscatter
        arr = arr[..., :3]
    return arr


def gray(arr: np.ndarray, path: Path) -> np.ndarray:
    """One channel of a picture that should be gray; an RGB copy of gray (ETCI's PNGs) is fine."""
    if arr.ndim == 2:
        return arr
    first = arr[..., 0]
    if not all(np.array_equal(first, arr[..., c]) for c in range(1, arr.shape[2])):
        raise DataError(f"{path}: colour picture where a single-band image was expected")
    return first


def check_same_size(shape_a: tuple, path_a: Path, shape_b: tuple, path_b: Path) -> None:
    if tuple(shape_a[-2:]) != tuple(shape_b[-2:]):
        raise DataError(f"{path_b}: size {shape_b[-2]}x{shape_b[-1]} does not match "
                        f"{Path(path_a).name} ({shape_a[-2]}x{shape_a[-1]})")


def read_binary_label(path: Path, image_path: Path, shape: tuple, georef: GeoRef | None, valid: np.ndarray,
                      ignore: int) -> np.ndarray:
    """A one-band GeoTIFF label on its image's grid (1 water, 0 not water, `ignore` unlabelled) as a mask of
    WATER / NOT_WATER / IGNORE_INDEX, ignored too where the image holds no data; other values are an error."""
    label, label_georef, _ = read_geotiff(path, bands=1)
    check_same_size(shape, image_path, label.shape, path)
    check_same_grid(georef, image_path, label_georef, path)
    label = label[0]
    bad = ~np.isin(label, (0, 1, ignore))
    if bad.any():
        raise DataError(f"{path}: label value {label[bad][0]} is not one of 1, 0, {ignore}")
    mask = np.full(label.shape, IGNORE_INDEX, np.int64)
    mask[label == 0] = NOT_WATER
    mask[label == 1] = WATER
    mask[~valid] = IGNORE_INDEX
    return mask
