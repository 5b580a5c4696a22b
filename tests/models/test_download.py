"""Models by URL (`URL#sha256=HEX`): downloaded once from a loopback HTTP server into the cache folder,
verified, renamed into place; mismatches, 404s and refused connections are one-line errors that leave
nothing behind."""
from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from floodwatch.errors import ModelError
from floodwatch.models.download import cache_dir, fetch_model
from floodwatch.models.zoo import resolve_model

from tests.ports import free_port


@pytest.fixture
def server(tmp_path, tiny_checkpoint):
    """Serves tmp_path/www on 127.0.0.1; `requests` lists the paths asked for."""
    www = tmp_path / "www"
    (www / "m").mkdir(parents=True)
    (www / "m" / "tiny.pt").write_bytes(tiny_checkpoint.read_bytes())
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODWATCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOODWATCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "floodwatch" / "models"
    monkeypatch.setenv("FLOODWATCH_CACHE", str(tmp_path / "fw"))
    assert cache_dir() == tmp_path / "fw" / "models"


def test_download_once_verified_and_cached(server, cache, tiny_checkpoint):
    base, requests = server
    ref = f"{base}/m/tiny.pt#sha256={_sha(tiny_checkpoint).upper()}"
    path = resolve_model(ref)
    assert path.parent.parent == cache and path.name == "tiny.pt"
    assert path.read_bytes() == tiny_checkpoint.read_bytes()
    assert resolve_model(ref) == path and requests == ["/m/tiny.pt"]  # the second use reads the cache
    assert [p.name for p in path.parent.iterdir()] == ["tiny.pt"]  # no temporary file left
    path.write_bytes(b"altered")
    assert fetch_model(ref).read_bytes() == tiny_checkpoint.read_bytes() and len(requests) == 2


def test_wrong_sha256_is_refused_and_nothing_kept(server, cache):
    base, _ = server
    with pytest.raises(ModelError) as exc:
        resolve_model(f"{base}/m/tiny.pt#sha256={'0' * 64}")
    msg = str(exc.value)
    assert "sha256 mismatch" in msg and f"{base}/m/tiny.pt" in msg and "\n" not in msg
    assert not cache.parent.exists()  # nor the folders made for the file ($FLOODWATCH_CACHE did not exist)
    (cache / "other").mkdir(parents=True)  # a cache in use keeps its folders
    with pytest.raises(ModelError):
        resolve_model(f"{base}/m/tiny.pt#sha256={'0' * 64}")
    assert [p.name for p in cache.iterdir()] == ["other"]


@pytest.mark.parametrize("ref, expected", [
    ("{base}/m/missing.pt#sha256=" + "a" * 64, "HTTP 404"),
    ("http://127.0.0.1:{closed}/m/tiny.pt#sha256=" + "a" * 64, "cannot connect"),
    ("{base}/m/tiny.pt", "#sha256="),
    ("{base}/m/tiny.pt#md5=abc", "#sha256="),
    ("{base}/#sha256=" + "a" * 64, "names no file"),
])
def test_download_errors_are_one_line(server, cache, ref, expected):
    base, _ = server
    with pytest.raises(ModelError) as exc:
        resolve_model(ref.format(base=base, closed=free_port()))
    assert expected in str(exc.value) and "\n" not in str(exc.value)
    assert not cache.parent.exists()


def test_map_with_a_model_url(server, cache, tmp_path, tiny_checkpoint, run_cli):
    from tests.mapping.helpers import make_scene

    base, _ = server
    make_scene(tmp_path / "s.tif", 40, 40)
    r = run_cli("map", tmp_path / "s.tif", "-m", f"{base}/m/tiny.pt#sha256={_sha(tiny_checkpoint)}",
                "-o", tmp_path / "out", "--tile", "64", "--overlap", "16", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "s" / "stats.json").is_file()
    r = run_cli("map", tmp_path / "s.tif", "-m", f"{base}/m/tiny.pt#sha256={'1' * 64}", "-o", tmp_path / "out2")
    assert r.returncode == 2 and r.stderr.startswith("error: model URL") and "sha256 mismatch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()


def test_a_download_cut_short_says_so_not_that_the_file_is_wrong(cache, tiny_checkpoint):
    """A server that announces the whole file and closes the connection after part of it: the read ends
    quietly, and the checksum then differs; 'sha256 mismatch' would send the user after a wrong or tampered file
    when fetching it again is all it takes."""
    body = tiny_checkpoint.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:1000])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ModelError) as exc:
            resolve_model(f"http://127.0.0.1:{httpd.server_address[1]}/m/tiny.pt#sha256={_sha(tiny_checkpoint)}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert f"cut short (1,000 of {len(body):,} bytes)" in str(exc.value) and "\n" not in str(exc.value)
    assert not cache.parent.exists()
