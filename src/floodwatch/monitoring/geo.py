"""Geometry helpers shared by change detection and AOI bookkeeping: polygonising masks, reprojecting to
EPSG:4326 and measuring areas on the WGS84 ellipsoid (so km² are right in any CRS, at any latitude)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import MonitoringError
from ..io import read_text, require_file

WGS84 = Geod(ellps="WGS84")
EMPTY = shapely.MultiPolygon()


#: longest edge (degrees) measured as one geodesic; longer ones are divided first
FLAT_EDGE_DEG = 0.1


def geodesic_area_km2(geom: BaseGeometry | None) -> float:
    """Area of a lon/lat (EPSG:4326) geometry on the WGS84 ellipsoid, km².

    GeoJSON's edges are straight in lon/lat (RFC 7946 §3.1.1), as shapely intersects them; a geodesic between
    the same two corners bows towards the pole (over it for an edge 180° long): long edges are divided into
    0.1° steps first, which puts the area within a millionth of the drawn outline's."""
    if geom is None or geom.is_empty:
        return 0.0
    area, _ = WGS84.geometry_area_perimeter(shapely.segmentize(geom, FLAT_EDGE_DEG))
    return abs(float(area)) / 1e6


def to_wgs84(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    """Reproject a geometry from `crs` to EPSG:4326 (lon, lat order)."""
    src = CRS.from_user_input(str(crs))
    if src.equals(CRS.from_epsg(4326)):
        return geom
    tr = Transformer.from_crs(src, 4326, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def from_wgs84(geom: BaseGeometry, crs: Any) -> BaseGeometry:
    dst = CRS.from_user_input(str(crs))
    if dst.equals(CRS.from_epsg(4326)):
        return geom
    tr = Transformer.from_crs(4326, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def mask_polygons(mask: np.ndarray, transform: Any, crs: Any | None) -> BaseGeometry:
    """True pixels of a boolean mask -> one (Multi)Polygon in EPSG:4326 (in pixel CRS when crs is None)."""
    from rasterio import features

    mask = np.asarray(mask, bool)
    if not mask.any():
        return EMPTY
    polys = [shape(g) for g, _ in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)]
    geom = shapely.union_all(polys)
    return to_wgs84(geom, crs) if crs else geom


def feature_collection(geom: BaseGeometry, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """One geometry as a GeoJSON FeatureCollection with one feature per polygon part."""
    parts = list(getattr(geom, "geoms", [geom])) if not geom.is_empty else []
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": dict(properties or {}), "geometry": mapping(p)}
                         for p in parts]}


def read_geojson_geometry(source: str | Path | dict[str, Any], what: str = "GeoJSON") -> BaseGeometry:
    """A GeoJSON file or dict (geometry, Feature or FeatureCollection) -> the union of its geometries."""
    return union_valid(read_geojson_geometries(source, what))


def union_valid(geoms: list[BaseGeometry]) -> BaseGeometry:
    """The union of geometries made valid (GeoJSON may hold self-intersecting rings)."""
    geoms = [shapely.make_valid(g) for g in geoms]
    return shapely.union_all(geoms) if geoms else EMPTY


def read_geojson_geometries(source: str | Path | dict[str, Any], what: str = "GeoJSON") -> list[BaseGeometry]:
    """The non-empty geometries of a GeoJSON file or dict as given (checked: an object of GeoJSON geometry,
    finite coordinates), not yet made valid."""
    label = str(source) if not isinstance(source, dict) else what
    if not isinstance(source, dict):
        path = require_file(source, "GeoJSON file", error=MonitoringError)
        try:
            source = json.loads(read_text(path, error=MonitoringError, what="GeoJSON file"))
        except RecursionError:
            raise MonitoringError(f"{path}: JSON nested too deeply to be GeoJSON") from None
        except ValueError as exc:
            raise MonitoringError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise MonitoringError(f"{label}: not a GeoJSON object (no 'type' member)")
    try:
        with np.errstate(invalid="ignore"):  # NaN coordinates are refused below, without numpy's warning first
            kind = source.get("type")
            if kind == "FeatureCollection":
                geoms = [shape(f["geometry"]) for f in source.get("features", []) if f.get("geometry")]
            elif kind == "Feature":
                geoms = [shape(source["geometry"])] if source.get("geometry") else []
            else:
                geoms = [shape(source)]
    except RecursionError:
        raise MonitoringError(f"{label}: geometry nested too deeply to be GeoJSON") from None
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise MonitoringError(f"{label}: not a GeoJSON geometry ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    # Python's JSON reader takes NaN, Infinity and 1e400 (no strict JSON has them); GEOS cannot use them
    if any(not np.isfinite(shapely.get_coordinates(g)).all() for g in geoms):
        raise MonitoringError(f"{label}: coordinates must be finite numbers (found NaN or infinity)")
    geoms = [g for g in geoms if not g.is_empty]
    crs = _declared_crs(source, label)
    if crs is None:
        return geoms
    # edges straight in a projected CRS are curves in lon/lat: divided first, so that the outline keeps its shape
    geoms = [to_wgs84(shapely.segmentize(g, max(g.length / 1000, 1e-9)), crs) for g in geoms]
    if any(not np.isfinite(shapely.get_coordinates(g)).all() for g in geoms):
        raise MonitoringError(f"{label}: coordinates outside the area where its crs ({crs.name}) can be "
                              "converted to lon/lat")
    return geoms


def _declared_crs(source: dict[str, Any], label: str) -> CRS | None:
    """The CRS of the old GeoJSON 'crs' member (2008 spec, still written by GDAL and QGIS for other CRSs), or None
    for lon/lat WGS84: RFC 7946 dropped the member, but ignoring it reads metres as degrees."""
    member = source.get("crs")
    if member is None:
        return None
    props = member.get("properties") if isinstance(member, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if not isinstance(name, str):
        raise MonitoringError(f"{label}: crs: expected {{\"type\": \"name\", \"properties\": {{\"name\": "
                              f"\"EPSG:...\"}}}}, got {json.dumps(member)[:80]}")
    try:
        crs = CRS.from_user_input(name)
    except CRSError:
        raise MonitoringError(f"{label}: crs: '{name}' is not a coordinate reference system pyproj knows") from None
    # GeoJSON 2008 files name EPSG:4326 but hold lon, lat all the same, as RFC 7946 does
    return None if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True) else crs
