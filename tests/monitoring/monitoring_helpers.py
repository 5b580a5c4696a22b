"""Fixtures for monitoring tests: synthetic before/after scenes with known new water, a fake water model,
and loopback HTTP servers (a webhook receiver that can fail first, a range-capable static file server)."""
from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer, BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from scipy import ndimage

from floodwatch.data.preprocess import Preprocessing
from floodwatch.data.synthetic import synth_scene

UTM = "EPSG:32633"
ORIGIN = (400000.0, 5000000.0)  # ~45.1 N, 13.7 E


def independent_speckle(sample, seed: int, looks: float = 4.0):
    """Multiply in fresh gamma speckle, so two dates do not share the same noise (as real dates do not)."""
    rng = np.random.default_rng(seed)
    g = rng.gamma(looks, 1.0 / looks, size=sample.image.shape).astype(np.float32)
    sample.image = (sample.image + 10 * np.log10(g)).astype(np.float32)
    return sample


def scene_pair(size: int = 96, seed: int = 3, before_fraction: float = 0.1, after_fraction: float = 0.3,
               origin=ORIGIN, crs=UTM):
    """(before, after, truth): same terrain, more water after; truth = water after and not before."""
    before = synth_scene(size, size, seed=seed, water_fraction=before_fraction, crs=crs, origin=origin,
                         id="before")
    after = synth_scene(size, size, seed=seed, water_fraction=after_fraction, crs=crs, origin=origin, id="after")
    independent_speckle(before, seed + 100)
    independent_speckle(after, seed + 200)
    truth = (after.mask == 1) & (before.mask == 0)
    return before, after, truth


class DarkWaterPredictor:
    """A stand-in water model: smoothed VV below -14 dB is water (soft, through a logistic)."""

    def __init__(self, preprocessing: Preprocessing | None = None, channels_seen: list | None = None):
        self.preprocessing = preprocessing or Preprocessing()
        self.meta = {"model_config": {"temporal": "single"}}
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        pre = self.preprocessing
        vv_db = batch[:, 0] / pre.scale[0] + pre.offset[0]
        vv_db = ndimage.uniform_filter(vv_db, size=(1, 5, 5))
        return (1 / (1 + np.exp((vv_db + 14.0) * 2))).astype(np.float32)


@pytest.fixture
def pair():
    return scene_pair()


@pytest.fixture
def predictor():
    return DarkWaterPredictor()


# -- loopback HTTP servers --------------------------------------------------------------------------------
@dataclass
class Receiver:
    url: str
    received: list = field(default_factory=list)
    fail_first: int = 0
    status_when_failing: int = 503
    hits: int = 0


@contextlib.contextmanager
def serving(handler_cls) -> Iterator[str]:
    """An HTTP server for `handler_cls` on a free loopback port, as its base URL; stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback; set .fail_first = n to answer the first n POSTs with 503."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.hits += 1
            if state.hits <= state.fail_first:
                self.send_response(state.status_when_failing)
                self.end_headers()
                return
            state.received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    with serving(Handler) as base:
        state.url = base + "/hook"
        yield state


class RangeHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range `Range: bytes=a-b` requests (what GDAL's /vsicurl/ sends).

    Every range served is logged in `range_requests`, every whole-file GET in `full_requests`. With
    `require_query` set, files are served only to URLs whose query holds it (a signed URL); others get the
    409 PublicAccessNotPermitted that Azure blob storage answers."""

    range_requests: list = []
    full_requests: list = []
    faults: list = []  # statuses to answer the next requests with (e.g. [429]), consumed in order
    require_query: str | None = None

    def send_head(self):
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if RangeHandler.faults:
            self.send_response(RangeHandler.faults.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.require_query and self.require_query not in self.path.partition("?")[2]:
            body = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>PublicAccessNotPermitted</Code>'
                    b'<Message>Public access is not permitted on this storage account.</Message></Error>')
            self.send_response(409)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        if not rng and path.is_file() and self.command == "GET":
            RangeHandler.full_requests.append((self.path, 0, path.stat().st_size - 1))
        if not rng or not path.is_file():
            return super().send_head()
        m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
        size = path.stat().st_size
        if not m:
            self.send_error(416)
            return None
        start = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
        end = min(int(m.group(2)), size - 1) if m.group(1) and m.group(2) else size - 1
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        RangeHandler.range_requests.append((self.path, start, end))
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return _Limited(f, end - start + 1)

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def log_message(self, *args):
        pass


