"""Terrain-aware flood maps: why a dark pixel is not flood (exclusion flags), and how deep the flood is.

Applied after blending, before vectorising: `TerrainLayers` builds one uint8 flag per scene pixel from
HAND, slope, radar shadow/layover (DEM + look geometry) and a user mask; the writer keeps water under a
flag apart from new flood; `FloodDepth` turns the finished flood mask and the DEM into depths.
The method, the flag bits and the look-geometry approximation are documented in docs/terrain.md.

Terrain works on whole-scene arrays (uint8 flags; float32 DEM with `depth`), i.e. AOI-sized scenes;
slope, shadow and HAND are computed on a grid at the DEM's resolution (not the scene's), with a margin
so that a hill just outside the scene still casts its shadow into it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import CRS, Geod, Transformer
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject
from scipy import ndimage

from ..errors import DataError, InvalidArgumentError, data_errors_of
from .locations import check_location, is_remote_input
from .masks import grid_of, open_mask
from .terrain_sources import (Grid, PublicLayer, fetch_layer, heights_in_metres, open_cog, open_error,
                              read_cog_window, resolve_layer)

#: exclusion bits (the layer's value is their sum; 0 = not excluded, 255 = outside the imaged area)
HAND_ABOVE, STEEP, SHADOW, LAYOVER, USER_MASK = 1, 2, 4, 8, 16
FLAG_NAMES = {HAND_ABOVE: "hand", STEEP: "slope", SHADOW: "shadow", LAYOVER: "layover", USER_MASK: "user_mask"}
EXCLUSION_NODATA = 255
EXCLUSION_DESCRIPTION = ("exclusion bits: 1 HAND above hand_max, 2 slope above slope_max, 4 radar shadow, "
                         "8 layover, 16 user mask; 0 none, 255 no data")

#: Sentinel-1 IW: incidence across the ~250 km swath, and the orbit's inclination (for the heading)
S1_IW_INCIDENCE = (30.0, 46.0)
S1_IW_SWATH_M = 250e3
S1_INCLINATION_DEG = 98.18
ORBITS = ("ascending", "descending")
GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Terrain:
    """Terrain options for `map_scene` (and `run`). A source is a file path, a raster URL (https, s3, gs) or a
    public layer name ('glo30-dem', 'glo30-hand'; see terrain_sources.PUBLIC_LAYERS).

    Args:
        hand: HAND raster (metres, or feet by its band's unit); pixels above `hand_max` are excluded.
            Computed from `dem` when None.
        hand_max: HAND threshold in metres.
        dem: elevation raster, for slope, radar shadow/layover, HAND (if not given) and depth.
        slope_max: terrain steeper than this (degrees) is excluded.
        exclude: raster (nonzero) or vector file of areas to exclude.
        depth: write flood depth (needs `dem`).
        depth_percentile: percentile of the DEM along a flood polygon's edge taken as its water level.
        hand_from_dem: compute HAND from `dem` (pysheds) when `hand` is None.
        channel_km2: upstream area (km²) at which a channel starts, for HAND from the DEM.
        incidence_deg, heading_deg, orbit: look geometry; None reads it from the scene's metadata, then
            falls back to the Sentinel-1 IW approximation (docs/terrain.md).
    """

    hand: str | Path | None = None
    hand_max: float = 15.0
    dem: str | Path | None = None
    slope_max: float = 15.0
    exclude: str | Path | None = None
    depth: bool = False
    depth_percentile: float = 95.0
    hand_from_dem: bool = True
    channel_km2: float = 1.0
    incidence_deg: float | None = None
    heading_deg: float | None = None
    orbit: str | None = None

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.hand, self.dem, self.exclude))

    def validate(self) -> None:
        """Refuses a caller's bad option (InvalidArgumentError naming it); the layers are read later."""
        for option in ("hand", "dem", "exclude"):
            if getattr(self, option) is not None:
                check_location(getattr(self, option), option)
        if not self.hand_max > 0:
            raise InvalidArgumentError(f"hand_max: {self.hand_max} must be above 0 m")
        if not 0 < self.slope_max <= 90:
            raise InvalidArgumentError(f"slope_max: {self.slope_max} must be in (0, 90] degrees")
        if not 0 < self.depth_percentile <= 100:
            raise InvalidArgumentError(f"depth_percentile: {self.depth_percentile} must be in (0, 100]")
        if self.depth and self.dem is None:
            raise InvalidArgumentError("depth: needs a DEM (dem)")
        if self.orbit is not None and self.orbit not in ORBITS:
            raise InvalidArgumentError(f"orbit: '{self.orbit}' is not one of {', '.join(ORBITS)}")
        if self.incidence_deg is not None and not 0 < self.incidence_deg < 90:
            raise InvalidArgumentError(f"incidence_deg: {self.incidence_deg} must be in (0, 90)")
        if not self.channel_km2 > 0:
            raise InvalidArgumentError(f"channel_km2: {self.channel_km2} must be above 0")


# -- look geometry -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LookGeometry:
    #: incidence at the near and far edge of the scene (equal: constant)
    incidence_deg: tuple[float, float]
    #: platform headings (degrees clockwise from north); two when the orbit direction is unknown
    headings_deg: tuple[float, ...]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"incidence_deg": list(self.incidence_deg), "headings_deg": list(self.headings_deg),
                "look": "right", "source": self.source}


