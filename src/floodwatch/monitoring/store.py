"""The monitoring database: AOIs, per-acquisition flood records, processed STAC items, alerts.

Plain `sqlite3` (standard library, one file, safe for a laptop or a small server). Only SQLite is
supported: a `sqlite:///path` URL or a file path. Times are stored as ISO-8601 UTC strings so that
text order is time order.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..errors import MonitoringError

DEFAULT_DB = Path("~/.floodwatch/floodwatch.db")

SCHEMA = """
CREATE TABLE IF NOT EXISTS aois (
    name TEXT PRIMARY KEY,
    geometry TEXT NOT NULL,            -- GeoJSON geometry, EPSG:4326
    area_km2 REAL NOT NULL,
    threshold_km2 REAL,
    rise_percent REAL,
    webhooks TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    aoi TEXT NOT NULL REFERENCES aois(name) ON DELETE CASCADE,
    acquired TEXT NOT NULL,
    scene_id TEXT NOT NULL,
    kind TEXT NOT NULL,                -- 'map' or 'change'
    flooded_km2 REAL NOT NULL,
    permanent_water_km2 REAL,
    valid_km2 REAL,
    coverage REAL,                     -- valid_km2 / AOI area
    floods TEXT NOT NULL,              -- flood polygons clipped to the AOI, GeoJSON geometry
    paths TEXT NOT NULL DEFAULT '{}',  -- output files of the run
    recorded TEXT NOT NULL,
    UNIQUE (aoi, scene_id, kind)
);
CREATE INDEX IF NOT EXISTS records_time ON records (aoi, acquired);
CREATE TABLE IF NOT EXISTS processed_items (
    source TEXT NOT NULL, item_id TEXT NOT NULL, aoi TEXT NOT NULL, processed TEXT NOT NULL,
    PRIMARY KEY (source, item_id, aoi)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    aoi TEXT NOT NULL,
    record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (aoi, record_id, rule)
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    target TEXT NOT NULL,              -- webhook URL
    status TEXT NOT NULL,              -- 'pending', 'delivered', 'failed'
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    last_error TEXT,
    updated TEXT NOT NULL,
    PRIMARY KEY (alert_id, target)
);
"""


def utc_iso(value: datetime | str) -> str:
    """A datetime (naive = UTC) or ISO string -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    if isinstance(value, str):
        value = parse_time(value, "time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field_name: str = "time") -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise MonitoringError(f"{field_name}: '{text}' is not an ISO-8601 date or time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def now_iso() -> str:
    return utc_iso(datetime.now(timezone.utc))


def default_db_path() -> Path:
    """`FLOODWATCH_DB` if set, else ~/.floodwatch/floodwatch.db."""
    return Path(os.environ.get("FLOODWATCH_DB") or DEFAULT_DB).expanduser()


@dataclass
class AOIRecord:
    name: str
    geometry: dict[str, Any]
    area_km2: float
    threshold_km2: float | None = None
    rise_percent: float | None = None
    webhooks: list[str] = field(default_factory=list)
    created: str = ""


class Store:
    """`Store(path_or_url)`: open (and create) the monitoring database. Use as a context manager or call close()."""

    def __init__(self, url_or_path: str | os.PathLike | None = None):
        path = default_db_path() if url_or_path is None else url_or_path
        text = str(path)
        if "://" in text:
            if not text.startswith("sqlite:///"):
                raise MonitoringError(f"--db: '{text.split('://')[0]}' databases are not supported (use a "
                                      "file path or sqlite:///path)")
            text = text[len("sqlite:///"):]
        self.path = Path(text).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.executescript(SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise MonitoringError(f"{self.path}: cannot open the monitoring database ({exc})") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self.conn:  # one transaction per write: committed, or rolled back on error
            return self.conn.execute(sql, params)

    # -- AOIs ---------------------------------------------------------------------------------------
    def add_aoi(self, aoi: AOIRecord, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            self._write(f"{verb} INTO aois (name, geometry, area_km2, threshold_km2, rise_percent, webhooks, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (aoi.name, json.dumps(aoi.geometry), aoi.area_km2, aoi.threshold_km2, aoi.rise_percent,
                         json.dumps(aoi.webhooks), aoi.created or now_iso()))
        except sqlite3.IntegrityError:
            raise MonitoringError(f"AOI '{aoi.name}' already exists (use --replace)") from None

    def aois(self) -> list[AOIRecord]:
        return [self._aoi(r) for r in self.conn.execute("SELECT * FROM aois ORDER BY name")]

    def get_aoi(self, name: str) -> AOIRecord:
        row = self.conn.execute("SELECT * FROM aois WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise MonitoringError(f"AOI '{name}' not found (floodwatch aoi list shows the known ones)")
        return self._aoi(row)

    def has_aoi(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM aois WHERE name = ?", (name,)).fetchone() is not None

    @staticmethod
    def _aoi(row: sqlite3.Row) -> AOIRecord:
        return AOIRecord(name=row["name"], geometry=json.loads(row["geometry"]), area_km2=row["area_km2"],
                         threshold_km2=row["threshold_km2"], rise_percent=row["rise_percent"],
                         webhooks=json.loads(row["webhooks"]), created=row["created"])

    # -- records ------------------------------------------------------------------------------------
    def add_record(self, *, aoi: str, acquired: datetime | str, scene_id: str, kind: str, flooded_km2: float,
                   permanent_water_km2: float | None, valid_km2: float | None, coverage: float | None,
                   floods: dict[str, Any], paths: dict[str, Any]) -> int:
        """Insert or update (same AOI, scene and kind: a re-run replaces the numbers); returns the record id."""
        params = (aoi, utc_iso(acquired), scene_id, kind, float(flooded_km2), permanent_water_km2, valid_km2,
                  coverage, json.dumps(floods), json.dumps({k: str(v) for k, v in paths.items()}), now_iso())
        with self.conn:
            self.conn.execute(
                "INSERT INTO records (aoi, acquired, scene_id, kind, flooded_km2, permanent_water_km2, valid_km2,"
                " coverage, floods, paths, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (aoi, scene_id, kind) DO UPDATE SET acquired = excluded.acquired,"
                " flooded_km2 = excluded.flooded_km2, permanent_water_km2 = excluded.permanent_water_km2,"
                " valid_km2 = excluded.valid_km2, coverage = excluded.coverage, floods = excluded.floods,"
                " paths = excluded.paths, recorded = excluded.recorded", params)
            row = self.conn.execute("SELECT id FROM records WHERE aoi = ? AND scene_id = ? AND kind = ?",
                                    (aoi, scene_id, kind)).fetchone()
        return int(row["id"])

    def history(self, aoi: str, kind: str | None = None, with_floods: bool = False) -> list[dict[str, Any]]:
        """Records of one AOI, oldest first."""
        self.get_aoi(aoi)
        sql, params = "SELECT * FROM records WHERE aoi = ?", [aoi]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.conn.execute(sql + " ORDER BY acquired, id", params).fetchall()
        return [self._record(r, with_floods) for r in rows]

    def record(self, record_id: int, with_floods: bool = True) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise MonitoringError(f"record {record_id} not found")
        return self._record(row, with_floods)

    def previous_record(self, record_id: int) -> dict[str, Any] | None:
        """The same AOI's record of the same kind acquired just before this one."""
        cur = self.record(record_id, with_floods=False)
        row = self.conn.execute(
            "SELECT * FROM records WHERE aoi = ? AND kind = ? AND (acquired < ? OR (acquired = ? AND id < ?))"
            " ORDER BY acquired DESC, id DESC LIMIT 1",
            (cur["aoi"], cur["kind"], cur["acquired"], cur["acquired"], record_id)).fetchone()
        return None if row is None else self._record(row, False)

    @staticmethod
    def _record(row: sqlite3.Row, with_floods: bool) -> dict[str, Any]:
        d = dict(row)
        d["paths"] = json.loads(d["paths"])
        floods = d.pop("floods")
        if with_floods:
            d["floods"] = json.loads(floods)
        return d

    # -- processed STAC items -------------------------------------------------------------------------
    def is_processed(self, source: str, item_id: str, aoi: str) -> bool:
        return self.conn.execute("SELECT 1 FROM processed_items WHERE source = ? AND item_id = ? AND aoi = ?",
                                 (source, item_id, aoi)).fetchone() is not None

    def mark_processed(self, source: str, item_id: str, aoi: str) -> None:
        self._write("INSERT OR IGNORE INTO processed_items VALUES (?, ?, ?, ?)", (source, item_id, aoi, now_iso()))

    # -- alerts ---------------------------------------------------------------------------------------
    def add_alert(self, aoi: str, record_id: int, rule: str, message: dict[str, Any]) -> int | None:
        """Create the alert once; returns its id, or None when this event was already raised."""
        with self.conn:
            cur = self.conn.execute("INSERT OR IGNORE INTO alerts (aoi, record_id, rule, message, created)"
                                    " VALUES (?, ?, ?, ?, ?)", (aoi, record_id, rule, json.dumps(message), now_iso()))
            return cur.lastrowid if cur.rowcount else None

    def set_delivery(self, alert_id: int, target: str, *, status: str, attempts: int,
                     http_status: int | None = None, last_error: str | None = None) -> None:
        self._write("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (alert_id, target, status, attempts, http_status, last_error, now_iso()))

    def delivery(self, alert_id: int, target: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM deliveries WHERE alert_id = ? AND target = ?",
                                (alert_id, target)).fetchone()
        return None if row is None else dict(row)

    def alerts(self, aoi: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first, each with its acquisition time and delivery records."""
        sql = ("SELECT a.*, r.acquired, r.scene_id FROM alerts a JOIN records r ON r.id = a.record_id"
               + (" WHERE a.aoi = ?" if aoi else "") + " ORDER BY a.id DESC LIMIT ?")
        rows = self.conn.execute(sql, ((aoi,) if aoi else ()) + (int(limit),)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["message"] = json.loads(d["message"])
            d["deliveries"] = [dict(x) for x in self.conn.execute(
                "SELECT target, status, attempts, http_status, last_error, updated FROM deliveries"
                " WHERE alert_id = ? ORDER BY target", (r["id"],))]
            out.append(d)
        return out

    def iter_undelivered(self) -> Iterator[tuple[dict[str, Any], str]]:
        """(alert, webhook) pairs not yet delivered, for a later retry pass."""
        for a in self.alerts(limit=10_000):
            done = {d["target"] for d in a["deliveries"] if d["status"] == "delivered"}
            for hook in self.get_aoi(a["aoi"]).webhooks:
                if hook not in done:
                    yield a, hook
