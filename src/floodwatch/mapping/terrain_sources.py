"""Public terrain and reference-water layers, read by AOI window straight from their tiled COGs over HTTP.

`read_cog_window` is the one reader: it opens a COG through GDAL's /vsicurl/, warps it onto the target
grid and reads only that window (`floodwatch.grid.warp_to_grid`, the warp catalog scenes use too), so GDAL
fetches just the internal tiles (HTTP range requests) the AOI needs. `heights_in_metres` reads a DEM's or
HAND's unit (feet converted) and refuses void values the file does not declare as no data.

Tiling schemes (checked against each provider's documentation):
- Copernicus GLO-30 DEM on AWS (`copernicus-dem-30m`): 1° tiles named by their south-west corner,
  `Copernicus_DSM_COG_10_N50_00_E010_00_DEM/<same>.tif`; ocean has no tile (read as missing).
- GLO-30 HAND (ASF, `glo-30-hand`, v1/2021): the same 1° tiles, `..._HAND.tif`.
- JRC Global Surface Water v1.4 (1984-2021) occurrence: 10° tiles named by their north-west corner,
  `occurrence_10E_50Nv1_4_2021.tif`; values 0-100 %, 255 no data.
- ESA WorldCover 2021 v200: 3° tiles named by their south-west corner,
  `ESA_WorldCover_10m_2021_v200_N51E003_Map.tif`; class 80 is permanent water bodies.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds

from ..errors import DataError
from ..grid import Grid, warp_to_grid  # noqa: F401 (Grid re-exported: terrain's grids are these)
from ..io import require_file
from .locations import is_remote_input


def cog_env(url: str) -> dict[str, str]:
    """GDAL settings for windowed reads of a raster at `url`: no folder listing around it (one request each,
    and a server's listing can stall), no probing for side-car files of other suffixes, retried ranges."""
    suffix = PurePosixPath(urlparse(url).path).suffix.lower() or "{noext}"  # GDAL's name for "no suffix"
    return dict(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MAX_RETRY="2", GDAL_HTTP_RETRY_DELAY="1",
                CPL_VSIL_CURL_ALLOWED_EXTENSIONS=",".join(sorted({".tif", ".tiff", suffix})))


def cog_path(url: str) -> str:
    return f"/vsicurl/{url}" if url.startswith(("http://", "https://")) else url


@contextlib.contextmanager
def open_cog(url: str) -> Iterator[Any]:
    """The raster at `url` (http(s), s3://, gs:// or a local path) opened under `cog_env`."""
    with rasterio.Env(**cog_env(url)), rasterio.open(cog_path(url)) as src:
        yield src


def read_cog_window(url: str, grid: Grid, *, resampling: Resampling = Resampling.bilinear,
                    nodata: float | None = None) -> np.ndarray | None:
    """Band 1 of the COG at `url` (http(s) or a local path), warped onto `grid`, as float32 with NaN where
    the source has no data. Only the blocks under the window are fetched. None when the file is absent
    (404: e.g. an ocean DEM tile)."""
    try:
        with open_cog(url) as src:
            return warp_to_grid(src, grid, resampling=resampling, src_nodata=nodata)
    except RasterioIOError as exc:
        if _missing(exc):
            return None
        raise DataError(f"{url}: cannot read ({_first_line(exc)})") from None


def _missing(exc: RasterioIOError) -> bool:
    text = str(exc)
    return "response code: 404" in text or "No such file" in text or "does not exist" in text


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def open_error(source: str | os.PathLike, what: str, exc: RasterioIOError) -> DataError:
    """The one-line error for a layer that did not open: missing (404), a URL that did not answer (GDAL's
    reason kept: no host, refused, no credentials), or a file that is not a raster."""
    if _missing(exc):
        return DataError(f"{source}: {what} not found")
    if is_remote_input(source):
        return DataError(f"{source}: {what} cannot be read ({_first_line(exc)})")
    return DataError(f"{source}: {what} is not a raster GeoTIFF")


#: metres per unit of a band's unit type (GDAL's) or 'units' tag; none given is metres
FOOT_M, US_SURVEY_FOOT_M = 0.3048, 1200 / 3937
#: no height on Earth (above or below sea level, the deepest trench included) is this far from 0 m; -9999,
#: a common no-data value, is within that range but not a height on land either
MAX_ABS_HEIGHT_M = 11000.0
VOID = -9999.0


def heights_in_metres(data: np.ndarray, source: str | os.PathLike, what: str) -> np.ndarray:
    """`data` read from `source` (a DEM or HAND file or URL), in metres; DataError for a unit other than
    metres or feet, or for heights no place has (void cells of a no-data value the file does not declare)."""
    scale = _metres_per_unit(source, what)
    with np.errstate(invalid="ignore"):
        odd = data[(np.abs(data) * scale > MAX_ABS_HEIGHT_M) | (data == VOID)]  # in the file's unit
    if odd.size:  # read as cliffs, voids would flag layover and shadow all around them
        v = float(odd[np.argmax(np.abs(odd))])
        raise DataError(f"{source}: {what} has values of {v:g} {'m' if scale == 1 else 'ft'} over the scene, "
                        "beyond any height on Earth: a no-data value the file does not declare? (set its nodata, "
                        "e.g. gdal_edit.py -a_nodata)")
    if scale != 1.0:
        data *= np.float32(scale)
    return data


def _metres_per_unit(source: str | os.PathLike, what: str) -> float:
    """From the band's unit type (or a 'units' tag): feet (US DEMs and HAND) are converted; metres or no unit
    pass; any other unit is refused, as the thresholds and depths are in metres."""
    with open_cog(str(source)) as ds:
        tags = {k.lower(): v for k, v in {**ds.tags(), **ds.tags(1)}.items()}
        unit = (ds.units[0] if ds.units else None) or tags.get("units") or tags.get("unit") or ""
    u = unit.strip().lower().replace("_", " ").replace("-", " ")
    if u in ("", "m") or u.startswith(("metre", "meter")):
        return 1.0
    if u in ("ft", "foot", "feet", "international foot"):
        return FOOT_M
    if u in ("us ft", "ftus", "us foot", "foot us", "us survey foot", "us survey feet"):
        return US_SURVEY_FOOT_M
    raise DataError(f"{source}: {what} is in '{unit}', not metres or feet")


def _ns(lat: int, width: int) -> str:
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):0{width}d}"