_INCIDENCE = ("incidence_angle", "view:incidence_angle", "incidence", "incidence_angle_deg")
_INCIDENCE_NEAR = ("incidence_near", "incidence_angle_near")
_INCIDENCE_FAR = ("incidence_far", "incidence_angle_far")
_HEADING = ("platform_heading", "heading", "heading_deg")
_ORBIT = ("orbit_direction", "sat:orbit_state", "orbit_state", "pass", "pass_direction")


def scene_metadata(scene: str | Path) -> dict[str, Any]:
    """GeoTIFF tags of the scene, overlaid by a sidecar `<scene>.json` (flat, or a STAC Item whose
    `properties` are used), with lower-case keys. A remote scene (URL) has its tags only."""
    meta: dict[str, Any] = {}
    try:
        with rasterio.open(scene) as ds:
            meta.update({k.lower(): v for k, v in ds.tags().items()})
    except RasterioIOError:
        pass
    if is_remote_input(scene):
        return meta
    scene = Path(scene)
    for side in (scene.with_suffix(".json"), Path(str(scene) + ".json")):
        if side.is_file():
            try:
                doc = json.loads(side.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"{side}: scene sidecar is not valid JSON ({exc})") from None
            if isinstance(doc, dict):
                doc = doc.get("properties", doc) if doc.get("type") == "Feature" else doc
                meta.update({str(k).lower(): v for k, v in doc.items()})
            break
    return meta


def _number(meta: dict, keys: tuple[str, ...], where: str) -> float | None:
    for k in keys:
        if k in meta and meta[k] not in (None, ""):
            try:
                return float(meta[k])
            except (TypeError, ValueError):
                raise DataError(f"{where}: metadata '{k}' = {meta[k]!r} is not a number") from None
    return None


def ascending_heading(lat_deg: float) -> float:
    """Ground-track heading of a sun-synchronous (98.18°) ascending pass at `lat_deg`, ignoring Earth's
    rotation (a few degrees): cos(inclination) = cos(lat) sin(heading)."""
    s = math.cos(math.radians(S1_INCLINATION_DEG)) / max(math.cos(math.radians(lat_deg)), 1e-6)
    return math.degrees(math.asin(max(-1.0, min(1.0, s))))


