"""The Store on its own: the same semantics on SQLite and PostgreSQL (`store` / `db_url` run each test on both),
and how database URLs are read and reported."""
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box, mapping

from floodwatch.errors import MonitoringError
from floodwatch.monitoring.store import AOIRecord, Store

from postgres_helpers import PASSWORD

EMPTY = {"type": "MultiPolygon", "coordinates": []}


def _aoi(store, name="a", **kw):
    store.add_aoi(AOIRecord(name, mapping(box(13.0, 45.0, 13.1, 45.1)), 87.0, **kw))


def _record(store, scene, acquired="2024-05-02T05:00:00Z", aoi="a", km2=1.0):
    return store.add_record(aoi=aoi, acquired=acquired, scene_id=scene, kind="map", flooded_km2=km2,
                            permanent_water_km2=None, valid_km2=None, coverage=None, floods=EMPTY, paths={})


def test_once_per_event(store):
    _aoi(store, threshold_km2=1.0, webhooks=["http://127.0.0.1:9/h"])
    rid = _record(store, "s1")
    assert _record(store, "s1", km2=2.0) == rid  # re-recording the scene updates the same record
    assert store.record(rid)["flooded_km2"] == 2.0
    first = store.add_alert("a", rid, "threshold", {"x": 1})
    assert isinstance(first, int)
    assert store.add_alert("a", rid, "threshold", {"x": 2}) is None
    assert store.add_alert("a", rid, "rise", {}) not in (None, first)
    assert not store.is_processed("src", "item", "a")
    store.mark_processed("src", "item", "a")
    store.mark_processed("src", "item", "a")
    assert store.is_processed("src", "item", "a") and not store.is_processed("src", "item", "b")
    store.set_delivery(first, "http://127.0.0.1:9/h", status="failed", attempts=1, last_error="HTTP 503")
    store.set_delivery(first, "http://127.0.0.1:9/h", status="delivered", attempts=2, http_status=200)
    d = store.delivery(first, "http://127.0.0.1:9/h")
    assert (d["status"], d["attempts"], d["http_status"], d["last_error"]) == ("delivered", 2, 200, None)
    assert [a["rule"] for a in store.alerts("a")] == ["rise", "threshold"]  # newest first


def test_replace_cascades_and_ids_are_not_reused(store):
    _aoi(store)
    rid = _record(store, "s1")
    alert = store.add_alert("a", rid, "threshold", {})
    store.set_delivery(alert, "http://x/h", status="pending", attempts=0)
    with pytest.raises(MonitoringError, match="already exists"):
        _aoi(store)
    store.add_aoi(AOIRecord("a", mapping(box(13.0, 45.0, 13.2, 45.1)), 170.0, threshold_km2=3.0), replace=True)
    # records were clipped to the old geometry: replacing the AOI drops them, their alerts and deliveries
    assert store.history("a") == [] and store.alerts() == [] and store.delivery(alert, "http://x/h") is None
    assert store.get_aoi("a").threshold_km2 == 3.0
    assert _record(store, "s1") > rid
    assert store.add_alert("a", _record(store, "s2"), "threshold", {}) > alert


def test_remove_and_replace_forget_processed_items(store):
    _aoi(store)
    _aoi(store, "b")
    first = _record(store, "s1")
    store.add_alert("a", first, "threshold", {})
    for aoi in ("a", "b"):
        store.mark_processed("src", "item", aoi)
    # a new geometry must be mapped again: `aoi watch` would otherwise skip the items behind the dropped records
    store.add_aoi(AOIRecord("a", mapping(box(13.0, 45.0, 13.2, 45.1)), 170.0), replace=True)
    assert not store.is_processed("src", "item", "a") and store.is_processed("src", "item", "b")
    store.mark_processed("src", "item", "a")
    first = _record(store, "s1")
    store.remove_aoi("a")
    assert [a.name for a in store.aois()] == ["b"] and store.alerts() == [] and store.alerts("a") == []
    assert not store.is_processed("src", "item", "a") and store.is_processed("src", "item", "b")
    with pytest.raises(MonitoringError, match="not found"):
        store.record(first)
    with pytest.raises(MonitoringError, match="AOI 'a' not found"):
        store.remove_aoi("a")
    _aoi(store)  # the name is free again
    assert store.history("a") == []


def test_times_are_iso_utc_and_order_history(store):
    _aoi(store)
    cest = timezone(timedelta(hours=2))
    _record(store, "late", acquired=datetime(2024, 5, 3, 7, 30, tzinfo=cest))
    _record(store, "naive", acquired=datetime(2024, 5, 2, 5, 0))
    _record(store, "text", acquired="2024-05-01")
    hist = store.history("a")
    assert [(h["scene_id"], h["acquired"]) for h in hist] == [
        ("text", "2024-05-01T00:00:00Z"), ("naive", "2024-05-02T05:00:00Z"), ("late", "2024-05-03T05:30:00Z")]
    assert store.previous_record(hist[2]["id"])["scene_id"] == "naive"
    assert store.previous_record(hist[0]["id"]) is None
    assert store.get_aoi("a").created.endswith("Z") and hist[0]["recorded"].endswith("Z")


