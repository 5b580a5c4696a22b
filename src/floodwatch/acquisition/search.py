"""Item search on a STAC API with pystac-client: one-line errors, 429s retried with back-off."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import AccessError, AcquisitionError, RateLimitError

#: HTTP statuses that mean "you may not": 401/403 (no or bad token), 409 (Azure: public access not permitted)
DENIED = (401, 403, 409)
RETRY_STATUS = (429, 502, 503, 504)


@dataclass(frozen=True)
class Retries:
    """How often and how patiently to retry 429 (and 502-504) answers: sleeps backoff_s * 2**n seconds, or what
    the server's Retry-After says up to `max_wait_s` (a longer wait ends the retries at once, with the wait in
    the message, rather than a silent sleep of an hour). `timeout_s`: the most one request may take to connect,
    and then between two reads (a server that accepts and never answers would otherwise hang a cron job)."""
    attempts: int = 5
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    timeout_s: float = 60.0


def utc_iso(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_interval(since: datetime | None, until: datetime | None) -> str | None:
    """The search's datetime filter, in whole seconds that hold [since, until]: `until` is rounded up (a day's
    end is 23:59:59.999999, and an item at 23:59:59.5 would be left out by the server), and the items found are
    then kept by their exact times (`matches`). An interval open at both ends ('../..') is a 400 on strict
    servers (stac-fastapi): no filter instead."""
    if since is None and until is None:
        return None
    if until is not None and until.microsecond:
        until = until.replace(microsecond=0) + timedelta(seconds=1)
    return f"{utc_iso(since) if since else '..'}/{utc_iso(until) if until else '..'}"


def item_time(item: Any) -> datetime:
    """An item's acquisition time (datetime, or start_datetime for ranges), timezone-aware UTC."""
    dt = item.datetime or item.common_metadata.start_datetime
    if dt is None:
        raise AcquisitionError(f"STAC item '{item.id}': no datetime")
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class _BadAnswer(ValueError):
    """An answer that is not a JSON object, said with what it was instead."""


def _stac_io(retries: Retries):
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry
    from urllib3.exceptions import MaxRetryError, ResponseError

    class CappedRetry(Retry):
        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            wait = self.get_retry_after(response) if response is not None else None
            if wait is not None and wait > retries.max_wait_s:  # the answer goes back as it is (raise_on_status)
                raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:g} s"))
            return super().increment(method, url, response, error, _pool, _stacktrace)

    class StacIO(StacApiIO):
        answer: dict = {}  # the last HTTP answer's URL (no query), status and headers, for the messages

        def json_loads(self, txt: str, *args, **kwargs):
            try:
                doc = super().json_loads(txt, *args, **kwargs)
            except ValueError as exc:
                kind = self.answer.get("type") or "none"
                if "json" in kind.lower():
                    raise _BadAnswer(f"{self.answer.get('url')} answered with invalid JSON ({exc})") from None
                start = " ".join(txt.split())[:80]
                raise _BadAnswer(f"{self.answer.get('url')} answered with something that is not JSON "
                                 f"(Content-Type {kind}: '{start}')") from None
            if not isinstance(doc, dict):
                raise _BadAnswer(f"{self.answer.get('url')} answered with a JSON {type(doc).__name__}, "
                                 "not a STAC object")
            return doc

    # status retries only: a refused connection is reported at once; POST (the search) is retried too;
    # raise_on_status=False hands the last 429 back, so the error says 429 rather than "max retries"
    retry = CappedRetry(total=retries.attempts, connect=0, read=0, status=retries.attempts,
                         backoff_factor=retries.backoff_s, status_forcelist=RETRY_STATUS, allowed_methods=None,
                         raise_on_status=False, respect_retry_after_header=True)
    io = StacIO(max_retries=retry, timeout=retries.timeout_s)

    def note(response, *args, **kwargs):
        io.answer = {"url": response.url.split("?")[0], "status": response.status_code,
                     "type": response.headers.get("Content-Type"), "retry_after": response.headers.get("Retry-After")}

    io.session.hooks["response"].append(note)
    return io