def look_geometry(terrain: Terrain, scene: str | Path, lat_deg: float, range_extent_m: float) -> LookGeometry:
    """Options first, then the scene's metadata, then the Sentinel-1 IW approximation."""
    meta = scene_metadata(scene)
    sources = []
    inc = terrain.incidence_deg
    if inc is not None:
        incidence, sources = (inc, inc), ["incidence: option"]
    else:
        one = _number(meta, _INCIDENCE, str(scene))
        near, far = _number(meta, _INCIDENCE_NEAR, str(scene)), _number(meta, _INCIDENCE_FAR, str(scene))
        if near is not None and far is not None:
            incidence, sources = (near, far), ["incidence: metadata (near/far)"]
        elif one is not None:
            incidence, sources = (one, one), ["incidence: metadata"]
        elif range_extent_m >= 0.8 * S1_IW_SWATH_M:
            incidence, sources = S1_IW_INCIDENCE, ["incidence: S1 IW 30-46 deg across the swath (assumed)"]
        else:
            mid = sum(S1_IW_INCIDENCE) / 2
            incidence, sources = (mid, mid), [f"incidence: S1 IW mid-swath {mid:g} deg (assumed)"]
    heading = terrain.heading_deg if terrain.heading_deg is not None else _number(meta, _HEADING, str(scene))
    if heading is not None:
        headings = (heading,)
        sources.append("heading: " + ("option" if terrain.heading_deg is not None else "metadata"))
    else:
        orbit = terrain.orbit or next((str(meta[k]).lower() for k in _ORBIT if k in meta), None)
        asc = ascending_heading(lat_deg)
        if orbit in ORBITS:
            headings = (asc,) if orbit == "ascending" else (180.0 - asc,)
            sources.append(f"heading: {orbit} pass at {lat_deg:.1f} deg latitude (approximated)")
        elif orbit is not None:
            raise DataError(f"{scene}: orbit direction '{orbit}' is neither ascending nor descending")
        else:
            headings = (asc, 180.0 - asc)
            sources.append("heading: orbit unknown, both passes flagged (conservative)")
    return LookGeometry((float(incidence[0]), float(incidence[1])), tuple(float(h) for h in headings),
                        "; ".join(sources))


# -- geometry on the terrain grid --------------------------------------------------------------------
def pixel_size_m(crs, transform, height: int, width: int) -> tuple[float, float]:
    """(x, y) ground size of a pixel at the grid's centre, in metres, for any CRS."""
    to_ll = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
    cx, cy = width / 2, height / 2
    pts = [transform @ (cx, cy), transform @ (cx + 1, cy), transform @ (cx, cy + 1)]
    lon, lat = to_ll.transform([p[0] for p in pts], [p[1] for p in pts])
    sx = GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2]
    sy = GEOD.inv(lon[0], lat[0], lon[2], lat[2])[2]
    return float(sx), float(sy)


def slope_deg(dem: np.ndarray, sx: float, sy: float) -> np.ndarray:
    dz_dy, dz_dx = np.gradient(dem, sy, sx)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))


def _prev_max(a: np.ndarray) -> np.ndarray:
    """Running maximum along rows of everything strictly before each column (NaN ignored)."""
    out = np.full_like(a, np.nan)
    out[:, 1:] = np.fmax.accumulate(a, axis=1)[:, :-1]
    return out


