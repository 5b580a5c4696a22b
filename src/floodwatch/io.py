"""Atomic output: write to a temporary name beside the target, rename on success.

Nothing half-written is ever left under the final name, even if the process is killed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FloodwatchError


def check_output_dir(directory: str | os.PathLike) -> Path:
    """Fail early, creating nothing, when `directory` could not be made or written: a file in the way, or
    no write permission on the nearest folder that exists. Long runs call this before they start."""
    directory = Path(directory)
    existing = next(p for p in (directory, *directory.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():  # mkdir would only say "File exists" or "Not a directory"
        raise FloodwatchError(f"{directory}: cannot create output folder ({existing} is a file, not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FloodwatchError(f"{directory}: output folder is not writable ({existing})")
    return directory


def _check_dir_writable(directory: Path) -> None:
    check_output_dir(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FloodwatchError(f"{directory}: cannot create output folder ({exc.strerror})") from None
    if not os.access(directory, os.W_OK):
        raise FloodwatchError(f"{directory}: output folder is not writable")


def ensure_output_dir(directory: str | os.PathLike) -> Path:
    """Create an output folder (and its parents) or raise a one-line FloodwatchError saying why not."""
    directory = Path(directory)
    _check_dir_writable(directory)
    return directory


def read_text(path: str | os.PathLike, *, error: type[FloodwatchError] = FloodwatchError, what: str = "file") -> str:
    """A UTF-8 text file's content; a missing, unreadable or binary file is one `error` naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                    f"{exc.start}; binary file?)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` if the block succeeds."""
    target = Path(target)
    _check_dir_writable(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; outputs get the usual permissions (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    _check_dir_writable(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON atomically (indent 2, keys in insertion order)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_json(obj, indent=2) + "\n")
    return path


def dumps_json(obj: Any, *, indent: int | None = None, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON text: NaN and infinities become null (strict parsers reject them), numpy and paths are
    converted, other objects go to `default` (else TypeError). Every JSON floodwatch writes goes through here."""
    def fallback(o: Any) -> Any:
        try:
            return _finite(_json_default(o))
        except TypeError:
            if default is None:
                raise
            return _finite(default(o))

    return json.dumps(_finite(obj), allow_nan=False, default=fallback, indent=indent, sort_keys=sort_keys)


def _finite(obj: Any) -> Any:
    import math

    import numpy as np

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically and close it (figures otherwise pile up in long runs)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path
