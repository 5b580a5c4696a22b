"""The monitoring web map: a FastAPI app over the store, with a Leaflet page bundled in the package.

JSON API (read-only):
  GET /healthz
  GET /api/config                                 basemap URL + attribution, offline fallback, write access
  GET /api/aois                                   AOIs as a GeoJSON FeatureCollection (+ latest record)
  GET /api/aois/{name}/history[?kind=&offset=&limit=]   records, oldest first, one page (total, next)
  GET /api/aois/{name}/history.csv[?kind=]        the whole history as CSV (a download)
  GET /api/aois/{name}/floods[?time=ISO&kind=]    flood polygons of the record at or before `time` (latest)
  GET /api/records/{id}                           one record: layers (tile URL, bounds), downloads
  GET /api/records/{id}/floods.geojson            its flood polygons (a download)
  GET /api/records/{id}/files/{key}               its files: flood_mask, flood_probability (COGs), ...
  GET /tiles/{id}/{layer}/{z}/{x}/{y}.png         map tiles (flood, probability, sar) with cache headers
  GET /api/alerts[?aoi=&limit=]                   alert log, newest first, with deliveries
  GET /files/{path}                               output files, only from inside --outputs
Write endpoints exist only when the app is given a token, and each needs `Authorization: Bearer TOKEN`:
  POST /api/alerts/retry                          send again every alert a webhook has not acknowledged
Every bad path answers 404: nothing a request sends becomes a path outside the outputs folder, and files
are served only from the paths the runs recorded, chosen by key. HEAD is answered as GET without the body.
"""
from __future__ import annotations

import hmac
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ...errors import MonitoringError
from ...io import dumps_json
from ..plots import history_csv_text
from ..store import Store, parse_time
from .tiles import LAYERS, TileError, TileRenderer, TileUnreadable, layer_sources

STATIC = Path(__file__).parent / "static"
FALLBACK_BASEMAP = "/static/basemap/ne_110m_land_borders.geojson"
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
#: what `basemap` may say to mean "no online basemap": the bundled Natural Earth outlines only
OFFLINE = ("", "none", "offline")
#: record files that may be downloaded, and the name the download gets
DOWNLOADS = {"flood_mask": "flood_mask.tif", "flood_probability": "flood_probability.tif",
             "change_mask": "change_mask.tif", "change_score": "change_score.tif",
             "flood_polygons": "flood_polygons.geojson", "stats": "stats.json", "quicklook": "quicklook.png"}
#: a record id in a path: out of range (a bigint overflow in PostgreSQL) is a bad path, hence 404
INT64_MAX = 2 ** 63 - 1
RecordId = Annotated[int, PathParam(ge=1, le=INT64_MAX)]
TILE_CACHE_CONTROL = "public, max-age=3600"  # a re-run may rewrite a record's COG; the ETag changes with it
HISTORY_PAGE = 500
SOURCES_TTL_S = 10.0  # how long a record's files are trusted before the store is asked again (a re-run)
CSV_COLUMNS = ("acquired", "kind", "scene_id", "flooded_km2", "permanent_water_km2", "valid_km2", "coverage",
               "recorded")
log = logging.getLogger("uvicorn.error")  # where uvicorn's own lines go, so the operator sees it beside them


class StrictJSONResponse(JSONResponse):
    """JSON through `io.dumps_json`, like every JSON floodwatch writes: NaN and infinities become null (FastAPI's
    own response would fail the request on them). Routes returning data go through FastAPI's encoder first."""

    def render(self, content: Any) -> bytes:
        return dumps_json(content).encode("utf-8")


def basemap_config(basemap: str | None) -> dict[str, Any] | None:
    """None (offline outlines only) or {url, attribution} for an XYZ tile URL with {z}, {x} and {y}."""
    if basemap is None or basemap.strip().lower() in OFFLINE:
        return None
    url = basemap.strip()
    if not re.match(r"^https?://", url) or not all(k in url for k in ("{z}", "{x}", "{y}")):
        raise MonitoringError(f"basemap: '{url}' is not an http(s) XYZ tile URL with {{z}}, {{x}} and {{y}} "
                              "(or 'offline')")
    return {"url": url, "attribution": OSM_ATTRIBUTION if "openstreetmap.org" in url else ""}


