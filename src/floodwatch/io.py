"""Atomic output: write to a temporary name beside the target, rename on success.

Nothing half-written is ever left under the final name, even if the process is killed.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FloodwatchError


def check_output_dir(directory: str | os.PathLike) -> Path:
    """Fail early, creating nothing, when `directory` could not be made or written: a file in the way, or
    no write permission on the nearest folder that exists. Long runs call this before they start."""
    directory = Path(directory)
    existing = next(p for p in (directory, *directory.parents) if p.exists() or p == p.parent)
    if existing == directory and not existing.is_dir():
        raise FloodwatchError(f"{directory} is a file, not a folder (an output folder was expected)")
    if not existing.is_dir():  # mkdir would only say "File exists" or "Not a directory"
        raise FloodwatchError(f"{directory}: cannot create output folder ({existing} is a file, not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FloodwatchError(f"{directory}: output folder is not writable ({existing})")
    try:  # os.access answers yes to root even where no file can be made (/proc, read-only mounts)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise FloodwatchError(f"{directory}: output folder is not writable (no file can be made in {existing}: "
                              f"{exc.strerror})") from None
    return directory


def check_output_file(path: str | os.PathLike) -> Path:
    """Fail early, creating nothing, when the output file `path` could not be written: it is a folder, or its
    folder could not be made or written. Commands call this before the work whose result it will hold."""
    path = _file_target(Path(path))
    _for_output(path, check_output_dir)
    return path


def check_not_input(output: str | os.PathLike, *inputs: str | os.PathLike | None, name: str | None = None,
                    error: type[FloodwatchError] = FloodwatchError) -> Path:
    """Fail early when the output file `output` is one of `inputs` (None entries skipped), also by another
    name (./x for x, a symlink, a hard link): writing it would replace what the run reads. `name`: the output's
    parameter (the CLI turns it into the flag) or flag, leading the message; without it the path leads."""
    output = Path(output)
    for given in inputs:
        if given is not None and _same_file(output, Path(given)):
            head = f"{name}: {output}" if name else str(output)
            same = "" if Path(given) == output else f" ({given})"
            raise error(f"{head} is an input of this run{same}: writing it would replace that input; give "
                        "another output file")
    return output


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # both exist: also a hard link, which no resolved path shows
    except OSError:
        return a.resolve() == b.resolve()


def _file_target(path: Path) -> Path:
    if path.is_dir():
        raise FloodwatchError(f"{path}: is a folder; give the output file's name")
    return path


def _folder_target(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise FloodwatchError(f"{path}: is a file; give a folder name for this output")
    return path


def _for_output(target: Path, prepare: Callable[[Path], Any]) -> Any:
    """`prepare(target.parent)` (check_output_dir, or _make_dirs, which checks first), its errors naming the
    output rather than only its folder."""
    try:
        return prepare(target.parent)
    except FloodwatchError as exc:
        raise FloodwatchError(f"{target}: cannot be written; {exc}") from None


def _make_dirs(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents (mode 0777 less the umask, like mkdir -p); return the ones
    created, deepest first, so a failed run can remove what it made and leave no empty output folder."""
    check_output_dir(directory)
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FloodwatchError(f"{directory}: cannot create output folder ({exc.strerror})") from None
    if not os.access(directory, os.W_OK):
        raise FloodwatchError(f"{directory}: output folder is not writable")
    return created


def _remove_empty(created: list[Path]) -> None:
    for d in created:  # deepest first; stops at the first folder something else has written into
        try:
            d.rmdir()
        except OSError:
            return


def ensure_output_dir(directory: str | os.PathLike) -> Path:
    """Create an output folder (and its parents) or raise a one-line FloodwatchError saying why not."""
    directory = Path(directory)
    _make_dirs(directory)
    return directory


@contextlib.contextmanager
def output_folder(directory: str | os.PathLike) -> Iterator[Path]:
    """Create an output folder for a block of work; if the block fails, the folders it created are removed
    again when nothing was written into them (a failed run leaves no empty output folder behind)."""
    directory = Path(directory)
    created = _make_dirs(directory)
    try:
        yield directory
    except BaseException:
        _remove_empty(created)
        raise


def _umask() -> int:
    # Read, not set-and-restore: os.umask(0) would briefly widen the mode of files other threads create.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Temporary names carry their owner (pid and host) so a later run can tell a dead run's leftovers, safe to
# delete, from another live run's work in progress: .<name>.pid<pid>@<host>.<random>.part[<suffix>]
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_OWNED = re.compile(r"^\..+\.pid(\d+)@([A-Za-z0-9-]+)\.[a-z0-9_]+\.part(\.[A-Za-z0-9]+)?$")
#: Leftovers named before owners were recorded (.<name>.<random>.part) are removed after this long.
LEGACY_PART_AGE_S = 24 * 3600


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.pid{process_tag()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def process_tag() -> str:
    """This process as `pid@host`, as temporary names record their owner."""
    return f"{os.getpid()}@{_HOST}"


def process_gone(tag: str) -> bool:
    """Whether the process a process_tag() names has ended (another host's, or this one, is not known to)."""
    pid, _, host = tag.partition("@")
    return host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))


