"""The monitoring database: AOIs, per-acquisition flood records, processed STAC items, alerts.

SQLAlchemy Core over SQLite (a file path or `sqlite:///path`: one file, fine for a laptop or a small server)
or PostgreSQL (`postgresql://user:pass@host/db`, through psycopg 3, for several writers or a shared server).
Times are stored as ISO-8601 UTC strings so that text order is time order; JSON fields are stored as text.
SQLAlchemy is imported on first use, so `floodwatch change` without --acquired works without the extra.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Iterator

from ..errors import InvalidArgumentError, MonitoringError
from ..io import dumps_json, require_file

DEFAULT_DB = Path("~/.floodwatch/floodwatch.db")
SCHEMES = "a file path, sqlite:///path or postgresql://user:password@host/db"
#: Sentinel-1A's launch: no Sentinel-1 acquisition is older
SENTINEL1_LAUNCH = datetime(2014, 4, 3, tzinfo=timezone.utc)
#: how far ahead of this machine's clock an acquisition time may be (a clock or time zone off by hours)
FUTURE_TOLERANCE = timedelta(days=1)


def utc_iso(value: datetime | str) -> str:
    """A datetime (naive = UTC) or ISO string -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    if isinstance(value, str):
        value = parse_time(value, "time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # %Y does not pad years before 1000 on glibc ('999-01-01'): text that would sort after '2024-...'
    return f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field_name: str = "time") -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise MonitoringError(f"{field_name}: '{text}' is not an ISO-8601 date or time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def acquisition_time(value: datetime | str, field_name: str = "acquired") -> str:
    """utc_iso of a Sentinel-1 acquisition time; one before Sentinel-1's launch or in the future is an error
    naming `field_name` (a mistyped year would otherwise file the run far from its place in a time series)."""
    dt = parse_time(value, field_name) if isinstance(value, str) else value
    dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    if dt < SENTINEL1_LAUNCH:
        raise MonitoringError(f"{field_name}: {utc_iso(dt)} is before Sentinel-1's launch "
                              f"({SENTINEL1_LAUNCH:%Y-%m-%d})")
    if dt > datetime.now(timezone.utc) + FUTURE_TOLERANCE:
        raise MonitoringError(f"{field_name}: {utc_iso(dt)} is in the future")
    return utc_iso(dt)


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


@functools.cache
def _schema() -> SimpleNamespace:
    """The tables (built on first use, see the module docstring). Column names and constraints match the
    earlier sqlite3 schema, so existing database files open unchanged."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    # byte-order text in PostgreSQL, as in SQLite: names and ISO times sort the same on both
    key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
    md = sa.MetaData()
    aois = sa.Table(
        "aois", md,
        sa.Column("name", key, primary_key=True),
        sa.Column("geometry", sa.Text, nullable=False),  # GeoJSON geometry, EPSG:4326
        sa.Column("area_km2", sa.Float, nullable=False),
        sa.Column("threshold_km2", sa.Float),
        sa.Column("rise_percent", sa.Float),
        sa.Column("webhooks", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created", sa.Text, nullable=False))
    records = sa.Table(
        "records", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("aoi", key, sa.ForeignKey("aois.name", ondelete="CASCADE"), nullable=False),
        sa.Column("acquired", key, nullable=False),
        sa.Column("scene_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),  # 'map' or 'change'
        sa.Column("flooded_km2", sa.Float, nullable=False),
        sa.Column("permanent_water_km2", sa.Float),
        sa.Column("valid_km2", sa.Float),
        sa.Column("coverage", sa.Float),  # valid_km2 / AOI area
        sa.Column("floods", sa.Text, nullable=False),  # flood polygons clipped to the AOI, GeoJSON geometry
        sa.Column("paths", sa.Text, nullable=False, server_default="{}"),  # output files of the run
        sa.Column("recorded", sa.Text, nullable=False),
        sa.UniqueConstraint("aoi", "scene_id", "kind"),
        sa.Index("records_time", "aoi", "acquired"),
        sqlite_autoincrement=True)  # ids are never reused, as before
    processed = sa.Table(
        "processed_items", md,
        sa.Column("source", sa.Text, primary_key=True), sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("aoi", sa.Text, primary_key=True), sa.Column("processed", sa.Text, nullable=False))
    alerts = sa.Table(
        "alerts", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("aoi", sa.Text, nullable=False),
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.UniqueConstraint("aoi", "record_id", "rule"),  # an event raises its alert once
        sqlite_autoincrement=True)
    deliveries = sa.Table(
        "deliveries", md,
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("target", key, primary_key=True),  # webhook URL
        sa.Column("status", sa.Text, nullable=False),  # 'pending', 'delivered', 'failed'
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("http_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("updated", sa.Text, nullable=False))
    return SimpleNamespace(metadata=md, aois=aois, records=records, processed=processed, alerts=alerts,
                           deliveries=deliveries)


def _scheme(text: str) -> str:
    return text.split("://")[0].split("+")[0].lower() if "://" in text else "file"


def _db_text(url_or_path: str | os.PathLike | None) -> str:
    """The database's path or URL as text (None: the default). Anything else is an error naming the argument:
    str() of it would make a SQLite file named after a dict."""
    if url_or_path is None:
        return str(default_db_path())
    text = os.fspath(url_or_path) if isinstance(url_or_path, os.PathLike) else url_or_path
    if not isinstance(text, str):
        raise InvalidArgumentError(f"url_or_path: expected a database file path or URL ({SCHEMES}), got "
                                   f"{type(url_or_path).__name__}")
    return text


def sqlite_path(url_or_path: str | os.PathLike | None) -> Path | None:
    """The file of a SQLite database (a path or sqlite:///path; None: the default), or None for a server URL."""
    text = _db_text(url_or_path)
    scheme = _scheme(text)
    if scheme not in ("file", "sqlite"):
        return None
    if scheme == "sqlite" and not text.startswith("sqlite:///"):
        raise MonitoringError(f"db: '{text}' is not a sqlite:///path URL")
    return Path(text[len("sqlite:///"):] if scheme == "sqlite" else text).expanduser()


def _engine(url_or_path: str | os.PathLike | None, create: bool = True) -> tuple[Any, Path | str]:
    """(engine, what to call the database in messages: the file, or the URL with its password hidden).
    `create`: a SQLite file (and its folder) that does not exist yet is made; else it is an error."""
    import sqlalchemy as sa

    text = _db_text(url_or_path)
    scheme, path = _scheme(text), sqlite_path(text)
    if path is not None:
        if not create:
            require_file(path, "monitoring database", error=MonitoringError)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MonitoringError(f"{path}: cannot open the monitoring database ({exc})") from None
        engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)),
                                  connect_args={"timeout": 30, "check_same_thread": False})
        # SQLite enforces ON DELETE CASCADE only with this pragma, per connection
        sa.event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys = ON"))
        return engine, path
    if scheme not in ("postgresql", "postgres"):
        raise MonitoringError(f"db: '{scheme}' databases are not supported (use {SCHEMES})")
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise MonitoringError(f"db: not a database URL (use {SCHEMES})") from None  # may hold a password
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # the driver the monitor extra installs
    shown = url.render_as_string(hide_password=True)
    try:
        return sa.create_engine(url, pool_pre_ping=True), shown
    except (ImportError, sa.exc.ArgumentError):  # ArgumentError: an unknown '+driver'
        raise MonitoringError(f"{shown}: database driver '{url.get_driver_name()}' is not available (use "
                              "postgresql:// with pip install 'floodwatch[monitor]')") from None


