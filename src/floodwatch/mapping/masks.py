"""Boolean layers on the scene's grid, read by windows (rows and columns): a raster (any CRS/resolution;
a path or a URL GDAL reads), a vector file (GeoJSON or shapefile, rasterised per window) or a registered
public water layer.

Used for the permanent-water reference (`water_mask`) and the user's exclusion mask (`exclude`).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio import features
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import box, shape

from ..errors import DataError
from .locations import is_remote_input
from .terrain_sources import Grid, PublicLayer, cog_env, cog_path, fetch_layer, open_error, resolve_layer

VECTOR_SUFFIXES = (".geojson", ".json", ".shp")


def grid_of(ref) -> Grid:
    return Grid(ref.crs, ref.transform, ref.height, ref.width)


def _reaches(src, ref) -> bool:
    """Whether a raster's extent meets the scene's. The scene's small box goes into the raster's CRS (densified),
    not the raster's into the scene's: a world-wide EPSG:4326 layer has no sensible box in one UTM zone."""
    try:
        scene = box(*transform_bounds(ref.crs, src.crs, *grid_of(ref).bounds, densify_pts=21))
    except Exception:  # pyproj/GDAL projection errors: unknown, so the reads decide, as before this check
        return True
    return scene.intersects(box(*src.bounds))


class RasterMask:
    """Nonzero, finite pixels of band 1, resampled (nearest) onto the scene's grid on the fly."""

    def __init__(self, path: str | Path, ref, what: str, must_reach: bool = False):
        # a URL is opened as the terrain layers are (GDAL settings are per thread: they cover the opening,
        # where a folder listing would be asked for, not the window reads of other threads)
        env = rasterio.Env(**cog_env(str(path))) if is_remote_input(path) else contextlib.nullcontext()
        with env:
            try:
                self._src = rasterio.open(cog_path(str(path)))
            except RasterioIOError as exc:
                if is_remote_input(path):  # a URL that does not answer is no wrong kind of file: say why
                    raise open_error(path, what, exc) from None
                raise DataError(f"{path}: {what} is not a raster GeoTIFF or a vector file "
                                f"({', '.join(VECTOR_SUFFIXES)})") from None
            if self._src.crs is None:
                self._src.close()
                raise DataError(f"{path}: {what} has no coordinate reference system")
            if must_reach and not _reaches(self._src, ref):
                self._src.close()
                raise DataError(f"{path}: {what} does not reach the scene (its extent and the scene's do not "
                                "overlap)")
            self._vrt = WarpedVRT(self._src, crs=ref.crs, transform=ref.transform, width=ref.width,
                                  height=ref.height, resampling=Resampling.nearest, src_nodata=self._src.nodata,
                                  nodata=0)

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        data = self._vrt.read(1, window=Window(col0, row0, col1 - col0, row1 - row0))
        return np.isfinite(data) & (data > 0)

    def close(self) -> None:
        self._vrt.close()
        self._src.close()


def _read_geojson(path: Path, what: str) -> tuple[list, CRS]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: {what} is not valid GeoJSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {what} is not GeoJSON (a JSON {type(doc).__name__}, not an object)")
    crs = CRS.from_epsg(4326)  # RFC 7946; the old "crs" member is still honoured
    props = doc["crs"].get("properties") if isinstance(doc.get("crs"), dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if name:
        try:
            crs = CRS.from_user_input(name)
        except Exception:  # pyproj raises CRSError; any unreadable name is the same input error
            raise DataError(f"{path}: {what} has an unknown crs '{name}'") from None
    try:  # members of the wrong JSON type (a feature that is a string, ...) are invalid geometry too
        if doc.get("type") == "FeatureCollection":
            geoms = [f.get("geometry") for f in doc.get("features", [])]
        elif doc.get("type") == "Feature":
            geoms = [doc.get("geometry")]
        else:
            geoms = [doc]
        return [shape(g) for g in geoms if g], crs
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError, shapely.errors.GEOSException) as exc:
        raise DataError(f"{path}: {what} holds an invalid geometry ({exc})") from None


def _read_shapefile(path: Path, what: str) -> tuple[list, CRS]:
    try:
        import shapefile  # pyshp: pure Python, so no GDAL/OGR build (fiona) is needed for one mask
    except ImportError:
        raise DataError(f"{path}: reading shapefiles needs pyshp: pip install 'floodwatch[terrain]'") from None
    prj = path.with_suffix(".prj")
    if not prj.is_file():
        raise DataError(f"{path}: {what} has no .prj file, so its coordinate reference system is unknown")
    try:
        crs = CRS.from_wkt(prj.read_text())
        with shapefile.Reader(str(path)) as r:
            geoms = [shape(s.__geo_interface__) for s in r.shapes() if s.shapeType != shapefile.NULL]
    except Exception as exc:  # pyshp raises bare ShapefileException/struct errors on corrupt files
        raise DataError(f"{path}: {what} is not a readable shapefile ({exc})") from None
    return geoms, crs


class VectorMask:
    """Polygons from a GeoJSON or shapefile, reprojected to the scene's CRS and rasterised per window
    (a pixel is inside when its centre is)."""

    def __init__(self, path: Path, ref, what: str):
        reader = _read_shapefile if path.suffix.lower() == ".shp" else _read_geojson
        geoms, crs = reader(path, what)
        to_scene = Transformer.from_crs(crs, CRS.from_user_input(ref.crs), always_xy=True)
        geoms = [shapely.transform(g, lambda xy: np.column_stack(to_scene.transform(xy[:, 0], xy[:, 1])))
                 for g in geoms]
        scene_box = box(*grid_of(ref).bounds)
        self._geoms = [g for g in geoms if not g.is_empty and g.intersects(scene_box)]
        self._transform = ref.transform

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        shape_ = (row1 - row0, col1 - col0)
        if not self._geoms or 0 in shape_:
            return np.zeros(shape_, bool)
        transform = self._transform @ rasterio.Affine.translation(col0, row0)
        return features.rasterize(self._geoms, out_shape=shape_, transform=transform, fill=0,
                                  default_value=1, dtype="uint8").astype(bool)

    def close(self) -> None:
        pass


class ArrayMask:
    """A layer already on the scene's grid (a fetched public water layer)."""

    def __init__(self, data: np.ndarray):
        self._data = data

    def read_window(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        return self._data[row0:row1, col0:col1]

    def close(self) -> None:
        pass


def open_mask(source: str | Path, ref, what: str = "water mask", must_reach: bool = True):
    """A boolean layer on `ref`'s grid (anything with crs, transform, height, width) from a raster, a vector
    file, or the name of a public water layer ('jrc-gsw', 'worldcover'). Every reader answers
    `read_window(row0, row1, col0, col1)` with a boolean array of that window.

    `must_reach`: a raster whose extent misses the scene is an error (a water reference that is not there would
    count every water pixel as flood); a vector file may lie elsewhere (a region's polygons, none here)."""
    layer = resolve_layer(source, "water", what)
    if isinstance(layer, PublicLayer):
        return ArrayMask(fetch_layer(layer, grid_of(ref)) > 0)
    if isinstance(layer, Path) and layer.suffix.lower() in VECTOR_SUFFIXES:
        return VectorMask(layer, ref, what)
    return RasterMask(layer, ref, what, must_reach)  # a file, or a URL (https://, s3://, gs://) read in place
