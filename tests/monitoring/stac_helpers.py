"""STAC test data: a static catalog of small tiled GeoTIFFs, and a minimal STAC API over the same items.

The API (http.server on 127.0.0.1, free port) implements what pystac-client needs for item search: the landing
page with conformance classes, /conformance, /collections, /collections/{id}, and GET/POST /search with
collections, bbox, intersects and datetime filters and `next`-link paging. It is strict where real servers are
(an open-ended `../..` datetime is a 400, as in stac-fastapi), and it logs every request for the assertions.

For the acquisition tests it can also fail on purpose (`faults`: statuses to answer first, per path prefix),
serve extra routes (`routes`: e.g. a SAS token endpoint), replay recorded search pages (`recorded_pages`) and
answer unknown collections with a recorded 404 body.
"""
from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlparse

import pystac
import pytest
import rasterio
from shapely.geometry import box, mapping, shape

from floodwatch.data.synthetic import synth_scene
from floodwatch.monitoring.geo import to_wgs84

from monitoring_helpers import ORIGIN, UTM, serving

SIZE = 256
X0, Y0 = ORIGIN
CONFORMANCE = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections",
               "https://api.stacspec.org/v1.0.0/item-search"]


def _write_cog(path, band, georef):
    # a tiled GeoTIFF with small internal tiles (GDAL's COG driver wants >= 128 px tiles, too big here)
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs=UTM,
                       transform=georef.affine(), nodata=float("nan"), tiled=True, blockxsize=64,
                       blockysize=64) as dst:
        dst.write(band[None])


def make_catalog(root, linear: bool = False):
    """A static catalog: two dates over the AOI (more water on the second) and one item elsewhere; with
    `linear` the assets hold power in linear units, as Planetary Computer's sentinel-1-rtc does."""
    cat = pystac.Catalog("root", "test catalog")
    coll = pystac.Collection("s1", "Sentinel-1 test", pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])))
    cat.add_child(coll)
    for i, (day, frac, origin) in enumerate([(1, 0.05, ORIGIN), (9, 0.3, ORIGIN), (5, 0.3, (X0 + 50000, Y0))]):
        s = synth_scene(SIZE, SIZE, seed=7, water_fraction=frac, crs=UTM, origin=origin)
        foot = to_wgs84(box(origin[0], origin[1] - 10 * SIZE, origin[0] + 10 * SIZE, origin[1]), UTM)
        item = pystac.Item(f"S1_{i}", mapping(foot), list(foot.bounds),
                           datetime(2024, 5, day, 5, tzinfo=timezone.utc), {})
        for b, name in enumerate(("vv", "vh")):
            p = root / f"S1_{i}_{name}.tif"
            _write_cog(p, 10 ** (s.image[b] / 10) if linear else s.image[b], s.georef)
            item.add_asset(name, pystac.Asset(str(p), media_type=pystac.MediaType.COG, roles=["data"]))
        coll.add_item(item)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _datetime_filter(value: str | None):
    """A predicate on item datetimes for a STAC `datetime` parameter (instant, or interval with open ends)."""
    if not value:
        return lambda dt: True
    if "/" not in value:
        t = _time(value)
        return lambda dt: dt == t
    start, end = value.split("/")
    if start in ("", "..") and end in ("", ".."):
        raise ValueError("double open-ended datetime intervals are not allowed")
    lo = None if start in ("", "..") else _time(start)
    hi = None if end in ("", "..") else _time(end)
    return lambda dt: (lo is None or dt >= lo) and (hi is None or dt <= hi)


