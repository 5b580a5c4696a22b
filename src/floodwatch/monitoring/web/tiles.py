"""Web-mercator map tiles of one record's rasters (flood mask, water probability, SAR backdrop), by rio-tiler.

rio-tiler reads only the COG blocks and overview level a tile needs and reprojects them to web mercator,
so a tile costs the same whether the scene is 100 px or 30,000 px wide. Rendered PNGs are kept in a small
in-process LRU cache keyed by the file's identity (path, size, mtime), so a re-run that rewrites a COG
is never answered from the old tile.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: what each layer is drawn from, and how
LAYERS = ("flood", "probability", "sar")
FLOOD_COLOURS = {1: (230, 40, 30, 235), 2: (30, 90, 210, 235)}  # flood red, permanent water blue (as quicklook)
SAR_RANGE_DB = (-25.0, 0.0)  # as the quicklook's backdrop
MAX_ZOOM = 22
TILE_CACHE_SIZE = 4096  # ~ 4096 x (1-20 kB) PNGs
MAX_READ_PX = 4096 * 4096  # the most source pixels one tile may read (see TileRenderer.info)


def _probability_colormap() -> dict[int, tuple[int, int, int, int]]:
    """0 transparent -> 255 opaque dark blue (a white-to-blue ramp whose alpha grows with probability)."""
    cmap = {}
    for v in range(256):
        t = v / 255.0
        cmap[v] = (int(240 - 200 * t), int(245 - 150 * t), int(255 - 60 * t), int(round(220 * t ** 0.7)))
    return cmap


PROBABILITY_COLOURS = _probability_colormap()


class TileError(LookupError):
    """The tile does not exist (outside the raster or an impossible z/x/y): the API answers 404."""


class TileUnreadable(Exception):
    """The raster behind the tile is there but cannot be read (overwritten, cut short): the API answers 500
    naming the file (`brief`: no server path), and logs the path (str())."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path} cannot be read ({reason})")
        self.brief = f"{path.name} cannot be read"


@dataclass(frozen=True)
class Source:
    """One raster behind a layer: the file and the values that map to the colour ramp's ends."""
    path: Path
    layer: str
    units: str = "db"  # SAR only: 'db' or 'linear' power

    def key(self) -> tuple[Any, ...]:
        st = self.path.stat()
        return (str(self.path), st.st_size, st.st_mtime_ns, self.layer, self.units)


def layer_sources(paths: dict[str, str]) -> dict[str, Source]:
    """The layers a record can show, from the files its run recorded (missing files are left out).

    The SAR backdrop is the scene the run read (stats.json's 'scene'), when it is still where it was. A change
    run's score is a water probability, except for the log-ratio (a change in dB): that one has no layer."""
    out: dict[str, Source] = {}
    stats: dict[str, Any] = {}
    stats_path = paths.get("stats")
    if stats_path and Path(stats_path).is_file():
        try:
            stats = json.loads(Path(stats_path).read_text())
        except (OSError, ValueError):
            pass
        stats = stats if isinstance(stats, dict) else {}
    mask = paths.get("flood_mask") or paths.get("change_mask")
    if mask and Path(mask).is_file():
        out["flood"] = Source(Path(mask), "flood")
    # only a score known to be a probability: without its stats.json it may be a log-ratio in dB (runs written
    # before stats.json had 'score_units' are told by the model methods of their time)
    model_change = stats.get("score_units", {"difference": "probability", "bitemporal": "probability"}
                             .get(stats.get("method"))) == "probability"
    prob = paths.get("flood_probability") or (paths.get("change_score") if model_change else None)
    if prob and Path(prob).is_file():
        out["probability"] = Source(Path(prob), "probability")
    scene, units = paths.get("scene"), "db"
    if not scene:
        scene, units = stats.get("scene"), stats.get("units") or "db"
    if scene and Path(scene).is_absolute() and Path(scene).is_file():
        out["sar"] = Source(Path(scene), "sar", units)
    return out


