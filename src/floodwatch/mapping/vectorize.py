"""Flood mask -> GeoJSON polygons in EPSG:4326 with per-feature area on the ellipsoid.

The mask is vectorised block by block (bounded memory) in integer pixel coordinates, so the pieces of
a polygon cut by block edges share exact vertices and merge cleanly; only those pieces are unioned.
Polygons that cross the antimeridian (a UTM 60/1 scene over Fiji) are cut at 180° (RFC 7946 §3.1.9).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Geod, Transformer
from rasterio import features
from rasterio.windows import Window
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components
from shapely.geometry import MultiPolygon, mapping, shape
from shapely.geometry.polygon import orient

from ..io import atomic_path, dumps_json
from ..lonlat import split_antimeridian

GEOD = Geod(ellps="WGS84")
VECTOR_BLOCK = 2048


def _drop_small(hit: np.ndarray, min_pixels: int, inner_edges: tuple[bool, bool, bool, bool]) -> tuple[np.ndarray, int]:
    """Remove connected specks under `min_pixels` before vectorising (thousands of one-pixel polygons are
    the slow part); a component touching an inner block edge may continue next door, so it stays."""
    labels, n = ndimage.label(hit)
    if n == 0 or min_pixels <= 1:
        return hit, 0
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    top, bottom, left, right = inner_edges
    for edge, on in ((labels[0], top), (labels[-1], bottom), (labels[:, 0], left), (labels[:, -1], right)):
        if on:
            keep[edge] = True
    keep[0] = False
    return keep[labels], int(n - keep[1:].sum())


def _pixel_polygons(src, value: int, block: int, min_pixels: int) -> tuple[list, int]:
    """(polygons in pixel coordinates of `value` in band 1, number of specks dropped); pieces cut by
    block edges are merged."""
    whole, cut, dropped = [], [], 0
    for r0 in range(0, src.height, block):
        for c0 in range(0, src.width, block):
            h, w = min(block, src.height - r0), min(block, src.width - c0)
            hit = src.read(1, window=Window(c0, r0, w, h)) == value
            if not hit.any():
                continue
            inner = (r0 > 0, r0 + h < src.height, c0 > 0, c0 + w < src.width)
            hit, n_small = _drop_small(hit, min_pixels, inner)
            dropped += n_small
            offset = rasterio.Affine.translation(c0, r0)
            for geom, _ in features.shapes(hit.astype(np.uint8), mask=hit, transform=offset, connectivity=4):
                poly = shape(geom)
                x0, y0, x1, y1 = poly.bounds
                touches_inner_edge = ((inner[0] and y0 == r0) or (inner[1] and y1 == r0 + h)
                                      or (inner[2] and x0 == c0) or (inner[3] and x1 == c0 + w))
                (cut if touches_inner_edge else whole).append(poly)
    return whole + _merge_cut(cut), dropped


def _merge_cut(pieces: list) -> list:
    """Union the pieces cut by block edges, one group of touching pieces at a time. The result is the union
    of all of them, split into polygons; one union over every piece at once built indexes over all of them,
    170 MB at 25,000 x 16,000 px (docs/benchmarks.md), where a group's union needs only its own."""
    if not pieces:
        return []
    geoms = np.array(pieces, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    n = len(geoms)
    touching = sparse.coo_matrix((np.ones(len(left), bool), (left, right)), shape=(n, n))
    _, group = connected_components(touching, directed=False)
    order = np.argsort(group, kind="stable")
    merged = []
    for members in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
        union = geoms[members[0]] if len(members) == 1 else shapely.union_all(geoms[members])
        merged.extend(getattr(union, "geoms", [union]))
    return merged


def right_hand(geom):
    """Outer rings anticlockwise and holes clockwise, as RFC 7946 §3.1.6 asks. Traced from a north-up grid they
    come out so, but a bottom-up or mirrored grid (positive pixel height) reverses every ring, and spherical
    renderers (d3-geo) then fill the world outside each flood."""
    if geom.geom_type == "Polygon":
        return orient(geom, 1.0)
    if geom.geom_type == "MultiPolygon":
        return MultiPolygon([orient(p, 1.0) for p in geom.geoms])
    return geom


def vectorize_mask(mask_path: str | Path, out_path: str | Path, *, value: int = 1, min_area_m2: float = 0.0,
                   simplify: float = 1.0, max_pixel_m2: float | None = None, block: int = VECTOR_BLOCK,
                   properties: Callable[[Any], dict] | None = None) -> dict:
    """Write the polygons of `value` in a uint8 mask GeoTIFF as a GeoJSON FeatureCollection (EPSG:4326).

    simplify: Douglas-Peucker tolerance in pixels (0 keeps the exact pixel outlines).
    min_area_m2: polygons smaller than this on the ellipsoid are dropped (speckle).
    max_pixel_m2: the largest ground area of one pixel, to drop specks cheaply before vectorising.
    properties: called with each polygon in pixel coordinates (col, row; before simplification) for extra
    GeoJSON properties (e.g. flood depth).
    Returns {"features": n, "area_km2": total of the kept polygons, "removed": n dropped}."""
    with rasterio.open(mask_path) as src:
        min_pixels = int(min_area_m2 / max_pixel_m2) if max_pixel_m2 and min_area_m2 > 0 else 0
        polys, removed = _pixel_polygons(src, value, block, min_pixels)
        a, b, c, d, e, f = tuple(src.transform)[:6]
        to_lonlat = Transformer.from_crs(CRS.from_user_input(src.crs), "EPSG:4326", always_xy=True)

    def pixel_to_lonlat(xy: np.ndarray) -> np.ndarray:
        x, y = a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f
        return np.column_stack(to_lonlat.transform(x, y))

    extra = [properties(p) for p in polys] if properties else [{}] * len(polys)
    geoms = np.array(polys, dtype=object)
    if simplify > 0 and len(geoms):
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    geoms = shapely.transform(geoms, pixel_to_lonlat) if len(geoms) else geoms
    feats, total = [], 0.0
    for geom, more in zip(geoms, extra):
        if geom.is_empty:
            continue
        geom = split_antimeridian(geom)  # before the validity check: flat, a crossing outline is no polygon
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        area_m2 = abs(GEOD.geometry_area_perimeter(geom)[0])
        if area_m2 < min_area_m2:
            removed += 1
            continue
        total += area_m2
        feats.append({"type": "Feature", "id": len(feats),
                      "properties": {"id": len(feats), "area_km2": round(area_m2 / 1e6, 6), **more},
                      "geometry": mapping(right_hand(geom))})
    with atomic_path(out_path) as tmp:
        tmp.write_text(dumps_json({"type": "FeatureCollection", "name": Path(out_path).stem,
                                   "features": feats}))
    return {"features": len(feats), "area_km2": total / 1e6, "removed": removed}