def _is_stale(entry: Path, legacy: re.Pattern | None) -> bool:
    import time

    owned = _OWNED.match(entry.name)
    if owned:
        return process_gone(f"{owned.group(1)}@{owned.group(2)}")
    if legacy is not None and legacy.match(entry.name):
        try:
            return time.time() - entry.lstat().st_mtime > LEGACY_PART_AGE_S
        except OSError:
            return False
    return False


def clean_stale_parts(folder: str | os.PathLike, target_name: str | None = None) -> list[Path]:
    """Remove temporary outputs in `folder` left by killed runs: ones whose owning process (on this host) is
    gone, and, for `target_name`, old unowned ones (LEGACY_PART_AGE_S). Live runs' work is never touched."""
    folder = Path(folder)
    removed: list[Path] = []
    legacy = (re.compile(rf"^\.{re.escape(target_name)}\.[a-z0-9_]{{8}}\.part(\.[A-Za-z0-9]+)?$")
              if target_name else None)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if _is_stale(entry, legacy):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def require_file(path: str | os.PathLike, what: str = "file", *,
                 error: type[FloodwatchError] = FloodwatchError) -> Path:
    """`path` when it is a file; else one `error` naming it: not found, or a folder where a file was expected."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    return path


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
    target = _file_target(Path(target))
    created = _for_output(target, _make_dirs)  # checks the folder as check_output_file does, once
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".part" + target.suffix, dir=target.parent)
    except OSError as exc:  # e.g. /proc: os.access says writable to root, creating a file says otherwise
        _remove_empty(created)
        raise FloodwatchError(f"{target}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; outputs get the usual permissions (0666 less the umask).
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        _remove_empty(created)
        raise


def _shown(name: str) -> str:
    return name if name.isprintable() else ascii(name)  # a file name with a newline stays one line


#: files a desktop drops into any folder it shows (Finder, Explorer): no user's work, and no reason to refuse
OS_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _check_ours(target: Path, ours: Callable[[Path], bool], writer: str) -> None:
    try:
        entries = sorted(target.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:  # cannot see what it holds, so cannot tell that replacing it loses nothing
        raise FloodwatchError(f"{target}: cannot list the folder ({exc.strerror}), so it is not replaced; "
                              "give a new or empty folder") from None
    foreign = [e for e in entries if not ours(e) and e.name not in OS_CLUTTER]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise FloodwatchError(f"{target}: holds {_shown(foreign[0].name)}{more}, which {writer} did not write; "
                              "give a new or empty folder")


def check_replaceable(target: str | os.PathLike, ours: Callable[[Path], bool] | None = None,
                      writer: str = "this command") -> Path:
    """Fail early, changing nothing, when `target` cannot be written as one output folder (atomic_dir): a file
    in the way, an unwritable parent, or, with `ours`, an existing folder holding an entry for which
    `ours(entry)` is False (something the user keeps there, that replacing the folder would delete). A
    missing or empty folder, or one holding only an earlier run's outputs, passes. `writer` names the command
    in the message. Commands call this before their work; atomic_dir checks again."""
    target = _folder_target(Path(target))
    _for_output(target, check_output_dir)
    if ours is not None:
        _check_ours(target, ours, writer)
    return target


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, replace: bool = True, ours: Callable[[Path], bool] | None = None,
               writer: str = "this command") -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds. With
    `replace=False` a `target` that exists by then (another process wrote it first) is kept and the temporary
    folder dropped, so readers of `target` never see it swapped out.

    `ours`: for a `target` the user names (it may hold other files), a predicate over its entries, True for
    one this kind of output consists of. An existing folder holding anything else is refused (before the
    block, and again just before replacing it; see check_replaceable) rather than deleted. Without `ours`
    an existing `target` is replaced whole, whatever it holds: only for folders the caller names itself."""
    target = _folder_target(Path(target))
    if ours is not None and replace:  # replace=False never removes an existing folder
        _check_ours(target, ours, writer)
    created = _for_output(target, _make_dirs)  # checks the folder as check_replaceable does, once
    clean_stale_parts(target.parent, target.name)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".part", dir=target.parent))
    except OSError as exc:
        _remove_empty(created)
        raise FloodwatchError(f"{target}: cannot write here ({exc.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get mkdir's usual mode
        if not replace:
            try:
                os.rename(tmp, target)  # fails onto a non-empty folder: the first writer's stays
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        elif target.exists():
            if ours is not None:  # the user may have put something there while the block ran
                _check_ours(target, ours, writer)
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
        _remove_empty(created)
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