def test_names_sort_in_byte_order(store):
    # PostgreSQL's locale collation would put 'a' before 'B'; SQLite (and so the Store) uses byte order
    names = ["b", "B", "a_b", "a-b", "ab", "a.b", "Z9"]
    for n in names:
        _aoi(store, n)
    assert [a.name for a in store.aois()] == sorted(names)


def test_reopen_keeps_data(db_url):
    with Store(db_url) as s:
        _aoi(s, webhooks=["http://127.0.0.1:9/h"])
    with Store(db_url) as s:  # creating the tables again is a no-op
        assert s.has_aoi("a") and s.get_aoi("a").webhooks == ["http://127.0.0.1:9/h"]


def test_sqlite_paths_and_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOODWATCH_DB", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with Store() as s:  # ~/.floodwatch/floodwatch.db, folder created
        _aoi(s)
    assert (tmp_path / "home" / ".floodwatch" / "floodwatch.db").is_file()
    monkeypatch.setenv("FLOODWATCH_DB", str(tmp_path / "env.db"))
    Store().close()
    assert (tmp_path / "env.db").is_file()
    with Store(f"sqlite:///{tmp_path}/deep/er/fw.db") as s:
        assert s.path == tmp_path / "deep" / "er" / "fw.db"
    with Store(f"sqlite:///{tmp_path}/home/.floodwatch/floodwatch.db") as s:
        assert s.has_aoi("a")  # the same file by path or URL


@pytest.mark.parametrize("url,match", [
    ("mysql://u:pw@host/db", "'mysql' databases are not supported"),
    ("sqlite://", "not a sqlite:///path URL"),
    ("postgresql://u:pw@127.0.0.1:notaport/db", "not a database URL"),
    ("postgresql+nodriver://u:pw@127.0.0.1/db", "driver"),
])
def test_bad_urls_are_one_line(url, match):
    with pytest.raises(MonitoringError, match=match) as err:
        Store(url)
    assert "\n" not in str(err.value) and ":pw@" not in str(err.value)


def test_unreachable_postgres_is_one_line_without_password(tmp_path):
    pytest.importorskip("psycopg")
    from tests.ports import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(MonitoringError) as err:
        Store(f"postgres://fw:{PASSWORD}@127.0.0.1:{port}/fw")
    msg = str(err.value)
    assert msg.startswith(f"postgresql+psycopg://fw:***@127.0.0.1:{port}/fw: cannot open the monitoring database")
    assert "\n" not in msg and PASSWORD not in msg
    (tmp_path / "not_a_db").write_text("hello " * 1000)
    with pytest.raises(MonitoringError, match="not_a_db: cannot open"):
        Store(tmp_path / "not_a_db")


@pytest.mark.parametrize("password", ["p", "o", "ed"])
def test_a_short_password_is_masked_as_a_password_only(password):
    """Masking every occurrence of the password turned "port 9 failed" into "***ort 9 failed"."""
    pytest.importorskip("psycopg")
    from tests.ports import free_port

    port = free_port()
    with pytest.raises(MonitoringError) as err:
        Store(f"postgresql://u:{password}@127.0.0.1:{port}/db")
    msg = str(err.value)
    assert msg.startswith(f"postgresql+psycopg://u:***@127.0.0.1:{port}/db: cannot open the monitoring database")
    assert f"port {port} failed" in msg and "connection refused" in msg.lower() and msg.count("***") == 1


def test_the_password_is_masked_where_a_driver_echoes_it():
    from floodwatch.monitoring.store import _reason

    echoed = RuntimeError("bad dsn postgresql://u:p%40ss@h/db, or password='p@ss' port=5")
    assert _reason(echoed, "p@ss") == "bad dsn postgresql://u:***@h/db, or password='***' port=5"


def test_postgres_url_forms_and_wrong_password(pg_url):
    plain = pg_url  # postgresql://user:password@127.0.0.1:port/db
    for url in (plain, plain.replace("postgresql://", "postgres://"),
                plain.replace("postgresql://", "postgresql+psycopg://")):
        with Store(url) as s:
            assert s.dialect == "postgresql" and PASSWORD not in str(s.path) and ":***@" in str(s.path)
    with pytest.raises(MonitoringError, match="cannot open") as err:
        Store(plain.replace(PASSWORD, "wrong-" + PASSWORD))
    assert PASSWORD not in str(err.value) and "\n" not in str(err.value)


def test_a_reader_refuses_an_empty_file_and_leaves_it_empty(tmp_path):
    """`web`, `aoi list` and `aoi history` open an existing database only: an empty file (a `touch`, a failed
    copy) or another program's SQLite file is named, not given tables and shown as holding no AOI."""
    import sqlite3

    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(MonitoringError, match=r"empty\.db: not a floodwatch monitoring database"):
        Store(empty, create=False)
    assert empty.stat().st_size == 0
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(MonitoringError, match="other.db: not a floodwatch"):
        Store(other, create=False)
    with Store(empty) as store:  # a writer (aoi add) makes the tables there
        assert store.aois() == []
    with Store(empty, create=False) as store:
        assert store.aois() == []
