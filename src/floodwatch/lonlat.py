"""Lon/lat (EPSG:4326) outline rules shared by `fetch`'s AOI (acquisition) and stored AOIs (monitoring), which do
not import each other."""
from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon
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