def create_app(db: str | Path | None = None, outputs: str | Path | None = None,
               basemap: str | None = OSM_URL, write_token: str | None = None) -> FastAPI:
    """The app for one existing database (a path that holds none is an error, not a new empty map).

    outputs: the folder whose files (quicklooks) /files/ may serve; it must exist.
    basemap: XYZ tile URL (default OpenStreetMap), or None/'offline' for the bundled Natural Earth outlines.
    write_token: turns the write endpoints on; without it the app is read-only."""
    base = basemap_config(basemap)
    outputs_root = None
    if outputs is not None:
        outputs_root = Path(outputs).expanduser().resolve()
        if not outputs_root.is_dir():
            raise MonitoringError(f"outputs: '{outputs}' is not a folder")
    if write_token is not None and len(write_token) < 16:
        raise MonitoringError("write_token: use at least 16 characters")
    # One Store for the app: its SQLAlchemy engine pools connections and is safe across request threads,
    # and opening it here makes a bad path or URL fail at start-up rather than on the first request.
    shared = Store(db, create=False)
    # the database itself may sit inside the outputs folder (`--outputs .`): its webhook URLs carry secrets
    private = set()
    if isinstance(shared.path, Path):
        base_db = shared.path.expanduser().resolve()
        private = {base_db} | {base_db.with_name(base_db.name + s) for s in ("-journal", "-wal", "-shm")}
    renderer = TileRenderer()
    app = FastAPI(title="floodwatch monitor", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  default_response_class=StrictJSONResponse)
    app.router.on_shutdown.append(shared.close)
    app.add_middleware(HeadAsGet)
    app.state.renderer = renderer

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # a malformed path (a record id that is not a number, a tile z/x/y) names nothing: 404, like any
        # unknown path; bad query parameters keep FastAPI's 422 with the field named
        if any(e.get("loc", ("",))[0] == "path" for e in exc.errors()):
            return StrictJSONResponse({"detail": "not found"}, status_code=404)
        return StrictJSONResponse({"detail": [{k: e.get(k) for k in ("loc", "msg", "type")} for e in exc.errors()]},
                                  status_code=422)

    async def get_store() -> Store:  # async: FastAPI would run a sync dependency on a thread for nothing
        return shared

    def aoi_or_404(store: Store, name: str):
        try:
            return store.get_aoi(name)
        except MonitoringError:
            raise HTTPException(404, f"AOI '{name}' not found") from None

    def record_or_404(store: Store, record_id: int, with_floods: bool = False) -> dict[str, Any]:
        try:
            return store.record(record_id, with_floods=with_floods)
        except (MonitoringError, OverflowError):
            raise HTTPException(404, f"record {record_id} not found") from None

    def file_url(path: str | None) -> str | None:
        if not path or outputs_root is None:
            return None
        p = Path(path).resolve()
        if not p.is_relative_to(outputs_root) or not p.is_file():  # deleted since: no link to a 404
            return None
        return f"/files/{p.relative_to(outputs_root).as_posix()}"

    def public(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if k not in ("paths", "floods")}
        rid = rec["id"]
        out["quicklook_url"] = file_url(rec.get("paths", {}).get("quicklook"))
        out["layers"] = {name: f"/tiles/{rid}/{name}/{{z}}/{{x}}/{{y}}.png" for name in layer_sources(rec["paths"])}
        out["downloads"] = {"geojson": f"/api/records/{rid}/floods.geojson"} | {
            k: f"/api/records/{rid}/files/{k}" for k, v in rec["paths"].items() if k in DOWNLOADS and Path(v).is_file()}
        return out

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {"basemap": base, "fallback_basemap": FALLBACK_BASEMAP, "layers": list(LAYERS),
                "write": write_token is not None}

    @app.get("/api/aois")
    def aois(store: Store = Depends(get_store)) -> dict[str, Any]:
        features = []
        for a in store.aois():
            n = store.count_records(a.name)
            last = store.history(a.name, offset=n - 1, limit=1) if n else []
            features.append({"type": "Feature", "id": a.name, "geometry": a.geometry, "properties": {
                "name": a.name, "area_km2": a.area_km2, "threshold_km2": a.threshold_km2,
                "rise_percent": a.rise_percent, "webhooks": len(a.webhooks), "records": n,
                "latest": public(last[0]) if last else None}})
        return {"type": "FeatureCollection", "features": features}

    @app.get("/api/aois/{name}/history")
    def history(request: Request, name: str, kind: Literal["map", "change"] | None = None,
                offset: int = Query(0, ge=0, le=INT64_MAX), limit: int = Query(HISTORY_PAGE, ge=1, le=5000),
                store: Store = Depends(get_store)) -> dict[str, Any]:
        aoi = aoi_or_404(store, name)
        total = store.count_records(name, kind)
        records = [public(r) for r in store.history(name, kind=kind, offset=offset, limit=limit)]
        nxt = None
        if offset + len(records) < total:
            nxt = f"{request.url.path}?{_query(kind=kind, offset=offset + len(records), limit=limit)}"
        return {"aoi": aoi.name, "area_km2": aoi.area_km2, "threshold_km2": aoi.threshold_km2,
                "total": total, "offset": offset, "limit": limit, "next": nxt, "records": records}

    @app.get("/api/aois/{name}/history.csv")
    def history_csv(name: str, kind: Literal["map", "change"] | None = None,
                    store: Store = Depends(get_store)) -> Response:
        aoi_or_404(store, name)
        return Response(history_csv_text(store.history(name, kind=kind), CSV_COLUMNS),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}_history.csv"'})

    @app.get("/api/aois/{name}/floods")
    def floods(name: str, time: datetime | None = Query(None, description="ISO-8601; latest record if absent"),
               kind: Literal["map", "change"] | None = None, store: Store = Depends(get_store)) -> dict[str, Any]:
        aoi_or_404(store, name)
        records = store.history(name, kind=kind, with_floods=True)
        if time is not None:
            t = _utc(time)  # compared as times: as text, year 999 would sort after 2024
            records = [r for r in records if parse_time(r["acquired"]) <= t]
        if not records:
            raise HTTPException(404, f"AOI '{name}' has no record" +
                                (f" at or before {t.isoformat().replace('+00:00', 'Z')}" if time else ""))
        return _flood_collection(records[-1], public(records[-1]))

    @app.get("/api/records/{record_id}")
    def record(record_id: RecordId, store: Store = Depends(get_store)) -> dict[str, Any]:
        rec = record_or_404(store, record_id)
        out = public(rec)
        out["bounds"], out["minzoom"] = {}, {}
        for name, src in layer_sources(rec["paths"]).items():
            try:
                info = renderer.info(src)
            except Exception:  # an unreadable file: the layer is left out rather than failing the record
                out["layers"].pop(name, None)
                continue
            out["bounds"][name], out["minzoom"][name] = info["bounds"], info["minzoom"]
        return out

    @app.get("/api/records/{record_id}/floods.geojson")
    def record_floods(record_id: RecordId, store: Store = Depends(get_store)) -> StrictJSONResponse:
        rec = record_or_404(store, record_id, with_floods=True)
        fname = f"{rec['aoi']}_{rec['acquired'][:10]}_{rec['kind']}_floods.geojson"
        return StrictJSONResponse(_flood_collection(rec, public(rec)),
                                  headers={"Content-Disposition": f'attachment; filename="{fname}"'},
                                  media_type="application/geo+json")

    @app.get("/api/records/{record_id}/files/{key}")
    def record_file(record_id: RecordId, key: str, store: Store = Depends(get_store)) -> FileResponse:
        rec = record_or_404(store, record_id)
        path = rec["paths"].get(key) if key in DOWNLOADS else None
        if not path or not Path(path).is_file():
            raise HTTPException(404, f"record {record_id} has no file '{key}'")
        return FileResponse(path, filename=f"{rec['aoi']}_{rec['acquired'][:10]}_{rec['kind']}_{DOWNLOADS[key]}")

    sources: dict[int, tuple[float, dict]] = {}  # record id -> (when looked up, its layer sources)

    def sources_of(record_id: int) -> dict:
        src = layer_sources(record_or_404(shared, record_id)["paths"])
        if len(sources) > 10_000:
            sources.clear()
        sources[record_id] = (time.monotonic(), src)
        return src

    # async, unlike the other endpoints: a tile already rendered is answered on the event loop with no
    # database query and no thread hand-off; only the store lookup and rio-tiler's rendering go to threads
    @app.get("/tiles/{record_id}/{layer}/{z}/{x}/{y}.png")
    async def tile(record_id: RecordId, layer: str, z: int, x: int, y: int,
                   if_none_match: str | None = Header(None)) -> Response:
        hit = sources.get(record_id)
        srcs = hit[1] if hit and time.monotonic() - hit[0] < SOURCES_TTL_S else \
            await run_in_threadpool(sources_of, record_id)
        src = srcs.get(layer)
        if src is None:
            raise HTTPException(404, f"record {record_id} has no '{layer}' layer")
        try:
            png, etag, _ = renderer.cached(src, z, x, y)
            fresh = _etag_listed(if_none_match, etag)
            if png is None and not fresh:  # a client that holds this tile (say after a restart) gets 304 unrendered
                png, etag = await run_in_threadpool(renderer.tile, src, z, x, y)
        except TileUnreadable as exc:
            if renderer.first_failure(src):  # once a file: a map view asks for dozens of its tiles
                log.warning("web map: %s", exc)
            raise HTTPException(500, exc.brief) from None
        except TileError as exc:
            raise HTTPException(404, str(exc)) from None
        headers = {"Cache-Control": TILE_CACHE_CONTROL, "ETag": etag}
        if fresh:
            return Response(status_code=304, headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/api/alerts")
    def alerts(aoi: str | None = None, limit: int = Query(200, ge=1, le=10_000),
               store: Store = Depends(get_store)) -> list[dict[str, Any]]:
        if aoi is not None:
            aoi_or_404(store, aoi)
        return store.alerts(aoi, limit=limit)

    if write_token is not None:
        def authorised(authorization: str | None = Header(None)) -> None:
            scheme, _, given = (authorization or "").strip().partition(" ")
            ok = hmac.compare_digest(given.strip().encode(), write_token.encode())  # constant time, whatever scheme
            if not ok or scheme.lower() != "bearer":  # RFC 9110 11.1: the scheme is case-insensitive
                raise HTTPException(401, "a write needs 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})

        @app.post("/api/alerts/retry", dependencies=[Depends(authorised)])
        def retry_alerts(store: Store = Depends(get_store)) -> dict[str, int]:
            from ..alerts import retry_undelivered

            return retry_undelivered(store)

    @app.get("/files/{path:path}")
    def files(path: str) -> FileResponse:
        if outputs_root is None:
            raise HTTPException(404, "no outputs folder is served (the app was created without `outputs`)")
        try:
            target = (outputs_root / path).resolve()
            # resolve() follows '..' and symlinks, so anything escaping the outputs folder is caught here
            ok = target.is_relative_to(outputs_root) and target.is_file() and target not in private
        except (OSError, ValueError):  # a NUL byte, a name longer than the file system allows
            ok = False
        if not ok:
            raise HTTPException(404, "not found")
        return FileResponse(target)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class HeadAsGet:
    """ASGI middleware: HEAD answered as GET without the body (RFC 9110 9.3.2). FastAPI routes only the
    methods declared, so `curl -I`, link checkers and download managers would get 405; headers such as
    Content-Length are kept (uvicorn sends no body for HEAD)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message: dict) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, headers_only)


def _utc(value: datetime) -> datetime:
    """Aware, in UTC (naive is UTC); a time whose UTC falls outside years 1-9999 becomes the first or last."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


def _etag_listed(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match names this ETag: a list, compared weakly (RFC 9110 13.1.2), since a compressing proxy
    marks the ETag it passes on weak (W/"...")."""
    if not if_none_match:
        return False
    return etag in (t.strip().removeprefix("W/") for t in if_none_match.split(","))


def _query(**params: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v is not None})


def _flood_collection(rec: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "properties": props,
            "features": [{"type": "Feature", "properties": {"acquired": rec["acquired"],
                                                             "flooded_km2": rec["flooded_km2"]},
                          "geometry": rec["floods"]}] if rec["floods"].get("coordinates") else []}


def serve(db: str | Path | None = None, outputs: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8080, basemap: str | None = OSM_URL, write_token: str | None = None,
          access_log: bool = False, announce: Callable[[], Any] | None = None) -> None:
    """Run the web map with uvicorn (blocking). access_log: a line per request (a map view asks for dozens of
    tiles, so it is off by default). announce: called once every input is checked and the database open, just
    before the server starts."""
    import uvicorn

    if not 1 <= int(port) <= 65535:
        raise MonitoringError(f"port: {port} is not a TCP port (1-65535)")
    app = create_app(db, outputs, basemap, write_token)
    _check_listen(host, port)
    if announce is not None:
        announce()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)


def _check_listen(host: str, port: int) -> None:
    """uvicorn reports an unknown host or a port in use only after its start-up lines, on several lines, with
    exit status 3 (an undelivered alert elsewhere in floodwatch): asked first."""
    from ...listen import listen_problem

    problem = listen_problem(host, port)
    if problem is not None:
        raise MonitoringError(f"{problem[0]}: {problem[1]}")
