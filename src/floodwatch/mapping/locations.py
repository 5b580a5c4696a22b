"""Where scenes come from and maps go: local paths, remote rasters and object-storage outputs.

Inputs: a local path (made absolute, so Dask workers with another working folder find it), or a URL that
GDAL reads through its virtual file systems: https:// (a COG or a STAC asset href, /vsicurl/), s3:// (/vsis3/),
gs:// (/vsigs/), az:// (/vsiaz/); credentials come from GDAL's usual environment variables.
Outputs: a local folder, or an fsspec URL (s3://, gs://, memory://, ...): the scene is mapped into a local
temporary folder and its files are uploaded, stats.json last, so a listed stats.json means a complete map.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote, urlparse

from ..data.arguments import check_path
from ..errors import DataError, InvalidArgumentError

#: URL schemes GDAL reads directly (rasterio maps them onto its /vsi... file systems)
REMOTE_INPUT_SCHEMES = ("http", "https", "s3", "gs", "az", "azure")


def scheme(location: str | os.PathLike) -> str:
    s = str(location)
    return urlparse(s).scheme.lower() if "://" in s else ""


def is_remote_input(location: str | os.PathLike) -> bool:
    return scheme(location) in REMOTE_INPUT_SCHEMES


def resolve_input(location: str | os.PathLike) -> str:
    """A raster location every worker can open: URLs unchanged, file:// and local paths absolute."""
    s = str(location)
    if scheme(s) == "file":
        return str(Path(unquote(urlparse(s).path)).resolve())
    if is_remote_input(s) or scheme(s):
        return s
    return str(Path(s).expanduser().resolve())


def input_stem(location: str | os.PathLike) -> str:
    """File name without suffix, also of a URL (its path's last part, the query left out)."""
    s = str(location)
    name = unquote(urlparse(s).path).rstrip("/").rsplit("/", 1)[-1] if scheme(s) else Path(s).name
    return name.rsplit(".", 1)[0] if "." in name else name


def scene_stem(location: str | os.PathLike, *, paired: bool = False) -> str:
    """A scene's name: its file's stem; for the VV file of a `<stem>_vv`/`<stem>_vh` pair, the pair's stem."""
    stem = input_stem(location)
    if paired:
        from ..data.files import band_file

        named = band_file(stem + ".tif")
        if named is not None:
            return named[0]
    return stem


def output_names(locations: Sequence[str | os.PathLike], *, paired: Sequence[bool] = ()) -> list[str]:
    """Each scene's output folder under `-o`: its stem, or where stems repeat (fetch writes `<date>/scene.tif`)
    the stem under as many of its parent folders as tell the scenes apart: `2024-05-01/scene`. Local paths
    count as absolute (no `..` leads out of -o). `paired[i]`: location i is the VV file of a `_vv`/`_vh` pair,
    named by the pair's stem (`abc_vv.tif` -> `abc`) unless a scene beside it has that stem (then `abc_vv`).
    Two names of one file, or scenes no folder tells apart, are an error: no map may overwrite another."""
    where = [resolve_input(f) for f in locations]
    twice = next((f for f, w in zip(locations, where) if where.count(w) > 1), None)
    if twice is not None:
        raise DataError(f"{twice}: given twice")

    def folders(w: str) -> list[str]:
        return [f for f in (unquote(urlparse(w).path) if scheme(w) else w).split("/")[:-1] if f]

    split = [folders(w) for w in where]
    stems = [scene_stem(w, paired=i < len(paired) and paired[i]) for i, w in enumerate(where)]

    def clashes(i: int) -> bool:  # another scene in the same folder with the same stem
        return any(j != i and split[j] == split[i] and stems[j] == stems[i] for j in range(len(where)))

    stems = [input_stem(w) if stem != input_stem(w) and clashes(i) else stem  # a pair beside a plain a.tif
             for i, (w, stem) in enumerate(zip(where, stems))]
    stems = [f"{stem}_{w.rsplit('.', 1)[-1].split('?')[0].lower()}" if clashes(i) else stem  # x.tif, x.tiff
             for i, (w, stem) in enumerate(zip(where, stems))]
    paths = [[*f, stem] for f, stem in zip(split, stems)]
    names = []
    for p in paths:
        depth = 1
        while depth < len(p) and sum(q[-depth:] == p[-depth:] for q in paths) > 1:
            depth += 1
        names.append("/".join(p[-depth:]))
    clash = next((i for i, n in enumerate(names) if names.count(n) > 1), None)
    if clash is not None:
        other = next(j for j, n in enumerate(names) if n == names[clash] and j != clash)
        raise DataError(f"{locations[clash]}: its map would be written over {locations[other]}'s "
                        f"({names[clash]}/); give them from different folders, or map them apart")
    return names


def check_location(location: object, what: str) -> None:
    """`location` is a path or URL: None, a number or a dict would otherwise become a folder named after its
    str() ('./None/')."""
    check_path(location, what)  # the data readers' rule


def check_output_name(name: object) -> None:
    """A scene's output folder under out_dir: a folder name, or folder names joined by '/' as `output_names`
    gives them ('2024-05-01/scene'). '..', '.', an empty part or a leading '/' would put the map outside
    out_dir, or into out_dir itself, which holds the other scenes' maps."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"name: {name!r} is not a folder name (a str)")
    if "\\" in name or any(part.strip() in ("", ".", "..") for part in name.split("/")):
        raise InvalidArgumentError(f"name: '{name}' is not a folder name under out_dir (folder names joined by '/'; "
                                   "no '..', '.', empty part, leading '/' or '\\')")


def is_remote_output(location: str | os.PathLike) -> bool:
    """fsspec URLs other than file:// (which is written in place like a local folder)."""
    return scheme(location) not in ("", "file")


def resolve_output(location: str | os.PathLike) -> str:
    s = str(location)
    if scheme(s) == "file":
        return str(Path(unquote(urlparse(s).path)).resolve())
    if is_remote_output(s):
        return s.rstrip("/")
    return str(Path(s).expanduser().resolve())


def upload_dir(local: Path, url: str) -> str:
    """Copy the files of `local` into `url`/ with fsspec, stats.json last; returns the folder's URL."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    files = sorted((p for p in local.iterdir() if p.is_file()), key=lambda p: p.name == "stats.json")
    for f in files:
        fs.put_file(str(f), f"{root}/{f.name}")
    return url
