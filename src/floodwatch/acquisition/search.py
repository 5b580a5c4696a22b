"""Item search on a STAC API with pystac-client: one-line errors, 429s retried with back-off."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import AccessError, AcquisitionError, RateLimitError

#: HTTP statuses that mean "you may not": 401/403 (no or bad token), 409 (Azure: public access not permitted)
DENIED = (401, 403, 409)
RETRY_STATUS = (429, 502, 503, 504)


@dataclass(frozen=True)
class Retries:
    """How often and how patiently to retry 429 (and 502-504) answers: sleeps backoff_s * 2**n seconds
    (or what the server's Retry-After says)."""
    attempts: int = 5
    backoff_s: float = 1.0


def utc_iso(dt: datetime) -> str:
    dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_time(item: Any) -> datetime:
    """An item's acquisition time (datetime, or start_datetime for ranges), timezone-aware UTC."""
    dt = item.datetime or item.common_metadata.start_datetime
    if dt is None:
        raise AcquisitionError(f"STAC item '{item.id}': no datetime")
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _stac_io(retries: Retries):
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    # status retries only: a refused connection is reported at once; POST (the search) is retried too;
    # raise_on_status=False hands the last 429 back, so the error says 429 rather than "max retries"
    retry = Retry(total=retries.attempts, connect=0, read=0, status=retries.attempts,
                  backoff_factor=retries.backoff_s, status_forcelist=RETRY_STATUS, allowed_methods=None,
                  raise_on_status=False, respect_retry_after_header=True)
    return StacApiIO(max_retries=retry)


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
    # an interval open at both ends ('../..') is a 400 on strict servers (stac-fastapi): no filter instead
    dt = None if since is None and until is None else \
        f"{utc_iso(since) if since else '..'}/{utc_iso(until) if until else '..'}"
    try:
        client = Client.open(url, stac_io=_stac_io(retries))
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
        raise _api_error(exc, label, access, retries) from None
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


def _api_error(exc: Any, label: str, access: str, retries: Retries) -> AcquisitionError:
    code = getattr(exc, "status_code", None)
    if code in DENIED:
        return AccessError(f"{label}: access denied (HTTP {code}); it needs {access}")
    if code == 429:
        return RateLimitError(f"{label}: rate limited (HTTP 429) after {retries.attempts} retries with back-off; "
                              "wait a few minutes and run again")
    return AcquisitionError(f"{label}: search failed (APIError: {_one_line(exc)})")