class TileRenderer:
    """Render PNG tiles with rio-tiler; thread-safe (FastAPI runs sync endpoints on a thread pool)."""

    def __init__(self, cache_size: int = TILE_CACHE_SIZE):
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._info: dict[tuple, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._failed: set[tuple] = set()  # files already reported unreadable
        self.hits = self.misses = 0

    def first_failure(self, src: Source) -> bool:
        """True the first time `src`, as it is now on disk, is found unreadable (to report it once)."""
        try:
            key = src.key()
        except OSError:
            return False
        with self._lock:
            new = key not in self._failed
            self._failed.add(key)
        return new

    def info(self, src: Source) -> dict[str, Any]:
        """{'bounds': [west, south, east, north] in degrees, 'minzoom': int}: the page asks only for tiles
        inside the bounds and from `minzoom` up.

        Below `minzoom` a tile would read more than MAX_READ_PX source pixels: a scene without overviews
        (the SAR backdrop is the scene `map` read, often a plain GeoTIFF) seen from far out."""
        try:
            key = src.key()
        except OSError:
            raise TileError(f"{src.path.name} is gone") from None
        with self._lock:
            if key in self._info:
                return self._info[key]
        from rio_tiler.io import Reader

        with _named_read_errors(src), Reader(str(src.path)) as r:
            bounds = list(r.get_geographic_bounds(r.tms.rasterio_geographic_crs))
            factor = max(r.dataset.overviews(1) or [1])
            w, h = r.dataset.width / factor, r.dataset.height / factor
            cheapest = r.maxzoom - int(math.log2(factor))  # the zoom whose pixels match the coarsest overview
        minzoom = 0
        for z in range(cheapest, -1, -1):
            side = 256 * 2.0 ** (cheapest - z)
            if min(side, w) * min(side, h) > MAX_READ_PX:
                minzoom = z + 1
                break
        out = {"bounds": bounds, "minzoom": minzoom}
        with self._lock:
            self._info[key] = out
        return out

    def cached(self, src: Source, z: int, x: int, y: int) -> tuple[bytes | None, str, tuple]:
        """(PNG bytes or None when not rendered yet, ETag, cache key); cheap: one stat() of the file."""
        if not (0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
            raise TileError(f"no tile {z}/{x}/{y}")
        try:
            key = src.key() + (z, x, y)
        except OSError:
            raise TileError(f"{src.path.name} is gone") from None
        etag = '"' + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + '"'
        with self._lock:
            png = self._cache.get(key)
            if png is not None:
                self._cache.move_to_end(key)
                self.hits += 1
        return png, etag, key

    def tile(self, src: Source, z: int, x: int, y: int) -> tuple[bytes, str]:
        """(PNG bytes, ETag), rendered on a cache miss. Raises TileError for a tile outside the raster or the
        tile matrix."""
        png, etag, key = self.cached(src, z, x, y)
        if png is not None:
            return png, etag
        if z < self.info(src)["minzoom"]:
            raise TileError(f"zoom {z} is below {src.path.name}'s least zoom {self.info(src)['minzoom']} "
                            "(it has no overviews for it)")
        png = self._render(src, z, x, y)
        with self._lock:
            self.misses += 1
            self._cache[key] = png
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return png, etag

    def _render(self, src: Source, z: int, x: int, y: int) -> bytes:
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader

        try:
            with _named_read_errors(src), Reader(str(src.path)) as r:
                if not r.tile_exists(x, y, z):
                    raise TileError(f"tile {z}/{x}/{y} is outside {src.path.name}")
                # nearest for classes; bilinear would invent in-between codes at the edges of flood patches
                img = r.tile(x, y, z, indexes=1, resampling_method="nearest" if src.layer == "flood" else "bilinear")
                dtype = r.dataset.dtypes[0]
        except TileOutsideBounds:
            raise TileError(f"tile {z}/{x}/{y} is outside {src.path.name}") from None
        if src.layer == "flood":
            img.array.mask |= ~np.isin(img.array.data, list(FLOOD_COLOURS))
            return img.render(img_format="PNG", colormap=FLOOD_COLOURS)
        if src.layer == "probability":
            top = 100.0 if dtype == "uint8" else 1.0  # map writes percent (uint8) or a 0-1 float
            img.rescale(in_range=((0.0, top),))
            return img.render(img_format="PNG", colormap=PROBABILITY_COLOURS)
        if src.units == "linear":
            with np.errstate(divide="ignore", invalid="ignore"):
                img.array = np.ma.masked_invalid(10 * np.log10(img.array.astype("float32")))
        img.rescale(in_range=(SAR_RANGE_DB,))
        return img.render(img_format="PNG")


@contextlib.contextmanager
def _named_read_errors(src: Source) -> Iterator[None]:
    """A file rewritten or cut short after its run was recorded: named, rather than rasterio's traceback."""
    from rasterio.errors import RasterioError

    try:
        yield
    except RasterioError as exc:
        if not src.path.is_file():
            raise TileError(f"{src.path.name} is gone") from None
        raise TileUnreadable(src.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
