"""A loopback Planetary Computer: the STAC API of stac_helpers serving generated `sentinel-1-rtc` items, a
SAS token endpoint (403 without a subscription key when the collection requires an account) and blob
storage that serves files only to signed URLs (range requests counted)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import s1_items

SIG = "sig=TESTSIGNATURE"
TOKEN = f"st=2024-01-01T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&{SIG}"
KEY = "test-subscription-key"
EPSG = 32633
X0, Y1 = 400000.0, 5000000.0
SIZE = 512
OVERLAP = 24  # rows shared by item A (north) and item B (south)
EDGE = 8  # A's last rows are nodata (swath edge): the mosaic must take B there
DAY1 = datetime(2024, 4, 19, 4, 58, 1, 720055, tzinfo=timezone.utc)
DAY2 = datetime(2024, 5, 1, 4, 58, 2, tzinfo=timezone.utc)
WATER = (300, 100, 500, 300)  # rows/cols of item A that are water on DAY2 (dark)


@dataclass
class FakePC:
    api: object
    files: str
    root: Path
    items: list
    arrays: dict = field(default_factory=dict)  # item id -> (vv, vh) linear power as written (nodata -32768)
    token_requests: list = field(default_factory=list)

    def bounds(self, item_id: str) -> tuple:
        return next(i for i in self.items if i["id"] == item_id)["properties"]["proj:bbox"]


def _bounds(row_off: int) -> tuple:
    y1 = Y1 - row_off * s1_items.RES
    return (X0, y1 - SIZE * s1_items.RES, X0 + SIZE * s1_items.RES, y1)


def start(stac_api, file_server, root: Path, monkeypatch, *, requires_account: bool = True) -> FakePC:
    """Generate items A and B (DAY1, one pass, overlapping rows) and C (DAY2, over A, with water)."""
    root.mkdir(parents=True, exist_ok=True)
    files = file_server(root, require_query=SIG)
    specs = [("S1A_IW_GRDH_1SDV_20240419T045749_20240419T045814_053498_067DF2_rtc", DAY1, 0, 1),
             ("S1A_IW_GRDH_1SDV_20240419T045814_20240419T045839_053498_067DF2_rtc", DAY1 + timedelta(seconds=25),
              SIZE - OVERLAP, 2),
             ("S1A_IW_GRDH_1SDV_20240501T045751_20240501T045816_053673_067DF2_rtc", DAY2, 0, 3)]
    items, arrays = [], {}
    for item_id, when, row_off, seed in specs:
        item = s1_items.rtc_item(item_id, when, EPSG, _bounds(row_off), files)
        vv = s1_items.linear_field(SIZE, SIZE, seed, WATER if when == DAY2 else None)
        vh = vv * 0.2
        if row_off == 0 and when == DAY1:
            vv[-EDGE:], vh[-EDGE:] = s1_items.NODATA, s1_items.NODATA
        s1_items.write_item_cogs(root, item, vv, vh)
        items.append(item)
        arrays[item_id] = (vv, vh)
    api = stac_api([s1_items.rtc_collection(requires_account)], items, page_size=2)
    pc = FakePC(api, files, root, items, arrays)

    def token(method, path, headers):
        pc.token_requests.append((path, headers.get("Ocp-Apim-Subscription-Key")))
        if requires_account and headers.get("Ocp-Apim-Subscription-Key") != KEY:
            return 403, {"statusCode": 403, "message": "This collection requires a subscription key"}
        return 200, {"msft:expiry": "2099-01-01T00:00:00Z", "token": TOKEN}

    api.routes["/api/sas/v1/token/"] = token
    monkeypatch.setenv("PC_SDK_SAS_URL", f"{api.url}/api/sas/v1/token")
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", KEY)
    import planetary_computer.sas

    monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
    return pc


def expected_db(pc: FakePC, grid, ids: list[str]) -> np.ndarray:
    """Reference mosaic on `grid` by plain indexing: the first item (in `ids` order) with data wins; dB."""
    out = np.full((2, grid.height, grid.width), np.nan, np.float64)
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    xs = grid.transform.c + (cols + 0.5) * grid.transform.a
    ys = grid.transform.f + (rows + 0.5) * grid.transform.e
    for item_id in ids:
        x0, _, _, y1 = pc.bounds(item_id)
        r = np.floor((y1 - ys) / s1_items.RES).astype(int)
        c = np.floor((xs - x0) / s1_items.RES).astype(int)
        inside = (r >= 0) & (r < SIZE) & (c >= 0) & (c < SIZE)
        for b, arr in enumerate(pc.arrays[item_id]):
            vals = np.full(r.shape, np.nan)
            vals[inside] = arr[r[inside], c[inside]]
            vals[vals == s1_items.NODATA] = np.nan
            fill = np.isnan(out[b]) & ~np.isnan(vals)
            out[b][fill] = vals[fill]
    return 10 * np.log10(out)


def utm_aoi(x0, y0, x1, y1):
    from shapely.geometry import box

    from floodwatch.monitoring.geo import to_wgs84

    return to_wgs84(box(x0, y0, x1, y1), f"EPSG:{EPSG}")


def fail_reads(monkeypatch, item_id: str, status: int = 503) -> None:
    """Storage answers `status` to every request for `item_id`'s files; the other items' are served."""
    import monitoring_helpers

    serve = monitoring_helpers.RangeHandler.send_head
    name = item_id.removesuffix("_rtc")  # the blob paths hold the scene's name

    def send_head(self):
        if name not in self.path:
            return serve(self)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    monkeypatch.setattr(monitoring_helpers.RangeHandler, "send_head", send_head)