def _ew(lon: int, width: int) -> str:
    return f"{'E' if lon >= 0 else 'W'}{abs(lon):0{width}d}"


def _copernicus(kind: str) -> Callable[[int, int], str]:
    def name(lat: int, lon: int) -> str:
        return f"Copernicus_DSM_COG_10_{_ns(lat, 2)}_00_{_ew(lon, 3)}_00_{kind}"
    return name


def _dem_path(lat: int, lon: int) -> str:
    n = _copernicus("DEM")(lat, lon)
    return f"{n}/{n}.tif"


def _hand_path(lat: int, lon: int) -> str:
    return f"v1/2021/{_copernicus('HAND')(lat, lon)}.tif"


def _jrc_path(lat: int, lon: int) -> str:
    # JRC names a tile by its north-west corner; (lat, lon) here is the south-west one.
    top = lat + 10
    lon_s = f"{abs(lon)}{'E' if lon >= 0 else 'W'}"
    lat_s = f"{abs(top)}{'N' if top >= 0 else 'S'}"
    return f"occurrence_{lon_s}_{lat_s}v1_4_2021.tif"


def _worldcover_path(lat: int, lon: int) -> str:
    return f"ESA_WorldCover_10m_2021_v200_{_ns(lat, 2)}{_ew(lon, 3)}_Map.tif"