def search_api(url: str, collection: str, aoi: BaseGeometry, since: datetime | None = None,
               until: datetime | None = None, *, label: str | None = None, access: str = "an account or token",
               retries: Retries = Retries()) -> tuple[dict, list[Any]]:
    """(collection JSON, pystac Items of `collection` whose footprint meets `aoi` (EPSG:4326) in [since, until]).

    pystac-client follows the `next` links of every page. `label` starts every error message (default: url);
    `access` says what a 401/403/409 means the user lacks.
    """
    try:
        import pystac
        from pystac_client import Client
    except ImportError:
        raise AcquisitionError("pystac-client is not installed: pip install 'floodwatch[fetch]'") from None
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import PystacClientWarning  # DoesNotConformTo is raised, not only warned

    label = label or url
    dt = search_interval(since, until)
    io = _stac_io(retries)
    try:
        client = Client.open(url, stac_io=io, timeout=retries.timeout_s)  # open() sets the io's timeout anew
        coll = client.get_collection(collection)
        # an unknown collection is an empty search on most APIs: say so instead
        if coll is None:
            raise AcquisitionError(f"collection: '{collection}' not found in {url}")
        # POST is optional in the spec (a search link without `method` is GET); GET cannot carry a geometry
        # everywhere, so it sends the AOI's bbox and the footprints are checked below
        methods = {link.extra_fields.get("method") or "GET" for link in client.links if link.rel == "search"}
        if "POST" in methods:
            search = client.search(collections=[collection], intersects=mapping(aoi), datetime=dt, method="POST")
        else:
            search = client.search(collections=[collection], bbox=list(aoi.bounds), datetime=dt, method="GET")
        items = list(search.items())
    except APIError as exc:
        raise _api_error(exc, label, access, retries, io.answer) from None
    except _BadAnswer as exc:
        raise AcquisitionError(f"{label}: search failed: {exc}") from None
    except (OSError, ValueError, pystac.STACError, pystac.STACTypeError, PystacClientWarning) as exc:
        raise AcquisitionError(f"{label}: search failed ({type(exc).__name__}: {_one_line(exc)})") from None
    coll_doc = coll.to_dict(include_self_link=False)
    # the footprint and time checks again: a bbox search, or a lax server, may return more
    kept = [i for i in items if matches(i, aoi, since, until, collection)]
    return coll_doc, sorted(kept, key=lambda i: (item_time(i), i.id))


def matches(item: Any, aoi: BaseGeometry, since: datetime | None, until: datetime | None,
            collection: str | None = None) -> bool:
    """The item's footprint meets the AOI, it was acquired in [since, until] (and is in `collection`)."""
    if not item.geometry or not shape(item.geometry).intersects(aoi):
        return False
    if collection is not None and item.collection_id not in (None, collection):
        return False
    t = item_time(item)
    return (since is None or t >= since) and (until is None or t <= until)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or "no detail"  # servers answer with multi-line JSON or HTML


def _api_error(exc: Any, label: str, access: str, retries: Retries, answer: dict) -> AcquisitionError:
    code = getattr(exc, "status_code", None)
    if code in DENIED:
        return AccessError(f"{label}: access denied (HTTP {code}); it needs {access}")
    wait = answer.get("retry_after") if answer.get("status") == code else None
    if code == 429 and wait is not None and _seconds(wait) > retries.max_wait_s:
        wait = f"{wait} s" if wait.strip().isdigit() else f"until {wait}"
        return RateLimitError(f"{label}: rate limited (HTTP 429); the server asks to wait {wait} (Retry-After), "
                              f"longer than floodwatch waits ({retries.max_wait_s:g} s): run again after that")
    if code == 429:
        return RateLimitError(f"{label}: rate limited (HTTP 429) after {retries.attempts} retries with back-off; "
                              "wait a few minutes and run again")
    text = _one_line(re.sub(r"<[^>]*>", " ", str(exc)))  # an HTML error page: its text
    if code is not None:
        again = f" after {retries.attempts} retries" if code in RETRY_STATUS else ""
        return AcquisitionError(f"{label}: search failed (HTTP {code}{again}: {text})")
    # requests' connection errors nest urllib3's three deep: the cause is what to say
    for marker, said in (("timed out", f"no answer within {retries.timeout_s:g} s"),
                         ("Connection refused", "connection refused"),
                         ("resolve", "host not found"), ("Name or service not known", "host not found")):
        if marker in text:
            return AcquisitionError(f"{label}: search failed ({said})")
    return AcquisitionError(f"{label}: search failed ({text})")


def _seconds(retry_after: str) -> float:
    """A Retry-After value (seconds, or an HTTP date) in seconds from now, read as the retries read it (urllib3);
    0 for one it cannot read."""
    from urllib3 import Retry
    from urllib3.exceptions import InvalidHeader

    try:
        return Retry().parse_retry_after(retry_after)
    except InvalidHeader:
        return 0.0
