import pytest
from shapely.geometry import box, mapping

from floodwatch.monitoring.aoi import add_aoi
from floodwatch.monitoring.alerts import check_alerts, retry_undelivered

EMPTY = {"type": "MultiPolygon", "coordinates": []}
AOI = mapping(box(13.0, 45.0, 13.1, 45.1))


def _record(store, day, km2):
    return store.add_record(aoi="a", acquired=f"2024-05-{day:02d}", scene_id=f"s{day}", kind="map",
                            flooded_km2=km2, permanent_water_km2=0, valid_km2=10, coverage=1, floods=EMPTY,
                            paths={})


def test_threshold_fires_once_and_is_delivered(store, receiver):
    add_aoi(store, "a", AOI, threshold_km2=5.0, webhooks=[receiver.url])
    low, high = _record(store, 1, 4.0), _record(store, 2, 6.0)
    assert check_alerts(store, low, backoff_s=0) == []
    ids = check_alerts(store, high, backoff_s=0)
    assert len(ids) == 1 and len(receiver.received) == 1
    msg = receiver.received[0]
    assert msg["rule"] == "threshold" and msg["flooded_km2"] == 6.0 and msg["aoi"] == "a"
    # the same event again (re-check, or the same scene re-recorded): no second alert
    assert check_alerts(store, high, backoff_s=0) == []
    _record(store, 2, 6.0)
    assert check_alerts(store, high, backoff_s=0) == [] and len(receiver.received) == 1
    alert = store.alerts("a")[0]
    assert alert["deliveries"][0]["status"] == "delivered" and alert["deliveries"][0]["attempts"] == 1


def test_rise_rule(store, receiver):
    add_aoi(store, "a", AOI, rise_percent=50, webhooks=[receiver.url])
    r1, r2, r3, r4 = _record(store, 1, 0.0), _record(store, 2, 2.0), _record(store, 3, 2.9), _record(store, 4, 4.5)
    assert check_alerts(store, r1, backoff_s=0) == []       # no previous acquisition
    assert len(check_alerts(store, r2, backoff_s=0)) == 1   # 0 -> 2 km²
    assert check_alerts(store, r3, backoff_s=0) == []       # +45 %
    assert len(check_alerts(store, r4, backoff_s=0)) == 1   # +55 %
    assert [m["rule"] for m in receiver.received] == ["rise", "rise"]
    assert receiver.received[1]["previous_km2"] == 2.9
    assert receiver.received[1]["observed_rise_percent"] == pytest.approx(55.17, abs=0.01)


def test_failing_receiver_is_retried(store, receiver):
    receiver.fail_first = 2
    add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=[receiver.url])
    check_alerts(store, _record(store, 1, 3.0), retries=3, backoff_s=0.01)
    d = store.alerts("a")[0]["deliveries"][0]
    assert (d["status"], d["attempts"], d["http_status"]) == ("delivered", 3, 200)
    assert receiver.hits == 3 and len(receiver.received) == 1


def test_undelivered_then_retried_later(store, receiver):
    receiver.fail_first = 5
    add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=[receiver.url])
    check_alerts(store, _record(store, 1, 3.0), retries=2, backoff_s=0.01)
    d = store.alerts("a")[0]["deliveries"][0]
    assert (d["status"], d["attempts"], d["last_error"]) == ("failed", 2, "HTTP 503")
    assert retry_undelivered(store, retries=2, backoff_s=0.01) == {"delivered": 0, "failed": 1}
    assert retry_undelivered(store, retries=2, backoff_s=0.01) == {"delivered": 1, "failed": 0}
    d = store.alerts("a")[0]["deliveries"][0]
    assert (d["status"], d["attempts"]) == ("delivered", 6)
    assert retry_undelivered(store) == {"delivered": 0, "failed": 0}
    assert len(receiver.received) == 1


def test_unreachable_webhook_is_recorded(store):
    add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=["http://127.0.0.1:1/hook"])
    check_alerts(store, _record(store, 1, 3.0), retries=2, backoff_s=0.01)
    d = store.alerts("a")[0]["deliveries"][0]
    assert d["status"] == "failed" and d["attempts"] == 2 and "Connect" in d["last_error"]
