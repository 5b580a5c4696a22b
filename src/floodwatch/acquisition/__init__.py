"""Acquisition: Sentinel-1 from public STAC catalogs (search, signing, windowed COG reads, units) onto
the AOI's grid, ready for `floodwatch map`. Entry point: `fetch`."""
from .fetch import FetchedScene, FetchResult, fetch, parse_bbox, read_aoi
from .search import Retries, search_api
from .sources import SOURCES, Source, resolve_source

__all__ = ["fetch", "FetchResult", "FetchedScene", "parse_bbox", "read_aoi", "search_api", "Retries", "SOURCES",
           "Source", "resolve_source"]
