"""Alert rules per AOI, and their delivery to webhooks.

Rules (both optional, set by `aoi add`):
  threshold   flooded km² inside the AOI goes above `threshold_km2`: the first acquisition above it, or one above
              it after an acquisition at or below it (one alert per crossing, not one per pass while it stays);
  rise        flooded km² up by at least `rise_percent` % since the AOI's previous acquisition that saw
              some of it (from zero to anything above zero counts as a rise).
For a change run the km² is new water. Messages carry `coverage`, the share of the AOI the run saw (and the
previous one's for a rise): a run that saw more of the AOI measures more km² without the water rising.
An event is (AOI, record, rule): the store keeps it unique, so re-recording or re-checking a run never
alerts twice. Each webhook gets a JSON POST, retried with exponential backoff; every delivery's status
and number of attempts is stored, and undelivered ones can be retried later (`retry_undelivered`).
"""
from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from ..errors import MonitoringError
from ..io import dumps_json
from .store import Store

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5


def evaluate_rules(store: Store, record_id: int) -> list[tuple[str, dict[str, Any]]]:
    """[(rule, message)] of the rules this record triggers (no side effects)."""
    rec = store.record(record_id, with_floods=False)
    aoi = store.get_aoi(rec["aoi"])
    base = {"aoi": aoi.name, "acquired": rec["acquired"], "scene_id": rec["scene_id"], "kind": rec["kind"],
            "flooded_km2": round(rec["flooded_km2"], 6), "coverage": _share(rec["coverage"]), "record_id": record_id}
    # a change run's km² is water new since its before scene, not all the flood there is
    flooded, area = ("of new water", "new-water area") if rec["kind"] == "change" else ("flooded", "flooded area")
    fired = []
    prev = store.previous_record(record_id)
    # a crossing, not a level: a flood that stays above the threshold for weeks is one alert, not one a pass
    if (aoi.threshold_km2 is not None and rec["flooded_km2"] > aoi.threshold_km2
            and (prev is None or prev["flooded_km2"] <= aoi.threshold_km2)):
        fired.append(("threshold", {**base, "rule": "threshold", "threshold_km2": aoi.threshold_km2,
                                    "text": f"{aoi.name}: {rec['flooded_km2']:.3f} km² {flooded} on {rec['acquired']} "
                                            f"(above {aoi.threshold_km2:g} km²)"}))
    if aoi.rise_percent is not None and rec["valid_km2"] != 0:  # a pass that saw none of the AOI rose nothing
        if prev is not None:
            before, now = prev["flooded_km2"], rec["flooded_km2"]
            rise = (now - before) / before * 100 if before > 0 else (float("inf") if now > 0 else 0.0)
            if rise >= aoi.rise_percent and now > before:
                # more of the AOI seen is more km² without any rise of the water: say so beside the numbers
                seen = (f" (AOI covered {prev['coverage']:.0%} then {rec['coverage']:.0%})"
                        if None not in (prev["coverage"], rec["coverage"])
                        and abs(prev["coverage"] - rec["coverage"]) >= 0.05 else "")
                fired.append(("rise", {**base, "rule": "rise", "rise_percent": aoi.rise_percent,
                                       "previous_km2": round(before, 6), "previous_acquired": prev["acquired"],
                                       "previous_coverage": _share(prev["coverage"]),
                                       "observed_rise_percent": None if rise == float("inf") else round(rise, 2),
                                       "text": f"{aoi.name}: {area} rose from {before:.3f} to {now:.3f} km² "
                                               f"between {prev['acquired']} and {rec['acquired']}{seen}"}))
    return fired


