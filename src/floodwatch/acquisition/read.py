"""Reading only the AOI's window of Sentinel-1 COGs over HTTP, onto one grid, in dB.

Each asset is opened through GDAL's /vsicurl/ (HTTP range requests) and warped by a WarpedVRT onto the
AOI's grid, so GDAL fetches only the tiles under that grid. Items of one date are mosaicked first-valid-wins
in acquisition order.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any, Callable

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from ..errors import AccessError, AcquisitionError, RateLimitError, UnitsError
from ..grid import Grid, warp_to_grid  # noqa: F401 (Grid re-exported: fetch builds these)
from ..units import looks_db, looks_linear
from .sources import GRD_ADVICE

#: GDAL settings for COGs over HTTP: no directory listing per file, merge neighbouring range requests,
#: retry 429/5xx answers with back-off; a server that stops sending for a minute is an error (GDAL's default
#: is to wait for ever), without a cap on a slow but moving download.
GDAL_HTTP_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
                 "GDAL_HTTP_MULTIPLEX": "YES", "GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "1",
                 "GDAL_HTTP_CONNECTTIMEOUT": "30", "GDAL_HTTP_LOW_SPEED_TIME": "60",
                 "GDAL_HTTP_LOW_SPEED_LIMIT": "1", "VSI_CACHE": "TRUE"}
BANDS = ("VV", "VH")
INTEGER_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")


def to_crs(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    """An EPSG:4326 geometry in `crs` (edges densified first, so they follow the projection)."""
    dst = CRS.from_user_input(crs)
    geom = shapely.segmentize(geom, 1e-3)
    if dst.equals(CRS.from_epsg(4326)):
        return geom
    tr = Transformer.from_crs(4326, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def grid_for(aoi: BaseGeometry, crs: Any, ref_transform: Any, pad_px: int = 0) -> Grid:
    """The AOI's bounds in `crs` on the pixel lattice of `ref_transform` (north-up), padded by pad_px."""
    from affine import Affine

    a, e, c, f = ref_transform.a, ref_transform.e, ref_transform.c, ref_transform.f
    minx, miny, maxx, maxy = to_crs(aoi, crs).bounds
    col0 = math.floor((minx - c) / a + 1e-9) - pad_px
    col1 = math.ceil((maxx - c) / a - 1e-9) + pad_px
    row0 = math.floor((maxy - f) / e + 1e-9) - pad_px
    row1 = math.ceil((miny - f) / e - 1e-9) + pad_px
    return Grid(crs, Affine(a, 0.0, c + col0 * a, 0.0, e, f + row0 * e), height=row1 - row0, width=col1 - col0)


def band_assets(item: Any) -> list[tuple[str, int, Any]]:
    """[(asset key, band index, pystac Asset)] for VV and VH: assets named vv/vh (any case, '-rtc' suffix
    allowed), or one data asset holding both bands."""
    by_key = {k.lower().removesuffix("-rtc"): (k, a) for k, a in item.assets.items()}
    if all(b.lower() in by_key for b in BANDS):
        return [(by_key[b.lower()][0], 1, by_key[b.lower()][1]) for b in BANDS]
    pols = [p.upper() for p in item.properties.get("sar:polarizations") or []]
    data = [(k, a) for k, a in item.assets.items()
            if "data" in (a.roles or []) and "tiff" in (a.media_type or "")]
    # one GeoTIFF with both bands, unless the item says it lacks one or the asset is named for one (an
    # HH-only GRD has a single 'hh' asset)
    if len(data) == 1 and (set(BANDS) <= set(pols) or not pols) \
            and data[0][0].lower().removesuffix("-rtc") not in ("hh", "hv", "vv", "vh"):
        return [(data[0][0], i + 1, data[0][1]) for i in range(len(BANDS))]
    # the item may list both polarisations and still lack an asset: then the assets are what to name
    has = sorted(item.assets) if not pols or set(BANDS) <= set(pols) else pols
    raise AcquisitionError(f"STAC item '{item.id}': no VV and VH assets (has {', '.join(has) or 'none'})")


def asset_href(item: Any, key: str, asset: Any) -> str:
    """The asset's absolute href. A relative one resolves against the item's self link; an API item without one
    (pystac then answers None) cannot be read."""
    href = asset.get_absolute_href()
    if not href:
        raise AcquisitionError(f"STAC item '{item.id}': asset '{key}' has the relative href '{asset.href}' and the "
                               "item no self link to resolve it against; the catalog must give absolute hrefs")
    return href


def has_vv_vh(item: Any) -> bool:
    try:
        band_assets(item)
        return True
    except AcquisitionError:
        return False


def asset_data_type(asset: Any) -> str | None:
    """The asset's pixel type as its STAC metadata states it (raster:bands or the CDSE 'data_type' field)."""
    bands = asset.extra_fields.get("raster:bands") or []
    return (bands[0].get("data_type") if bands else None) or asset.extra_fields.get("data_type")


def check_header(ds: Any, item_id: str, key: str, units: str = "auto") -> None:
    """What an opened asset's header says before a pixel is read. Integer pixels are GRD digital numbers (with
    `units` auto: the metadata may not say, as Planetary Computer's sentinel-1-grd does not), and ground control
    points without a CRS are radar geometry: neither is backscatter on a map."""
    digital = units == "auto" and ds.dtypes[0] in INTEGER_TYPES
    radar = ds.crs is None and bool(ds.gcps[0])
    geometry = "radar geometry (ground control points, no map projection)"
    what = {(True, False): f"{ds.dtypes[0]} digital numbers: a GRD that is not calibrated",
            (False, True): f"{geometry}: a GRD that is not terrain-corrected",
            (True, True): f"{ds.dtypes[0]} digital numbers in {geometry}: a GRD that is neither calibrated nor "
                          "terrain-corrected"}.get((digital, radar))
    if what:
        raise UnitsError(f"STAC item '{item_id}': asset '{key}' holds {what}; {GRD_ADVICE}")
    if ds.crs is None:
        raise AcquisitionError(f"STAC item '{item_id}': asset '{key}' has no CRS")