@dataclass(frozen=True)
class PublicLayer:
    """A global tiled COG dataset: `base_url/path(lat, lon)` for each tile's south-west corner."""

    name: str
    base_url: str
    tile_deg: int
    path: Callable[[int, int], str]
    resampling: Resampling
    #: what the layer holds: 'elevation' / 'hand' (metres) or 'water' (a boolean reference)
    kind: str
    #: raw tile values -> True where water (kind 'water' only)
    water: Callable[[np.ndarray], np.ndarray] | None = None
    nodata: float | None = None

    def tile_urls(self, lonlat_bounds: tuple[float, float, float, float]) -> list[str]:
        w, s, e, n = lonlat_bounds
        d = self.tile_deg
        lats = range(math.floor(s / d) * d, math.ceil(n / d) * d, d)
        lons = range(math.floor(w / d) * d, math.ceil(e / d) * d, d)
        return [f"{self.base_url.rstrip('/')}/{self.path(lat, lon)}" for lat in lats for lon in lons]


#: JRC occurrence at or above this (% of valid observations 1984-2021) counts as permanent water.
JRC_PERMANENT_PERCENT = 50
WORLDCOVER_WATER = 80

PUBLIC_LAYERS: dict[str, PublicLayer] = {
    "glo30-dem": PublicLayer("glo30-dem", "https://copernicus-dem-30m.s3.amazonaws.com", 1, _dem_path,
                             Resampling.bilinear, "elevation"),
    "glo30-hand": PublicLayer("glo30-hand", "https://glo-30-hand.s3.amazonaws.com", 1, _hand_path,
                              Resampling.bilinear, "hand"),
    "jrc-gsw": PublicLayer("jrc-gsw", "https://storage.googleapis.com/global-surface-water/downloads2021/occurrence",
                           10, _jrc_path, Resampling.nearest, "water",
                           water=lambda v: v >= JRC_PERMANENT_PERCENT, nodata=255),
    "worldcover": PublicLayer("worldcover", "https://esa-worldcover.s3.eu-central-1.amazonaws.com/v200/2021/map",
                              3, _worldcover_path, Resampling.nearest, "water",
                              water=lambda v: v == WORLDCOVER_WATER, nodata=0),
}


def public_layer(name: str, kind: str | None = None) -> PublicLayer | None:
    """The registered layer called `name` (None when `name` is not one, e.g. a file path)."""
    layer = PUBLIC_LAYERS.get(str(name))
    if layer is not None and kind is not None and layer.kind != kind:
        raise DataError(f"{name}: holds {layer.kind}, not {kind}")
    return layer


def resolve_layer(source: str | os.PathLike, kind: str | None, what: str) -> PublicLayer | str | Path:
    """What a layer argument (--dem, --hand, --exclude, --water-mask) names: a public layer of `kind`, a URL
    read in place, or a local file; DataError naming it when the file is missing or a folder."""
    layer = public_layer(str(source), kind=kind)
    if layer is not None:
        return layer
    if is_remote_input(source):
        return str(source)
    return require_file(source, what, error=DataError)


def fetch_layer(layer: PublicLayer, grid: Grid) -> np.ndarray:
    """The layer mosaicked onto `grid` from every tile the grid touches (float32, NaN = no data; water
    layers come back as 1.0/0.0). Missing tiles (ocean) stay NaN; a DEM has 0 m there."""
    lonlat = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    out = np.full((grid.height, grid.width), np.nan, np.float32)
    for url in layer.tile_urls(lonlat):
        try:
            part = read_cog_window(url, grid, resampling=layer.resampling, nodata=layer.nodata)
        except DataError as exc:  # the URL alone does not tell a user which of their arguments it came from
            raise DataError(f"{layer.name}: {exc}") from None
        if part is None:
            continue
        fill = np.isnan(out) & np.isfinite(part)
        out[fill] = part[fill]
    if layer.kind == "elevation":
        out = np.where(np.isnan(out), np.float32(0.0), out)  # the provider's rule for tile-less ocean
    if layer.water is not None:
        known = np.isfinite(out)
        out = np.where(known, layer.water(np.nan_to_num(out)).astype(np.float32), np.float32(0.0))
    return out
