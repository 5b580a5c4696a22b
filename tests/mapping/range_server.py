"""A loopback static file server that honours HTTP Range requests (as S3/GCS do), and records them."""
from __future__ import annotations

import contextlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class RangeServer:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.bytes_sent = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _file(self) -> Path | None:
                p = (owner.root / self.path.split("?")[0].lstrip("/")).resolve()
                return p if p.is_file() and owner.root.resolve() in p.parents else None

            def do_HEAD(self) -> None:
                self._respond(body=False)

            def do_GET(self) -> None:
                self._respond(body=True)

            def _respond(self, body: bool) -> None:
                rng = self.headers.get("Range")
                with owner._lock:
                    owner.requests.append((self.command, self.path, rng))
                f = self._file()
                if f is None:
                    self.send_error(404)
                    return
                data = f.read_bytes()
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if m:
                    start, end = int(m.group(1)), int(m.group(2) or len(data) - 1)
                    end = min(end, len(data) - 1)
                    part = data[start:end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    part = data
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Content-Type", "image/tiff")
                self.end_headers()
                if body:
                    self.wfile.write(part)
                    with owner._lock:
                        owner.bytes_sent += len(part)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