class HttpLog(logging.Handler):
    """GDAL's HTTP complaints (rasterio logs them as warnings; the exception then says only "Read failed"),
    kept while reading so the error can say 403 or 429."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> "HttpLog":
        logging.getLogger("rasterio").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("rasterio").removeHandler(self)


def _gdal_error(exc: Exception, item_id: str, href: str, access: str, log: HttpLog | None = None) -> AcquisitionError:
    # the asset key names the file in messages: a signed href would put its token on the screen
    text = " ".join(str(exc).split())
    codes = set(re.findall(r"(?:response_code=|HTTP error code: |HTTP response code: )(\d{3})",
                           " ".join([text, *(log.messages if log else [])])))
    if codes & {"401", "403", "409"}:
        return AccessError(f"STAC item '{item_id}': access to {href} denied; it needs {access}")
    if "429" in codes:
        return RateLimitError(f"STAC item '{item_id}': {href} rate limited (HTTP 429) after GDAL's retries; "
                              "wait a few minutes and run again")
    text = re.sub(r"https?://\S+", "<url>", text)
    return AcquisitionError(f"STAC item '{item_id}': cannot read {href} ({text[:200]})")


def read_item(item: Any, grid: Grid, sign: Callable[[str], str], *, access: str = "an account or token",
              units: str = "auto") -> np.ndarray:
    """VV and VH of one item on `grid` as float32 (2, H, W) in the asset's units; NaN where no data. `units`:
    what the caller takes the pixels to be ('auto' refuses integer ones, see check_header)."""
    import rasterio

    layers = []
    with rasterio.Env(**GDAL_HTTP_ENV), HttpLog() as log:
        for key, band, asset in band_assets(item):
            href = asset_href(item, key, asset)
            try:
                with rasterio.open(sign(href)) as src:
                    check_header(src, item.id, key, units)
                    nodata = src.nodata
                    if nodata is None:
                        bands = asset.extra_fields.get("raster:bands") or [{}]
                        nodata = bands[0].get("nodata")
                    # nearest: values stay measured backscatter (and exact on a shared lattice)
                    data = warp_to_grid(src, grid, band, src_nodata=nodata)
            except rasterio.errors.RasterioIOError as exc:
                raise _gdal_error(exc, item.id, key, access, log) from None
            if nodata is not None and not np.isnan(nodata):
                data[data == np.float32(nodata)] = np.nan
            layers.append(data)
    return np.stack(layers)


def fill_gaps(out: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Mosaic step, in place: `later` fills the pixels of `out` that lack data (first valid pixel wins; a
    pixel is valid when every band is finite)."""
    fill = ~np.isfinite(out).all(axis=0) & np.isfinite(later).all(axis=0)
    out[:, fill] = later[:, fill]
    return out


def detect_units(data: np.ndarray) -> str:
    """'db' when most valid values are negative, else 'linear'. Backscatter in dB is almost all below 0; power is
    not, though noise removal leaves some of it a little below 0 (a calm lake's VH), so one negative value
    does not make a scene dB (mapping.scene's checks of the units given use the same majorities)."""
    valid = data[np.isfinite(data) & (data != 0)]  # 0 is fill in either unit (an untagged nodata), not a vote
    return "db" if valid.size and np.count_nonzero(valid < 0) > 0.5 * valid.size else "linear"


def check_units(data: np.ndarray, key: str, units: str) -> None:
    """Units given against what the pixels are (a wrong `units`) would write a scene that `map` refuses, or
    maps empty (dB read as power: every negative value no data), after the download: a UnitsError here, by
    the rule `map` applies (floodwatch.units)."""
    looks_wrong, looks = (looks_linear, "linear power") if units == "db" else (looks_db, "dB")
    # 0 is fill in either unit (an untagged nodata), not a vote, as in detect_units
    if looks_wrong(data, np.isfinite(data) & (data != 0)):
        raise UnitsError(f"units: {'dB' if units == 'db' else 'linear'} was given, but the pixels of {key} look "
                         f"like {looks}; give `units` {'linear' if units == 'db' else 'db'} or auto")


def to_db(data: np.ndarray, units: str) -> np.ndarray:
    """Backscatter in dB; linear power <= 0 has no dB value and becomes nodata (NaN)."""
    if units == "db":
        return data.astype(np.float32)
    out = np.full(data.shape, np.nan, np.float32)
    ok = np.isfinite(data) & (data > 0)
    out[ok] = 10.0 * np.log10(data[ok])
    return out


def aoi_coverage(data: np.ndarray, aoi: BaseGeometry, grid: Grid) -> float:
    """Share of the AOI's pixels that hold data in every band."""
    from rasterio import features

    inside = features.geometry_mask([to_crs(aoi, grid.crs)], out_shape=(grid.height, grid.width),
                                    transform=grid.transform, invert=True, all_touched=True)
    n = int(inside.sum())
    return float((np.isfinite(data).all(axis=0) & inside).sum() / n) if n else 0.0