def _share(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def check_webhook(url: str) -> str:
    """`url` stripped, if a POST can be sent to it: http(s), a host without spaces, a port in 1-65535. Else a
    MonitoringError naming it, now rather than a failure (or a crash) at every alert."""
    if not isinstance(url, str):
        raise MonitoringError(f"webhooks: {url!r} is not a URL")
    url = url.strip()
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise MonitoringError(f"webhooks: '{url}' is not a valid URL ({exc})") from None
    if any(c.isspace() for c in url):  # httpx would send to the host 'exa%20mple.com'
        raise MonitoringError(f"webhooks: '{url}' holds white space; a URL has none (%20 in a path)")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise MonitoringError(f"webhooks: '{url}' is not an http(s) URL with a host")
    if port is not None and not 1 <= port <= 65535:
        raise MonitoringError(f"webhooks: '{url}': port {port} is not a TCP port (1-65535)")
    return url


def shown_url(url: str) -> str:
    """`url` as printed: scheme, host and port only. Webhook URLs often carry their secret in the user info,
    path or query (e.g. a chat service's hook token), and terminal output ends up in logs."""
    try:
        u = httpx.URL(url)
        hidden = "/…" if (u.userinfo or u.path not in ("", "/") or u.query) else ""
        return f"{u.scheme}://{u.host}{f':{u.port}' if u.port else ''}{hidden}"
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(an unparsable URL)"


def deliver(store: Store, alert_id: int, url: str, message: dict[str, Any], *, client: httpx.Client | None = None,
            retries: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S, timeout_s: float = 10.0) -> bool:
    """POST `message` to `url`, retrying 5xx / network errors with backoff; record the outcome. 4xx is final."""
    own = client is None
    client = client or httpx.Client(timeout=timeout_s)
    previous = store.delivery(alert_id, url)
    attempts = previous["attempts"] if previous else 0
    status, code, error = "failed", None, None
    try:
        for i in range(max(1, retries)):
            if i:
                time.sleep(backoff_s * 2 ** (i - 1))
            attempts += 1
            try:
                resp = client.post(url, content=dumps_json(message), headers={"Content-Type": "application/json"})
                code = resp.status_code
                if resp.is_success:
                    status, error = "delivered", None
                    break
                error = f"HTTP {code}"
                if resp.has_redirect_location:  # not followed: a POST redirected elsewhere may be a trap or lost
                    target = resp.next_request.url if resp.next_request else resp.headers.get("location", "")
                    error += f" redirect to {shown_url(str(target))}; webhooks are not redirected: give the final URL"
                if resp.status_code < 500 and resp.status_code != 429:
                    break  # the receiver rejects the message: retrying will not help
            except httpx.HTTPError as exc:
                code, error = None, f"{type(exc).__name__}: {exc}"
            except httpx.InvalidURL as exc:  # not an HTTPError: an unusable stored URL fails its delivery, not the run
                code, error = None, f"invalid URL: {exc}"
                break
    finally:
        if own:
            client.close()
    store.set_delivery(alert_id, url, status=status, attempts=attempts, http_status=code, last_error=error)
    return status == "delivered"


def check_alerts(store: Store, record_id: int, *, console: Console | None = None, client: httpx.Client | None = None,
                 retries: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S) -> list[int]:
    """Raise the alerts a record triggers (once each), print them and send them; returns new alert ids."""
    console = console or Console(stderr=True)
    new_ids = []
    for rule, message in evaluate_rules(store, record_id):
        alert_id = store.add_alert(message["aoi"], record_id, rule, message)
        if alert_id is None:
            continue  # this event was raised before
        new_ids.append(alert_id)
        console.print(f"[bold yellow]ALERT[/] {escape(message['text'])}", highlight=False, soft_wrap=True)
        hooks = store.get_aoi(message["aoi"]).webhooks
        for url in hooks:
            ok = deliver(store, alert_id, url, message, client=client, retries=retries, backoff_s=backoff_s)
            if not ok:
                d = store.delivery(alert_id, url)
                console.print(f"[red]webhook {escape(_hook_name(hooks, url))} failed after {_attempts(d['attempts'])}: "
                              f"{escape(str(d['last_error']))}[/]",
                              highlight=False, soft_wrap=True)  # one line each, however narrow the terminal
    return new_ids


def _hook_name(hooks: list[str], url: str) -> str:
    """'#2 of 3 (scheme://host:port/…)': the AOI's hooks often share a host, and their paths are not shown."""
    number = f"#{hooks.index(url) + 1} of {len(hooks)} " if url in hooks and len(hooks) > 1 else ""
    return f"{number}({shown_url(url)})" if number else shown_url(url)


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def undelivered(store: Store, record_ids: list[int]) -> int:
    """How many (alert, webhook) deliveries of these records' alerts have not gone through (yet)."""
    return sum(1 for _ in store.iter_undelivered(record_ids))


def retry_undelivered(store: Store, *, client: httpx.Client | None = None, retries: int = DEFAULT_RETRIES,
                      backoff_s: float = DEFAULT_BACKOFF_S, console: Console | None = None) -> dict[str, int]:
    """Try again every (alert, webhook) not delivered yet; returns counts of delivered / still failing. With
    `console`, each delivery still failing is printed on one line: which AOI's alert, which webhook, why."""
    counts = {"delivered": 0, "failed": 0}
    hooks: dict[str, list[str]] = {}
    for alert, url in list(store.iter_undelivered()):
        ok = deliver(store, alert["id"], url, alert["message"], client=client, retries=retries, backoff_s=backoff_s)
        counts["delivered" if ok else "failed"] += 1
        if not ok and console is not None:
            d = store.delivery(alert["id"], url)
            hooks.setdefault(alert["aoi"], store.get_aoi(alert["aoi"]).webhooks)
            hook = _hook_name(hooks[alert["aoi"]], url)
            console.print(escape(f"alert {alert['id']} ({alert['aoi']}, {alert['rule']}, {alert['acquired']}): "
                                 f"webhook {hook} still failing after {_attempts(d['attempts'])} in all: "
                                 f"{d['last_error']}"), highlight=False, soft_wrap=True)
    return counts