class _Limited:
    """A file object that yields at most n bytes (copyfile reads until EOF)."""

    def __init__(self, f, n):
        self.f, self.n = f, n

    def read(self, size=-1):
        if self.n <= 0:
            return b""
        size = self.n if size is None or size < 0 else min(size, self.n)
        data = self.f.read(size)
        self.n -= len(data)
        return data

    def close(self):
        self.f.close()


@pytest.fixture
def file_server():
    """Serve a folder on loopback with HTTP range support: yields a function (folder, require_query=None) ->
    base URL (see RangeHandler for require_query)."""
    with contextlib.ExitStack() as servers:
        def start(folder: Path, require_query: str | None = None) -> str:
            handler = type("Handler", (RangeHandler,), {"__init__": lambda self, *a, **k: RangeHandler.__init__(
                self, *a, directory=str(folder), **k), "require_query": require_query})
            RangeHandler.range_requests = []
            RangeHandler.full_requests = []
            RangeHandler.faults = []
            return servers.enter_context(serving(handler))

        yield start


def utm_box_ll(x0, y0, x1, y1, crs=UTM):
    """A UTM rectangle as a lon/lat GeoJSON polygon (densified so its edges follow the projection)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, 4326, always_xy=True)
    xs = np.concatenate([np.linspace(x0, x1, 20), np.full(20, x1), np.linspace(x1, x0, 20), np.full(20, x0)])
    ys = np.concatenate([np.full(20, y0), np.linspace(y0, y1, 20), np.full(20, y1), np.linspace(y1, y0, 20)])
    lon, lat = tr.transform(xs, ys)
    return {"type": "Polygon", "coordinates": [list(zip(lon, lat)) + [(lon[0], lat[0])]]}


WEST_HALF = utm_box_ll(ORIGIN[0], ORIGIN[1] - 960, ORIGIN[0] + 480, ORIGIN[1])  # columns 0-47 of 96 px


def recorded_store(tmp_path: Path, predictor=None) -> tuple[Path, Path]:
    """(database, outputs folder) with AOI 'west' and two mapped acquisitions (less, then more water),
    recorded through mapping.map_scene + record_map_result; the second fires a threshold alert."""
    from floodwatch.data.synthetic import write_scene
    from floodwatch.mapping import map_scene
    from floodwatch.monitoring.aoi import add_aoi, record_map_result
    from floodwatch.monitoring.store import Store

    predictor = predictor or DarkWaterPredictor()
    before, after, _ = scene_pair()
    db, outputs = tmp_path / "fw.db", tmp_path / "outputs"
    with Store(db) as store:
        add_aoi(store, "west", WEST_HALF, threshold_km2=0.05)
        add_aoi(store, "east", utm_box_ll(ORIGIN[0] + 480, ORIGIN[1] - 960, ORIGIN[0] + 960, ORIGIN[1]))
        for s, day in ((before, "2024-05-01T05:00:00Z"), (after, "2024-05-13T05:00:00Z")):
            write_scene(s, tmp_path / f"{s.id}.tif")
            res = map_scene(tmp_path / f"{s.id}.tif", predictor, outputs, tile=64, overlap=16, progress=False)
            record_map_result(store, res, acquired=day, scene_id=f"S1_{s.id}", console=_quiet_console())
    return db, outputs


def _quiet_console():
    from rich.console import Console
    import io

    return Console(file=io.StringIO())
