"""The bad-input catalogue: one table per command family (tests/<family>/test_bad_inputs_<family>.py).

Each row is a `Case`: the command line (placeholders `{name}` are files the family's fixture made, `{out}` a
fresh path that must not exist afterwards), the exit code, and what the one-line message must name. `check`
runs it in-process and asserts the developers' guide contract: that exit code, exactly one line on stderr,
no traceback, the file or field named, and nothing half-written (no `{out}`, no `.part` leftovers).
Adding the next bad input is one row in a table; adding a file it needs is one line in a fixture.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

#: Bytes no UTF-8 decoder accepts (a BOM-less UTF-16 / binary start), then a NUL.
BINARY = b"\xff\xfe\x00\x81binary\x00\x9c"


@dataclass(frozen=True)
class Case:
    """One bad input. `names`: strings (with placeholders) the message must contain; `forbid`: ones it must
    not (e.g. advice to load a checkpoint unsafely); `absent`: paths that must not exist after the run."""

    id: str
    argv: str
    names: tuple[str, ...]
    code: int = 2
    forbid: tuple[str, ...] = ("Traceback",)
    absent: tuple[str, ...] = ("{out}",)


def params(cases: list[Case]):
    import pytest

    return [pytest.param(c, id=c.id) for c in cases]


def check(case: Case, files: dict[str, Path], run_cli: Callable, tmp_path: Path) -> str:
    """Run one row; returns the error line for extra assertions."""
    values = {k: str(v) for k, v in files.items()} | {"out": str(tmp_path / "out")}
    argv = [part.format(**values) for part in shlex.split(case.argv)]
    before = _part_leftovers(files)
    result = run_cli(*argv)
    err = result.stderr.strip()
    assert result.returncode == case.code, f"exit {result.returncode}, stderr: {err}"
    assert "Traceback" not in result.stderr
    assert len(err.splitlines()) == 1, f"expected one line on stderr, got:\n{err}"
    for needle in case.names:
        assert needle.format(**values) in err, f"{needle.format(**values)!r} not named in: {err}"
    for needle in case.forbid:
        assert needle.format(**values) not in err, f"{needle!r} in: {err}"
    for path in case.absent:
        assert not Path(path.format(**values)).exists(), f"{path.format(**values)} was left behind"
    assert _part_leftovers(files) == before, "temporary .part files left behind"
    return err


def _part_leftovers(files: dict[str, Path]) -> set[Path]:
    roots = {Path(p).parent for p in files.values()}
    return {p for r in roots if r.is_dir() for p in r.rglob("*.part*")}


# -- files the tables refer to ----------------------------------------------------------------------------
def binary_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BINARY)
    return path


def plain_file(path: Path) -> Path:
    """A regular file where a folder is expected (`FILE/x` outputs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file, not a folder\n")
    return path


def unsafe_checkpoint(path: Path) -> Path:
    """A torch file whose pickle would call print() if loaded unsafely: safe loading must refuse it."""
    import torch

    torch.save({"format": "floodwatch-checkpoint", "payload": _Unsafe()}, path)
    return path


class _Unsafe:
    def __reduce__(self):
        return (print, ("this must never run",))


def rewrite_raster(src: Path, dst: Path, *, crs: str | None = None, shift_px: float = 0.0,
                   dtype: str | None = None, bands: list[int] | None = None) -> Path:
    """A copy of a GeoTIFF with another CRS label, shifted by `shift_px` pixels east, cast, or with fewer bands."""
    import rasterio

    with rasterio.open(src) as s:
        data = s.read(bands) if bands else s.read()
        profile = s.profile | {"count": data.shape[0]}
        transform = s.transform
    if crs:
        profile["crs"] = crs
    if shift_px:
        profile["transform"] = transform @ transform.translation(shift_px, 0)
    if dtype:
        info = np.iinfo(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else None
        data = np.clip(np.nan_to_num(data), info.min, info.max) if info else data
        profile.update(dtype=dtype, nodata=None)
        data = data.astype(dtype)
    tmp = dst.with_name(dst.name + ".tmp")
    with rasterio.open(tmp, "w", **profile) as d:
        d.write(data)
    tmp.replace(dst)  # dst may be src
    return dst


def sen1floods11_copy(src_root: Path, dst_root: Path, edit: Callable[[Path, Path], None]) -> Path:
    """A copy of a Sen1Floods11-layout folder with its first chip's (image, label) pair passed to `edit`."""
    import shutil

    shutil.copytree(src_root, dst_root)
    image = sorted((dst_root / "S1Hand").glob("*_S1Hand.tif"))[0]
    label = dst_root / "LabelHand" / image.name.replace("_S1Hand", "_LabelHand")
    edit(image, label)
    return dst_root


def first_label(root: Path) -> Path:
    return sorted((root / "LabelHand").glob("*.tif"))[0]


def first_image(root: Path) -> Path:
    return sorted((root / "S1Hand").glob("*.tif"))[0]
