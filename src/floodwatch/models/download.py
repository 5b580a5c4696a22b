"""Models by URL: `https://host/path/model.onnx#sha256=HEX` is downloaded once into the user's cache folder
(as torch hub does), checked against its sha256, and renamed into place only when it matches."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import ModelError

URL_SCHEMES = ("https://", "http://")  # the pinned sha256, not the transport, vouches for the file
_FRAGMENT = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
CHUNK = 1 << 20


def is_url(ref: str) -> bool:
    return ref.lower().startswith(URL_SCHEMES)


def cache_dir() -> Path:
    """$FLOODWATCH_CACHE/models, else $XDG_CACHE_HOME/floodwatch/models, else ~/.cache/floodwatch/models."""
    if os.environ.get("FLOODWATCH_CACHE"):
        return Path(os.environ["FLOODWATCH_CACHE"]).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "floodwatch" / "models"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def split_url(ref: str) -> tuple[str, str, str]:
    """'URL#sha256=HEX' -> (URL without the fragment, hex digest in lower case, file name)."""
    parts = urllib.parse.urlsplit(ref)
    match = _FRAGMENT.match(parts.fragment)
    if not match:
        raise ModelError(f"model URL {ref}: add the file's checksum as '#sha256=<64 hex digits>'")
    url = urllib.parse.urlunsplit(parts._replace(fragment=""))
    name = Path(urllib.parse.unquote(parts.path)).name
    if not name or name in (".", ".."):
        raise ModelError(f"model URL {url}: the path names no file")
    return url, match.group(1).lower(), name


def cached_path(url: str, sha256: str, name: str, cache: Path | None = None) -> Path:
    # one folder per checksum: two URLs of one file share it, two files of one name do not collide
    return (cache or cache_dir()) / sha256[:16] / name


def fetch_model(ref: str, *, cache: Path | None = None, timeout_s: float = 60.0, progress: bool | None = None) -> Path:
    """The local copy of a 'URL#sha256=HEX' model: from the cache when it is there and verifies, else
    downloaded, verified and renamed into place. ModelError (one line) on HTTP errors, no network or a
    checksum mismatch; a failed download leaves nothing behind."""
    url, want, name = split_url(ref)
    target = cached_path(url, want, name, cache)
    if target.is_file():
        if sha256_file(target) == want:
            return target
        target.unlink()  # altered since it was verified: fetch it again
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # deepest first
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"model cache {target.parent}: cannot create it ({exc.strerror})") from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                got = _download(url, out, timeout_s, progress)
            if got != want:
                raise ModelError(f"model URL {url}: sha256 mismatch (expected {want}, got {got}); file discarded")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except BaseException:
        for folder in made:  # the cache folders this call made; one another download writes into stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return target


def _download(url: str, out, timeout_s: float, progress: bool | None) -> str:
    """Stream `url` into `out`; returns the sha256 of what was written."""
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "floodwatch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _bar(name=Path(urllib.parse.urlsplit(url).path).name, total=total, show=progress) as advance:
                got = 0
                while chunk := response.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    got += len(chunk)
                    advance(len(chunk))
        # a connection dropped mid-body ends the read quietly; said as a checksum mismatch it would read as a
        # wrong or tampered file, when fetching it again is all it takes
        if total is not None and got < total:
            raise ModelError(f"model URL {url}: download cut short ({got:,} of {total:,} bytes); try again")
    except urllib.error.HTTPError as exc:
        raise ModelError(f"model URL {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ModelError(f"model URL {url}: cannot connect ({exc.reason})") from None
    except (TimeoutError, OSError) as exc:
        raise ModelError(f"model URL {url}: download failed ({type(exc).__name__}: {exc})") from None
    return h.hexdigest()


class _bar:
    """A download bar on stderr when someone watches (a terminal), nothing otherwise."""

    def __init__(self, name: str, total: int | None, show: bool | None):
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        console = Console(stderr=True)
        self.progress = Progress(*Progress.get_default_columns()[:2], DownloadColumn(), TransferSpeedColumn(),
                                 console=console, transient=True,
                                 disable=not (console.is_terminal if show is None else show))
        self.name, self.total = name, total

    def __enter__(self):
        self.progress.start()
        from rich.markup import escape

        task = self.progress.add_task(f"downloading {escape(self.name)}", total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

