"""Lon/lat (EPSG:4326) outline rules shared by `fetch`'s AOI (acquisition), stored AOIs (monitoring) and the
flood polygons `map` writes (mapping), which do not import each other."""
from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

#: why an outline with an edge over 180° of longitude is refused, and what to do instead
WIDE_EDGE = ("an edge spans more than 180° of longitude; if the area crosses the antimeridian, split it at 180° "
             "into two polygons (RFC 7946 §3.1.9), otherwise add vertices so that no edge spans 180°")


def polygons(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons of any geometry (collections and multi-parts opened, lines and points left out)."""
    if geom.geom_type == "Polygon":
        return [] if geom.is_empty else [geom]
    return [p for g in getattr(geom, "geoms", []) for p in polygons(g)]


def crossing_edges(lon: np.ndarray) -> np.ndarray:
    """For a ring's longitudes, which edges span more than 180° (sides along ±180° itself aside)."""
    return (np.abs(np.diff(lon)) > 180) & ~((np.abs(lon[:-1]) == 180) & (np.abs(lon[1:]) == 180))


def has_wide_edge(geom: BaseGeometry) -> bool:
    """Whether a ring has an edge spanning more than 180° of longitude: a 2° box across the antimeridian or a
    band round the world, and nothing in the outline says which."""
    if geom.is_empty or geom.bounds[2] - geom.bounds[0] <= 180:
        return False
    return any(crossing_edges(np.asarray(ring.coords)[:, 0]).any()
               for poly in polygons(geom) for ring in (poly.exterior, *poly.interiors))


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygons of a geometry (lines and points left out) as one geometry."""
    polys = polygons(geom)
    return shapely.union_all(polys) if polys else shapely.MultiPolygon()


def split_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """A lon/lat geometry that floodwatch derived from a raster (a footprint, flood or mask polygons: densely
    segmented, so an edge spanning more than 180° of longitude can only be a crossing) with its polygons that
    cross 180° cut there (RFC 7946 §3.1.9); flat, such a polygon would be a band round the world. Edges from
    -180° to 180° themselves are left as they are; a ring round a pole is left as it is."""
    if geom.is_empty or geom.bounds[2] - geom.bounds[0] <= 180:  # no edge can cross: one bounds lookup
        return geom
    if geom.geom_type == "Polygon":
        return _split_polygon(geom)
    if hasattr(geom, "geoms"):
        return shapely.union_all([shapely.make_valid(split_antimeridian(g)) for g in geom.geoms])
    return geom


def _unwrap(ring: Any) -> tuple[np.ndarray, bool] | None:
    """(ring coordinates with longitudes made continuous across 180°, whether an edge crossed it); None for a
    ring that winds round the globe (round a pole)."""
    xy = np.asarray(ring.coords)[:, :2]
    lon = xy[:, 0]
    cross = crossing_edges(lon)
    step = np.diff(lon)
    step = np.where(cross, (step + 180) % 360 - 180, step)
    lon = lon[0] + np.concatenate([[0.0], np.cumsum(step)])
    if abs(lon[-1] - lon[0]) > 1e-9:
        return None
    return np.column_stack([lon, xy[:, 1]]), bool(cross.any())


def _split_polygon(poly: Polygon) -> BaseGeometry:
    rings = [_unwrap(r) for r in (poly.exterior, *poly.interiors)]
    if any(r is None for r in rings):
        return poly
    if not any(crossed for _, crossed in rings):
        return poly
    outer, holes = rings[0][0], [hole for hole, _ in rings[1:]]
    centre = (outer[:, 0].min() + outer[:, 0].max()) / 2
    for hole in holes:  # each ring was unwrapped from its own start: bring holes beside the outline
        hole[:, 0] += 360 * round((centre - hole[0, 0]) / 360)
    return fold_longitudes(shapely.make_valid(Polygon(outer, holes)))  # longitudes beyond ±180 here


def fold_longitudes(geom: BaseGeometry) -> BaseGeometry:
    """The polygons of `geom`, whose longitudes lie within one turn of [-180, 180] (170..190, say), cut at ±180°
    and the parts beyond moved a turn back (RFC 7946 §3.1.9)."""
    pieces = [translate(geom.intersection(box(360 * k - 180, -90, 360 * k + 180, 90)), xoff=-360 * k)
              for k in (-1, 0, 1)]
    return polygonal(shapely.union_all(pieces))
