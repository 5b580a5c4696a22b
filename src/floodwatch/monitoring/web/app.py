"""The monitoring web map: a read-only FastAPI app over the store, with a Leaflet page bundled in the package.

JSON API:
  GET /healthz
  GET /api/aois                                  AOIs as a GeoJSON FeatureCollection (+ latest record)
  GET /api/aois/{name}/history[?kind=map|change] records, oldest first
  GET /api/aois/{name}/floods[?time=ISO&kind=]   flood polygons of the record at or before `time` (latest)
  GET /api/alerts[?aoi=&limit=]                  alert log, newest first, with deliveries
  GET /api/config                                page settings (optional local tile URL)
  GET /files/{path}                              output files (quicklooks), only from inside --outputs
Nothing a request sends becomes a path outside the outputs folder; the database is only read.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ...errors import MonitoringError
from ..store import Store, utc_iso

STATIC = Path(__file__).parent / "static"


def create_app(db: str | Path | None = None, outputs: str | Path | None = None,
               tile_url: str | None = None) -> FastAPI:
    """The app for one database; `outputs`: the folder whose files (quicklooks) may be served."""
    # One Store for the app: its SQLAlchemy engine pools connections and is safe across request threads,
    # and opening it here makes a bad path or URL fail at start-up rather than on the first request.
    shared = Store(db)
    outputs_root = Path(outputs).resolve() if outputs else None
    app = FastAPI(title="floodwatch monitor", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.router.on_shutdown.append(shared.close)

    def get_store() -> Iterator[Store]:
        yield shared

    def aoi_or_404(store: Store, name: str):
        try:
            return store.get_aoi(name)
        except MonitoringError:
            raise HTTPException(404, f"AOI '{name}' not found") from None

    def file_url(path: str | None) -> str | None:
        if not path or outputs_root is None:
            return None
        p = Path(path).resolve()
        return f"/files/{p.relative_to(outputs_root).as_posix()}" if p.is_relative_to(outputs_root) else None

    def public(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if k not in ("paths", "floods")}
        out["quicklook_url"] = file_url(rec.get("paths", {}).get("quicklook"))
        return out

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {"tile_url": tile_url}

    @app.get("/api/aois")
    def aois(store: Store = Depends(get_store)) -> dict[str, Any]:
        features = []
        for a in store.aois():
            hist = store.history(a.name)
            latest = public(hist[-1]) if hist else None
            features.append({"type": "Feature", "id": a.name, "geometry": a.geometry, "properties": {
                "name": a.name, "area_km2": a.area_km2, "threshold_km2": a.threshold_km2,
                "rise_percent": a.rise_percent, "webhooks": len(a.webhooks), "records": len(hist),
                "latest": latest}})
        return {"type": "FeatureCollection", "features": features}

    @app.get("/api/aois/{name}/history")
    def history(name: str, kind: Literal["map", "change"] | None = None,
                store: Store = Depends(get_store)) -> dict[str, Any]:
        aoi = aoi_or_404(store, name)
        return {"aoi": aoi.name, "area_km2": aoi.area_km2,
                "records": [public(r) for r in store.history(name, kind=kind)]}

    @app.get("/api/aois/{name}/floods")
    def floods(name: str, time: datetime | None = Query(None, description="ISO-8601; latest record if absent"),
               kind: Literal["map", "change"] | None = None, store: Store = Depends(get_store)) -> dict[str, Any]:
        aoi_or_404(store, name)
        records = store.history(name, kind=kind, with_floods=True)
        if time is not None:
            t = utc_iso(time)
            records = [r for r in records if r["acquired"] <= t]
        if not records:
            raise HTTPException(404, f"AOI '{name}' has no record" + (f" at or before {utc_iso(time)}" if time else ""))
        rec = records[-1]
        return {"type": "FeatureCollection", "properties": public(rec),
                "features": [{"type": "Feature", "properties": {"acquired": rec["acquired"],
                                                                 "flooded_km2": rec["flooded_km2"]},
                              "geometry": rec["floods"]}] if rec["floods"].get("coordinates") else []}

    @app.get("/api/alerts")
    def alerts(aoi: str | None = None, limit: int = Query(200, ge=1, le=10_000),
               store: Store = Depends(get_store)) -> list[dict[str, Any]]:
        if aoi is not None:
            aoi_or_404(store, aoi)
        return store.alerts(aoi, limit=limit)

    @app.get("/files/{path:path}")
    def files(path: str) -> FileResponse:
        if outputs_root is None:
            raise HTTPException(404, "no outputs folder is served (the app was created without `outputs`)")
        target = (outputs_root / path).resolve()
        # resolve() follows '..' and symlinks, so anything escaping the outputs folder is caught here
        if not target.is_relative_to(outputs_root) or not target.is_file():
            raise HTTPException(404, "not found")
        return FileResponse(target)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(db: str | Path | None = None, outputs: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8080, tile_url: str | None = None) -> None:
    """Run the web map with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(db, outputs, tile_url), host=host, port=port, log_level="info")