def _next_min(a: np.ndarray) -> np.ndarray:
    out = np.full_like(a, np.nan)
    out[:, :-1] = np.fmin.accumulate(a[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return out


def shadow_layover(dem: np.ndarray, sx: float, sy: float, look_az_deg: float,
                   incidence_deg: tuple[float, float], tol_m: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(shadow, layover) boolean grids for a far-away sensor looking along azimuth `look_az_deg`.

    The DEM is resampled onto a frame whose columns run along ground range (away from the sensor), then
    per row: a pixel is in shadow when terrain nearer the sensor rises above its line of sight,
    max_{x'<x}(h' + x' cot θ) > h + x cot θ; in layover when its slant range x sin θ - h cos θ is not
    monotonic (an earlier pixel is as far, or a later one as near)."""
    a = math.radians(look_az_deg)
    sin_a, cos_a = math.sin(a), math.cos(a)
    s = min(sx, sy)
    h, w = dem.shape
    rows, cols = np.array([0, 0, h, h], float), np.array([0, w, 0, w], float)
    e, n = cols * sx, -rows * sy
    u, v = e * sin_a + n * cos_a, e * cos_a - n * sin_a  # u: along the look, v: along track
    u0, v0 = u.min(), v.min()
    shape = (int(math.ceil((v.max() - v0) / s)) + 1, int(math.ceil((u.max() - u0) / s)) + 1)
    matrix = np.array([[s * sin_a / sy, -s * cos_a / sy], [s * cos_a / sx, s * sin_a / sx]])
    offset = np.array([(-u0 * cos_a + v0 * sin_a) / sy, (u0 * sin_a + v0 * cos_a) / sx])
    rot = ndimage.affine_transform(dem.astype(np.float64), matrix, offset, output_shape=shape, order=1,
                                   cval=np.nan, prefilter=False)
    x = np.arange(shape[1], dtype=np.float64) * s
    shadow = np.zeros(shape, bool)
    layover = np.zeros(shape, bool)
    cols_ok = np.flatnonzero(np.isfinite(rot).any(axis=0))
    j0, j1 = (int(cols_ok[0]), int(cols_ok[-1]) + 1) if len(cols_ok) else (0, shape[1])
    near, far = incidence_deg
    n_bands = max(1, int(math.ceil(abs(far - near))))  # about one band per degree of incidence
    edges = np.linspace(j0, j1, n_bands + 1).round().astype(int)
    with np.errstate(invalid="ignore"):
        for b in range(n_bands):
            lo, hi = edges[b], edges[b + 1]
            if hi <= lo:
                continue
            theta = math.radians(near + (far - near) * ((b + 0.5) / n_bands))
            g = rot + x / math.tan(theta)
            shadow[:, lo:hi] = (_prev_max(g) > g + tol_m)[:, lo:hi]
            r = x * math.sin(theta) - rot * math.cos(theta)
            layover[:, lo:hi] = ((_prev_max(r) > r + tol_m) | (_next_min(r) < r - tol_m))[:, lo:hi]
    inv = np.linalg.inv(matrix)
    back = dict(matrix=inv, offset=-inv @ offset, output_shape=(h, w), order=0, cval=0, prefilter=False)
    return (ndimage.affine_transform(shadow.astype(np.uint8), **back).astype(bool),
            ndimage.affine_transform(layover.astype(np.uint8), **back).astype(bool))


def hand_from_dem(dem: np.ndarray, grid: Grid, channel_cells: float) -> np.ndarray:
    """Height above nearest drainage with pysheds: fill pits and depressions, resolve flats, D8 flow
    directions and accumulation; channels start where `channel_cells` cells drain."""
    try:
        from pysheds.sview import Raster, ViewFinder
        from pysheds.grid import Grid as ShedGrid
        import pyproj
    except ImportError:
        raise DataError("hand: computing HAND from the DEM needs pysheds: pip install 'floodwatch[terrain]' "
                        "(or give a HAND raster)") from None
    filled = np.where(np.isfinite(dem), dem, np.nan).astype(np.float64)
    view = ViewFinder(affine=grid.transform, shape=dem.shape, nodata=np.nan,
                      crs=pyproj.Proj(CRS.from_user_input(grid.crs).to_string()))
    raster = Raster(filled, viewfinder=view)
    g = ShedGrid.from_raster(raster)
    conditioned = g.resolve_flats(g.fill_depressions(g.fill_pits(raster)))
    fdir = g.flowdir(conditioned)
    acc = g.accumulation(fdir)
    hand = g.compute_hand(fdir, raster, acc > channel_cells)
    return np.asarray(hand, np.float32)


# -- the layers on the scene's grid --------------------------------------------------------------------
def _read_on(source, grid: Grid, kind: str, what: str, margin: int = 0) -> np.ndarray:
    """`source` on `grid`, in metres; `margin` cells on each side of `grid` lie outside the scene."""
    layer = resolve_layer(source, kind, what)
    if isinstance(layer, PublicLayer):
        return fetch_layer(layer, grid)
    data = read_cog_window(str(layer), grid, resampling=Resampling.bilinear)  # a URL too, by COG windows
    if data is None:  # read_cog_window's 404 (a local file was checked by resolve_layer)
        raise DataError(f"{layer}: {what} not found" if isinstance(layer, str) else
                        f"{layer}: {what} is not a raster GeoTIFF")
    if not np.isfinite(_inner(data, margin)).any():  # else every pixel would pass the HAND and slope tests
        raise DataError(f"{layer}: {what} has no data over the scene (its extent does not reach it)")
    return heights_in_metres(data, layer, what)


def _inner(data: np.ndarray, margin: int) -> np.ndarray:
    return data[margin:data.shape[0] - margin, margin:data.shape[1] - margin]


def _source_resolution_m(source, what: str) -> float:
    if isinstance(resolve_layer(source, None, what), PublicLayer):
        return 30.0  # GLO-30: one arc-second
    try:
        with open_cog(str(source)) as ds:
            if ds.crs is None:
                raise DataError(f"{source}: {what} has no coordinate reference system")
            sx, sy = pixel_size_m(ds.crs, ds.transform, ds.height, ds.width)
            return min(sx, sy)
    except RasterioIOError as exc:
        raise open_error(source, what, exc) from None


def _terrain_grid(ref, scene_px_m: float, dem_res_m: float, margin_m: float) -> tuple[Grid, int]:
    """(the scene's grid coarsened to about the DEM's resolution and widened by `margin_m` on every side, the
    width of that margin in cells)."""
    k = max(1, int(round(dem_res_m / scene_px_m)))
    m = int(math.ceil(margin_m / (scene_px_m * k)))
    transform = ref.transform @ rasterio.Affine.scale(k) @ rasterio.Affine.translation(-m, -m)
    return Grid(ref.crs, transform, int(math.ceil(ref.height / k)) + 2 * m,
                int(math.ceil(ref.width / k)) + 2 * m), m


def _to_scene(data: np.ndarray, src: Grid, dst: Grid, resampling: Resampling) -> np.ndarray:
    out = np.zeros((dst.height, dst.width), data.dtype)
    reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=dst.transform,
              dst_crs=dst.crs, resampling=resampling, src_nodata=None, dst_nodata=None)
    return out


class TerrainLayers:
    """Exclusion flags (uint8, scene grid) and, for depth, the DEM on the scene grid."""

    def __init__(self, terrain: Terrain, scene: str | Path, ref, margin_m: float = 1000.0):
        terrain.validate()
        self.terrain = terrain
        scene_grid = grid_of(ref)
        self.flags = np.zeros((ref.height, ref.width), np.uint8)
        self.info: dict[str, Any] = {"hand": _name(terrain.hand), "hand_max_m": terrain.hand_max,
                                     "dem": _name(terrain.dem), "slope_max_deg": terrain.slope_max,
                                     "exclude": _name(terrain.exclude), "look_geometry": None,
                                     "hand_source": None}
        self.dem: np.ndarray | None = None
        if terrain.dem is not None or terrain.hand is not None:
            self._terrain_flags(terrain, scene, ref, scene_grid, margin_m)
        if terrain.exclude is not None:
            # a region's vector file may hold no polygon here; a raster of another place would exclude nothing
            with data_errors_of("exclude"):
                mask = open_mask(terrain.exclude, ref, what="exclusion mask", must_reach=True)
            try:
                self.flags[mask.read_window(0, ref.height, 0, ref.width)] |= USER_MASK
            finally:
                mask.close()
        if terrain.depth:
            with data_errors_of("dem"):
                self.dem = _read_on(terrain.dem, scene_grid, "elevation", "DEM")

    def _terrain_flags(self, terrain: Terrain, scene: str | Path, ref, scene_grid: Grid, margin_m: float) -> None:
        sx, sy = pixel_size_m(ref.crs, ref.transform, ref.height, ref.width)
        source, what, name = (terrain.dem, "DEM", "dem") if terrain.dem is not None else (terrain.hand, "HAND", "hand")
        with data_errors_of(name):
            resolution = _source_resolution_m(source, what)
        grid, margin = _terrain_grid(ref, min(sx, sy), resolution, margin_m)
        gx, gy = pixel_size_m(grid.crs, grid.transform, grid.height, grid.width)
        coarse = np.zeros((grid.height, grid.width), np.uint8)
        hand = None
        if terrain.hand is not None:
            with data_errors_of("hand"):
                hand, self.info["hand_source"] = _read_on(terrain.hand, grid, "hand", "HAND", margin), "given"
                inner = _inner(hand, margin)
                median = float(np.median(inner[np.isfinite(inner)])) if np.isfinite(inner).any() else 0.0  # ocean
                if median < -1.0:  # heights above drainage are >= 0: another layer (dB backscatter, say) was given
                    raise DataError(f"{terrain.hand}: HAND has a median of {median:.1f} m over the scene; heights "
                                    "above the nearest drainage are 0 m or more (is it another layer?)")
        if terrain.dem is not None:
            with data_errors_of("dem"):
                dem = _read_on(terrain.dem, grid, "elevation", "DEM", margin)
            with np.errstate(invalid="ignore"):
                coarse[slope_deg(dem, gx, gy) > terrain.slope_max] |= STEEP
            lat = _centre_lat(ref)
            across = max(ref.width * sx, ref.height * sy)
            look = look_geometry(terrain, scene, lat, across)
            self.info["look_geometry"] = look.as_dict()
            for heading in look.headings_deg:
                shadow, layover = shadow_layover(dem, gx, gy, heading + 90.0, look.incidence_deg)
                coarse[shadow] |= SHADOW
                coarse[layover] |= LAYOVER
            if hand is None and terrain.hand_from_dem:
                hand = hand_from_dem(dem, grid, terrain.channel_km2 * 1e6 / (gx * gy))
                self.info["hand_source"] = f"pysheds from the DEM (channels from {terrain.channel_km2:g} km²)"
        if hand is not None:
            with np.errstate(invalid="ignore"):
                coarse[hand > terrain.hand_max] |= HAND_ABOVE
        self.flags |= _to_scene(coarse, grid, scene_grid, Resampling.nearest)
        self.info["terrain_grid_m"] = [round(gx, 2), round(gy, 2)]

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """The exclusion flags of one window of the scene (a view, not a copy)."""
        return self.flags[row0:row1, col0:col1]


def _name(source) -> str | None:
    return None if source is None else str(source)


def _centre_lat(ref) -> float:
    x, y = ref.transform @ (ref.width / 2, ref.height / 2)
    return float(Transformer.from_crs(CRS.from_user_input(ref.crs), "EPSG:4326", always_xy=True).transform(x, y)[1])


# -- flood depth ---------------------------------------------------------------------------------------
@dataclass
class FloodDepth:
    """Per connected flood area (4-connected, as the polygons): water level = a percentile of the DEM on
    its edge pixels; depth = level - ground (>= 0) inside it."""

    depth: np.ndarray
    labels: np.ndarray
    level: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    percentile: float
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def compute(cls, flood: np.ndarray, dem: np.ndarray, percentile: float) -> "FloodDepth":
        labels, n = ndimage.label(flood)
        edge = flood & ~ndimage.binary_erosion(flood, border_value=1)
        lab, z = labels[edge & np.isfinite(dem)], dem[edge & np.isfinite(dem)].astype(np.float64)
        order = np.lexsort((z, lab))
        lab, z = lab[order], z[order]
        counts = np.bincount(lab, minlength=n + 1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        level = np.full(n + 1, np.nan)
        has = counts > 0
        pos = (percentile / 100.0) * (counts[has] - 1)  # linear interpolation, as numpy's percentile
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, counts[has] - 1)
        frac = pos - lo
        level[has] = z[starts[has] + lo] * (1 - frac) + z[starts[has] + hi] * frac
        level[0] = np.nan
        depth = np.full(flood.shape, np.nan, np.float32)
        inside = labels > 0
        depth[inside] = np.maximum(level[labels[inside]] - dem[inside], 0.0)
        ok = inside & np.isfinite(depth)
        idx = np.arange(n + 1)
        sums = np.bincount(labels[ok], weights=depth[ok], minlength=n + 1)
        cnt = np.bincount(labels[ok], minlength=n + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, sums / cnt, np.nan)
        mx = np.full(n + 1, np.nan)
        if ok.any():
            mx_vals = ndimage.maximum(depth, labels=np.where(ok, labels, 0), index=idx[1:])
            mx[1:] = np.where(cnt[1:] > 0, mx_vals, np.nan)
        summary = {"percentile": percentile, "areas": int(n),
                   "max_m": float(np.nanmax(depth)) if ok.any() else None,
                   "mean_m": float(depth[ok].mean()) if ok.any() else None}
        return cls(depth, labels, level, mean, mx, percentile, summary)

    def properties(self, pixel_polygon) -> dict[str, Any]:
        """GeoJSON properties for a polygon in pixel coordinates (col, row) of the scene."""
        p = pixel_polygon.representative_point()
        r, c = int(math.floor(p.y)), int(math.floor(p.x))
        k = int(self.labels[r, c]) if 0 <= r < self.labels.shape[0] and 0 <= c < self.labels.shape[1] else 0
        return {"water_level_m": _round(self.level[k]) if k else None,
                "depth_mean_m": _round(self.mean[k]) if k else None,
                "depth_max_m": _round(self.max[k]) if k else None}


def _round(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)