class StacApi:
    """State of one API server: the collections and item dicts it serves, and the requests it saw."""

    def __init__(self, collections: list[dict], items: list[dict], page_size: int = 1,
                 methods: tuple[str, ...] = ("GET", "POST")):
        self.collections, self.items, self.page_size = collections, items, page_size
        self.methods = methods  # search methods advertised (and accepted)
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, parameters)
        self.url = ""
        #: path prefix -> statuses to answer, one per request, before answering normally (e.g. [429, 429])
        self.faults: dict[str, list[int]] = {}
        #: path prefix -> fn(method, path, headers) -> (status, JSON body): extra endpoints
        self.routes: dict[str, object] = {}
        #: recorded search pages: {None: first page, next-token: page}; their `next` links are pointed here
        self.recorded_pages: dict | None = None
        self.not_found_body: dict | None = None  # a recorded 404 body for unknown collections

    def landing(self) -> dict:
        u = self.url
        return {"type": "Catalog", "stac_version": "1.0.0", "id": "test-api", "description": "test STAC API",
                "conformsTo": CONFORMANCE, "links": [
                    {"rel": "self", "href": f"{u}/", "type": "application/json"},
                    {"rel": "root", "href": f"{u}/", "type": "application/json"},
                    {"rel": "conformance", "href": f"{u}/conformance", "type": "application/json"},
                    {"rel": "data", "href": f"{u}/collections", "type": "application/json"},
                ] + [{"rel": "search", "href": f"{u}/search", "type": "application/geo+json", "method": m}
                     for m in self.methods]
                + [{"rel": "child", "href": f"{u}/collections/{c['id']}", "type": "application/json"}
                   for c in self.collections]}

    def search(self, params: dict, method: str) -> dict:
        """One page of matching items; `params` as the client sent them (GET strings or POST JSON)."""
        def as_list(v):
            return v.split(",") if isinstance(v, str) else list(v)

        matches = _datetime_filter(params.get("datetime"))
        where = None
        if params.get("intersects"):
            g = params["intersects"]
            where = shape(json.loads(g) if isinstance(g, str) else g)
        elif params.get("bbox"):
            where = box(*[float(x) for x in as_list(params["bbox"])][:4])
        colls = set(as_list(params["collections"])) if params.get("collections") else None
        found = [i for i in self.items
                 if (colls is None or i["collection"] in colls)
                 and (where is None or shape(i["geometry"]).intersects(where))
                 and matches(_time(i["properties"]["datetime"]))]
        start, limit = int(params.get("token") or 0), int(params.get("limit") or self.page_size)
        page = {"type": "FeatureCollection", "features": found[start:start + limit], "links": [],
                "numberMatched": len(found), "numberReturned": len(found[start:start + limit])}
        if start + limit < len(found):
            nxt = {**params, "token": str(start + limit)}
            link = {"rel": "next", "type": "application/geo+json", "method": method}
            if method == "POST":
                link.update(href=f"{self.url}/search", body=nxt, merge=False)
            else:
                link["href"] = f"{self.url}/search?{urlencode(nxt)}"
            page["links"].append(link)
        return page


    def replay(self, token: str | None) -> dict:
        """A recorded search page, its `next` link (GET or POST) pointed at this server; past the recorded
        pages, an empty last page."""
        if token not in self.recorded_pages:
            return {"type": "FeatureCollection", "features": [], "links": []}
        page = json.loads(json.dumps(self.recorded_pages[token]))
        for link in page.get("links", []):
            if link.get("rel") == "next":
                query = urlparse(link["href"]).query
                link["href"] = f"{self.url}/search" + (f"?{query}" if query else "")
        return page


def _handler(api: StacApi):
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict, ctype: str = "application/json") -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str, params: dict) -> None:
            path = urlparse(self.path).path.rstrip("/") or "/"
            api.requests.append((method, path, params))
            for prefix, codes in api.faults.items():
                if path.startswith(prefix) and codes:
                    code = codes.pop(0)
                    return self._reply(code, {"code": str(code), "description": f"injected {code}"})
            for prefix, fn in api.routes.items():
                if path.startswith(prefix):
                    return self._reply(*fn(method, path, self.headers))
            by_id = {c["id"]: c for c in api.collections}
            if method == "GET" and path == "/":
                return self._reply(200, api.landing())
            if method == "GET" and path == "/conformance":
                return self._reply(200, {"conformsTo": CONFORMANCE})
            if method == "GET" and path == "/collections":
                return self._reply(200, {"collections": api.collections, "links": []})
            if method == "GET" and path.startswith("/collections/"):
                cid = path.split("/", 2)[2]
                if cid in by_id:
                    return self._reply(200, by_id[cid])
                return self._reply(404, api.not_found_body or {"code": "NotFoundError",
                                                               "description": f"collection {cid} not found"})
            if path == "/search":
                if method not in api.methods:
                    return self._reply(405, {"code": "MethodNotAllowed", "description": method})
                if api.recorded_pages is not None:
                    return self._reply(200, api.replay(params.get("next") or params.get("token")),
                                       "application/geo+json")
                try:
                    return self._reply(200, api.search(params, method), "application/geo+json")
                except (ValueError, KeyError) as exc:
                    return self._reply(400, {"code": "BadRequest", "description": str(exc)})
            return self._reply(404, {"code": "NotFound", "description": path})

        def do_GET(self):
            self._route("GET", {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._route("POST", json.loads(body or b"{}"))

        def log_message(self, *args):
            pass

    return Handler


def api_items(catalog_url: str) -> tuple[list[dict], list[dict]]:
    """(collections, items) of a static catalog as an API serves them: assets with absolute URLs."""
    root = pystac.read_file(catalog_url)
    collections, items = [], []
    for coll in root.get_children():
        collections.append({k: v for k, v in coll.to_dict(include_self_link=False).items() if k != "links"}
                           | {"links": []})
        for item in coll.get_items(recursive=True):
            item.make_asset_hrefs_absolute()
            d = item.to_dict(include_self_link=False)
            d["collection"], d["links"] = coll.id, []
            items.append(d)
    return collections, items


@pytest.fixture
def stac_api():
    """Start a STAC API on loopback: yields a function (collections, items, page_size, methods) -> StacApi."""
    with contextlib.ExitStack() as servers:
        def start(collections: list[dict], items: list[dict], page_size: int = 1,
                  methods: tuple[str, ...] = ("GET", "POST")) -> StacApi:
            api = StacApi(collections, items, page_size, methods)
            api.url = servers.enter_context(serving(_handler(api)))
            return api

        yield start