def _reason(exc: Exception, password: str | None) -> str:
    """The driver's message, first line only, password removed (drivers may echo connection strings).

    Only where it stands as a password (`:password@` of a URL, `password=` of a libpq string), as given or
    URL-quoted: replacing every occurrence would mask words of the message that contain a short password."""
    import re
    from urllib.parse import quote

    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = text[0] if text else type(exc).__name__
    if not password:
        return text
    forms = "|".join(re.escape(p) for p in {password, quote(password, safe="")})
    text = re.sub(rf":(?:{forms})@", ":***@", text)
    return re.sub(rf"(password\s*=\s*'?)(?:{forms})(?=['\s]|$)", r"\1***", text)


class Store:
    """`Store(path_or_url)`: open (and create) the monitoring database. Use as a context manager or call close().
    `create=False` opens an existing SQLite file only (a reader such as the web map: a mistyped path would
    otherwise show an empty database).

    `path` is the SQLite file, or the PostgreSQL URL with its password hidden (what messages show)."""

    def __init__(self, url_or_path: str | os.PathLike | None = None, create: bool = True):
        try:
            import sqlalchemy as sa
        except ImportError:
            raise MonitoringError("the monitoring database needs SQLAlchemy: pip install 'floodwatch[monitor]'") \
                from None
        self._sa, self.tables = sa, _schema()
        self.engine, self.path = _engine(url_or_path, create)
        self.dialect = self.engine.dialect.name  # 'sqlite' or 'postgresql'
        try:
            if not create and isinstance(self.path, Path) and not sa.inspect(self.engine).has_table("aois"):
                # an empty file (or another program's SQLite file): a reader would make tables in it and show nothing
                self.engine.dispose()
                raise MonitoringError(f"{self.path}: not a floodwatch monitoring database (it has no AOI table; "
                                      "`aoi add` makes one there)")
            self.tables.metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise MonitoringError(f"{self.path}: cannot open the monitoring database "
                                  f"({_reason(exc, self.engine.url.password)})") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _insert(self, table):
        """The dialect's INSERT, which has on_conflict_do_nothing / on_conflict_do_update."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _rows(self, stmt) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def _first(self, stmt) -> dict[str, Any] | None:
        rows = self._rows(stmt.limit(1))
        return rows[0] if rows else None

    # -- AOIs ---------------------------------------------------------------------------------------
    def add_aoi(self, aoi: AOIRecord, replace: bool = False) -> None:
        """Add an AOI; `replace` removes the old one first (see remove_aoi): its records were clipped to the
        old geometry, and the STAC items behind them are to be mapped again over the new one."""
        t, sa = self.tables.aois, self._sa
        values = dict(name=aoi.name, geometry=dumps_json(aoi.geometry), area_km2=aoi.area_km2,
                      threshold_km2=aoi.threshold_km2, rise_percent=aoi.rise_percent,
                      webhooks=dumps_json(aoi.webhooks), created=aoi.created or now_iso())
        try:
            with self.engine.begin() as conn:
                if replace:
                    self._delete_aoi(conn, aoi.name)
                conn.execute(t.insert().values(**values))
        except sa.exc.IntegrityError:
            raise MonitoringError(f"AOI '{aoi.name}' already exists (use `replace`)") from None

    def remove_aoi(self, name: str) -> None:
        """Delete AOI `name` with everything recorded under it: records, alerts and their deliveries (the
        schema cascades) and the STAC items `aoi watch` marked as processed for it."""
        self.get_aoi(name)  # an unknown name is an error, not a silent no-op
        with self.engine.begin() as conn:
            self._delete_aoi(conn, name)

    def _delete_aoi(self, conn, name: str) -> None:
        processed, aois = self.tables.processed, self.tables.aois
        conn.execute(processed.delete().where(processed.c.aoi == name))  # no foreign key: keyed by name alone
        conn.execute(aois.delete().where(aois.c.name == name))

    def aois(self) -> list[AOIRecord]:
        t = self.tables.aois
        return [self._aoi(r) for r in self._rows(t.select().order_by(t.c.name))]

    def get_aoi(self, name: str) -> AOIRecord:
        t = self.tables.aois
        row = self._first(t.select().where(t.c.name == name))
        if row is None:
            names = [r["name"] for r in self._rows(self._sa.select(t.c.name).order_by(t.c.name).limit(6))]
            known = f"known: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" if names else "it holds none"
            raise MonitoringError(f"AOI '{name}' not found in {self.path} ({known})")
        return self._aoi(row)

    def has_aoi(self, name: str) -> bool:
        t = self.tables.aois
        return self._first(self._sa.select(t.c.name).where(t.c.name == name)) is not None

    @staticmethod
    def _aoi(row: dict[str, Any]) -> AOIRecord:
        return AOIRecord(name=row["name"], geometry=json.loads(row["geometry"]), area_km2=row["area_km2"],
                         threshold_km2=row["threshold_km2"], rise_percent=row["rise_percent"],
                         webhooks=json.loads(row["webhooks"]), created=row["created"])

    # -- records ------------------------------------------------------------------------------------
    def add_record(self, *, aoi: str, acquired: datetime | str, scene_id: str, kind: str, flooded_km2: float,
                   permanent_water_km2: float | None, valid_km2: float | None, coverage: float | None,
                   floods: dict[str, Any], paths: dict[str, Any]) -> int:
        """Insert or update (same AOI, scene and kind: a re-run replaces the numbers); returns the record id."""
        return self.add_records([dict(aoi=aoi, acquired=acquired, scene_id=scene_id, kind=kind,
                                      flooded_km2=flooded_km2, permanent_water_km2=permanent_water_km2,
                                      valid_km2=valid_km2, coverage=coverage, floods=floods, paths=paths)])[0]

    def add_records(self, records: list[dict[str, Any]]) -> list[int]:
        """add_record for each of `records` (dicts of its arguments) in one transaction: all or none."""
        t = self.tables.records
        ids = []
        with self.engine.begin() as conn:
            for r in records:
                numbers = dict(acquired=utc_iso(r["acquired"]), flooded_km2=float(r["flooded_km2"]),
                               permanent_water_km2=r["permanent_water_km2"], valid_km2=r["valid_km2"],
                               coverage=r["coverage"], floods=dumps_json(r["floods"]),
                               paths=dumps_json({k: str(v) for k, v in r["paths"].items()}), recorded=now_iso())
                key = dict(aoi=r["aoi"], scene_id=r["scene_id"], kind=r["kind"])
                stmt = self._insert(t).values(**key, **numbers)
                conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.aoi, t.c.scene_id, t.c.kind],
                                                        set_={k: stmt.excluded[k] for k in numbers}))
                # a second SELECT, not RETURNING: SQLite before 3.35 has no RETURNING
                ids.append(int(conn.execute(self._sa.select(t.c.id).where(
                    *(t.c[k] == v for k, v in key.items()))).scalar_one()))
        return ids

    def find_record(self, aoi: str, scene_id: str, kind: str) -> dict[str, Any] | None:
        """The record of this AOI, scene and kind (the one add_record would update), without floods; or None."""
        t = self.tables.records
        row = self._first(t.select().where(t.c.aoi == aoi, t.c.scene_id == scene_id, t.c.kind == kind))
        return None if row is None else self._record(row, False)

    def history(self, aoi: str, kind: str | None = None, with_floods: bool = False, offset: int = 0,
                limit: int | None = None) -> list[dict[str, Any]]:
        """Records of one AOI, oldest first; `offset`/`limit` page through them (the web API does)."""
        self.get_aoi(aoi)
        t = self.tables.records
        stmt = t.select().where(t.c.aoi == aoi)
        if kind:
            stmt = stmt.where(t.c.kind == kind)
        stmt = stmt.order_by(t.c.acquired, t.c.id).offset(int(offset))
        if limit is not None:
            stmt = stmt.limit(int(limit))
        return [self._record(r, with_floods) for r in self._rows(stmt)]

    def count_records(self, aoi: str, kind: str | None = None) -> int:
        t, sa = self.tables.records, self._sa
        stmt = sa.select(sa.func.count()).select_from(t).where(t.c.aoi == aoi)
        if kind:
            stmt = stmt.where(t.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def record(self, record_id: int, with_floods: bool = True) -> dict[str, Any]:
        t = self.tables.records
        row = self._first(t.select().where(t.c.id == int(record_id)))
        if row is None:
            raise MonitoringError(f"record {record_id} not found")
        return self._record(row, with_floods)

    def previous_record(self, record_id: int) -> dict[str, Any] | None:
        """The same AOI's record of the same kind acquired just before this one that saw some of it: a pass
        with no valid pixels there (valid_km2 0) measured nothing, not 0 km² of flood."""
        cur, t, sa = self.record(record_id, with_floods=False), self.tables.records, self._sa
        earlier = sa.or_(t.c.acquired < cur["acquired"],
                         sa.and_(t.c.acquired == cur["acquired"], t.c.id < int(record_id)))
        saw = sa.or_(t.c.valid_km2.is_(None), t.c.valid_km2 > 0)  # None: a record that did not say
        row = self._first(t.select().where(t.c.aoi == cur["aoi"], t.c.kind == cur["kind"], earlier, saw)
                          .order_by(t.c.acquired.desc(), t.c.id.desc()))
        return None if row is None else self._record(row, False)

    @staticmethod
    def _record(row: dict[str, Any], with_floods: bool) -> dict[str, Any]:
        d = dict(row)
        d["paths"] = json.loads(d["paths"])
        floods = d.pop("floods")
        if with_floods:
            d["floods"] = json.loads(floods)
        return d

    # -- processed STAC items -------------------------------------------------------------------------
    def is_processed(self, source: str, item_id: str, aoi: str) -> bool:
        t = self.tables.processed
        return self._first(self._sa.select(t.c.item_id).where(
            t.c.source == source, t.c.item_id == item_id, t.c.aoi == aoi)) is not None

    def mark_processed(self, source: str, item_id: str, aoi: str) -> None:
        stmt = self._insert(self.tables.processed).values(source=source, item_id=item_id, aoi=aoi, processed=now_iso())
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing())

    # -- alerts ---------------------------------------------------------------------------------------
    def add_alert(self, aoi: str, record_id: int, rule: str, message: dict[str, Any]) -> int | None:
        """Create the alert once; returns its id, or None when this event was already raised."""
        t = self.tables.alerts
        stmt = self._insert(t).values(aoi=aoi, record_id=record_id, rule=rule, message=dumps_json(message),
                                      created=now_iso()).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            if self.engine.dialect.insert_returning:  # rowcount is unreliable once RETURNING is implicit (PG)
                return conn.execute(stmt.returning(t.c.id)).scalar_one_or_none()
            if not conn.execute(stmt).rowcount:  # SQLite < 3.35
                return None
            return int(conn.execute(self._sa.select(t.c.id).where(
                t.c.aoi == aoi, t.c.record_id == record_id, t.c.rule == rule)).scalar_one())

    def set_delivery(self, alert_id: int, target: str, *, status: str, attempts: int,
                     http_status: int | None = None, last_error: str | None = None) -> None:
        t = self.tables.deliveries
        state = dict(status=status, attempts=attempts, http_status=http_status, last_error=last_error,
                     updated=now_iso())
        stmt = self._insert(t).values(alert_id=alert_id, target=target, **state)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.alert_id, t.c.target],
                                                    set_={k: stmt.excluded[k] for k in state}))

    def delivery(self, alert_id: int, target: str) -> dict[str, Any] | None:
        t = self.tables.deliveries
        return self._first(t.select().where(t.c.alert_id == alert_id, t.c.target == target))

    def alerts(self, aoi: str | None = None, limit: int = 200,
               record_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Newest first, each with its acquisition time and delivery records; of one AOI, or of these records."""
        a, r, d, sa = self.tables.alerts, self.tables.records, self.tables.deliveries, self._sa
        stmt = sa.select(a, r.c.acquired, r.c.scene_id).join(r, r.c.id == a.c.record_id)
        if aoi:
            stmt = stmt.where(a.c.aoi == aoi)
        if record_ids is not None:
            stmt = stmt.where(a.c.record_id.in_([int(i) for i in record_ids]))
        with self.engine.connect() as conn:  # one connection: the alerts and their deliveries agree
            out = [dict(row) for row in conn.execute(stmt.order_by(a.c.id.desc()).limit(int(limit))).mappings()]
            for x in out:
                x["message"] = json.loads(x["message"])
                x["deliveries"] = [dict(row) for row in conn.execute(
                    sa.select(d.c.target, d.c.status, d.c.attempts, d.c.http_status, d.c.last_error, d.c.updated)
                    .where(d.c.alert_id == x["id"]).order_by(d.c.target)).mappings()]
        return out

    def iter_undelivered(self, record_ids: Iterable[int] | None = None) -> Iterator[tuple[dict[str, Any], str]]:
        """(alert, webhook) pairs not yet delivered, for a later retry pass; only these records' alerts if given."""
        webhooks: dict[str, list[str]] = {}
        for a in self.alerts(limit=10_000, record_ids=record_ids):
            done = {d["target"] for d in a["deliveries"] if d["status"] == "delivered"}
            if a["aoi"] not in webhooks:
                webhooks[a["aoi"]] = self.get_aoi(a["aoi"]).webhooks
            for hook in webhooks[a["aoi"]]:
                if hook not in done:
                    yield a, hook
