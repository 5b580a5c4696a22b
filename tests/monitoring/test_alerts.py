import dataclasses
import io

import pytest
from rich.console import Console
from shapely.geometry import box, mapping

from floodwatch.monitoring.aoi import add_aoi
from floodwatch.errors import MonitoringError
from floodwatch.monitoring.alerts import check_alerts, check_webhook, retry_undelivered

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


def test_unparsable_webhook_fails_its_delivery_not_the_run(store):
    # an AOI stored before add_aoi checked URLs with httpx: httpx raised InvalidURL (no HTTPError) from the
    # record, leaving no delivery row
    aoi = add_aoi(store, "a", AOI, threshold_km2=1.0)
    store.add_aoi(dataclasses.replace(aoi, webhooks=["http://[::1/hook"]), replace=True)
    assert len(check_alerts(store, _record(store, 1, 3.0), backoff_s=0)) == 1
    d = store.alerts("a")[0]["deliveries"][0]
    assert d["status"] == "failed" and d["attempts"] == 1 and "invalid URL" in d["last_error"]
    assert retry_undelivered(store, backoff_s=0) == {"delivered": 0, "failed": 1}


@pytest.mark.parametrize("url", ["http://[::1/hook", "http://127.0.0.1:99999/hook", "https://exa mple.com/hook",
                                 "ftp://host/hook", "http:///hook", "not a url"])
def test_check_webhook_refuses(url):
    with pytest.raises(MonitoringError, match="webhooks: '"):
        check_webhook(url)


def test_check_webhook_takes_http_urls():
    assert check_webhook(" https://hooks.example.org:8443/a?b=c ") == "https://hooks.example.org:8443/a?b=c"
    assert check_webhook("http://127.0.0.1:1/hook") == "http://127.0.0.1:1/hook"
    assert check_webhook("HTTP://127.0.0.1/hook") == "HTTP://127.0.0.1/hook"  # schemes are case-blind


def test_the_library_checks_webhooks_as_the_cli_does(store):
    # add_aoi is the API a notebook calls: a URL that can never be posted to is refused there too
    with pytest.raises(MonitoringError, match="port 99999"):
        add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=["http://127.0.0.1:99999/x"])
    assert add_aoi(store, "b", AOI, threshold_km2=1.0, webhooks=[" HTTP://127.0.0.1/hook "]).webhooks == \
        ["HTTP://127.0.0.1/hook"]


def _seen(store, day, km2, coverage, kind="map"):
    return store.add_record(aoi="a", acquired=f"2024-05-{day:02d}", scene_id=f"s{day}", kind=kind,
                            flooded_km2=km2, permanent_water_km2=None, valid_km2=10 * coverage, coverage=coverage,
                            floods=EMPTY, paths={})


def test_rise_message_says_how_much_of_the_aoi_each_run_saw(store, receiver):
    # an edge-of-swath run then a full one: 'rose from 1 to 4 km²' alone read as the flood quadrupling
    add_aoi(store, "a", AOI, rise_percent=50, webhooks=[receiver.url])
    check_alerts(store, _seen(store, 1, 1.0, 0.25), backoff_s=0)
    check_alerts(store, _seen(store, 2, 4.0, 1.0), backoff_s=0)
    msg = receiver.received[0]
    assert (msg["coverage"], msg["previous_coverage"]) == (1.0, 0.25)
    assert "AOI covered 25% then 100%" in msg["text"]


def test_a_pass_that_saw_none_of_the_aoi_neither_rises_nor_is_risen_from(store, receiver):
    # 12 km², then a pass with no valid pixels there (0 km² of 0 seen), then 12.5 km² again: no rise
    add_aoi(store, "a", AOI, rise_percent=50, webhooks=[receiver.url])
    seen = _seen(store, 1, 12.0, 1.0)
    blind = store.add_record(aoi="a", acquired="2024-05-02", scene_id="s2", kind="map", flooded_km2=0.0,
                             permanent_water_km2=0, valid_km2=0.0, coverage=0.0, floods=EMPTY, paths={})
    again = _seen(store, 3, 12.5, 1.0)
    for record in (seen, blind, again):
        assert check_alerts(store, record, backoff_s=0) == []
    assert store.previous_record(again)["scene_id"] == "s1" and receiver.received == []
    assert len(check_alerts(store, _seen(store, 4, 20.0, 1.0), backoff_s=0)) == 1  # a real rise still fires


def test_change_alert_speaks_of_new_water(store, receiver):
    add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=[receiver.url])
    check_alerts(store, _seen(store, 1, 3.0, 1.0, kind="change"), backoff_s=0)
    msg = receiver.received[0]
    assert msg["kind"] == "change" and "3.000 km² of new water on" in msg["text"]


def test_a_failed_webhook_is_named_without_its_secret(store):
    # chat services' hooks carry their token in the path; a failure line ends up in logs
    hook = "http://user:pw@127.0.0.1:9/services/T00/B00/SECRETTOKEN?key=SECRET2"
    add_aoi(store, "a", AOI, threshold_km2=1.0, webhooks=[hook])
    out = io.StringIO()
    check_alerts(store, _record(store, 1, 3.0), backoff_s=0, retries=0,
                 console=Console(file=out, width=300, color_system=None))
    printed = out.getvalue()
    assert "webhook http://127.0.0.1:9/… failed" in printed
    assert "SECRET" not in printed and "pw" not in printed
