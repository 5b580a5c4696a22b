"""ETCI 2021: <scene>/tiles/{vv,vh,flood_label,water_body_label}/, 8-bit PNGs (RGB with equal channels).

VV/VH are converted to dB with the one fitted ETCI map (`harmonise`), or with `harmonise="scene"` by a map
fitted on each scene's own pixels (`harmonise.scene_map`, no labels). 0 is data; 255 in both VV and VH is no data
(outside the radar swath, as in the Bangladesh scene) where it covers an area, not a speck. flood_label 0/255 is the mask; water_body_label (permanent water) is kept in `extra["water_body"]`; the tile's grid position
`_x-<col>_y-<row>` goes to `extra["grid"]` = (col, row). A root may hold one scene or several, or be a
scene's tiles/ folder.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset, Record
from ..files import check_same_size, gray, large_regions, read_picture
from ..harmonise import REFERENCE_MODES, scene_map, to_db
from ..sample import WATER, NOT_WATER, Sample

FORMAT = "etci"
BANDS = ("VV", "VH")
_GRID = re.compile(r"_x-(\d+)_y-(\d+)$")


def scene_folders(root: Path) -> list[Path]:
    """The scene folders under `root`: root itself, its `<scene>/` subfolders, or (root a scene's `tiles/`
    folder) its scene. Absolute, so that `.` or `tiles` given from inside a scene still name it."""
    root = Path(root).absolute()
    if (root / "tiles" / "vv").is_dir():
        return [root]
    if root.name == "tiles" and (root / "vv").is_dir():
        return [root.parent]
    return sorted(p for p in root.iterdir() if (p / "tiles" / "vv").is_dir()) if root.is_dir() else []


def looks_like(path: Path) -> bool:
    return bool(scene_folders(path))


def open_etci(root: Path, *, split: str | None = None, labelled_only: bool = True, water_body: bool = True,
              harmonise: Literal["scene", "fixed"] = "fixed",
              reference: dict[str, tuple[float, float]] | None = None) -> ChipDataset:
    """water_body=False skips the permanent-water PNG: a quarter of the decoding, for readers that only train.

    harmonise: 'scene' fits each scene's 8-bit -> dB map on its own pixels (put on `reference`, default
    `harmonise.REFERENCE_MODES`) when a tile of it is first loaded; 'fixed' uses the one fitted ETCI map.
    """
    if harmonise not in ("scene", "fixed"):
        raise DataError(f"harmonise: '{harmonise}' is not one of scene, fixed")
    if reference is not None and harmonise != "scene":
        raise DataError("reference: only used with harmonise='scene'")
    root = Path(root).absolute()  # a scene's name is its folder's, also when given as `.`
    if split is not None:
        if not (root / split).is_dir():
            raise DataError(f"{root}: ETCI has no split lists; no '{split}' subfolder either")
        root = root / split
    scenes = scene_folders(root)
    if not scenes:
        raise LayoutError(f"{root}: no ETCI scene (<scene>/tiles/vv/) in the folder")
    records = []
    for scene in scenes:
        tiles = scene / "tiles"
        for vv in sorted((tiles / "vv").glob("*_vv.png")):
            tile = vv.name[: -len("_vv.png")]
            label = tiles / "flood_label" / f"{tile}.png"
            if not label.is_file():
                if labelled_only:
                    raise DataError(f"{vv}: image without a matching label ({label.relative_to(root)} is missing)")
                label = None
            wb = tiles / "water_body_label" / f"{tile}.png"
            m = _GRID.search(tile)
            records.append(Record(tile, scene.name, {
                "vv": vv, "vh": tiles / "vh" / f"{tile}_vh.png", "label": label,
                "water_body": wb if water_body and wb.is_file() else None},
                extra={"grid": (int(m.group(1)), int(m.group(2)))} if m else {}))
    if not records:
        raise LayoutError(f"{root}: no *_vv.png tiles under tiles/vv/")
    loader = TileLoader(reference or REFERENCE_MODES) if harmonise == "scene" else load_tile
    return ChipDataset(records, loader, format=FORMAT, root=root, bands=BANDS)


def _binary(path: Path, ref_shape: tuple, ref_path: Path) -> np.ndarray:
    arr = gray(read_picture(path), path)
    check_same_size(ref_shape, ref_path, arr.shape, path)
    unknown = np.flatnonzero(np.bincount(arr.ravel(), minlength=256)[1:255]) + 1
    if unknown.size:
        raise DataError(f"{path}: mask value {unknown[0]} is not 0 or 255")
    return arr == 255


#: tiles whose histograms fit a scene's map: every tile up to this many, else an even stride over them
_HISTOGRAM_TILES = 400


def _read_bands(rec: Record) -> tuple[np.ndarray, np.ndarray]:
    vv = gray(read_picture(rec.paths["vv"]), rec.paths["vv"])
    vh = gray(read_picture(rec.paths["vh"]), rec.paths["vh"])
    check_same_size(vv.shape, rec.paths["vv"], vh.shape, rec.paths["vh"])
    return vv, vh


#: ETCI writes no data (outside the swath) as 255 in VV and VH; bright targets saturate both bands too, but
#: in specks (at most a few hundred pixels in the shared scenes' interiors), not in areas of this size or more.
_NO_DATA_MIN_PIXELS = 256


def _no_data(vv: np.ndarray, vh: np.ndarray) -> np.ndarray:
    return large_regions((vv == 255) & (vh == 255), _NO_DATA_MIN_PIXELS)


class TileLoader:
    """load_tile with each scene's own 8-bit -> dB maps, fitted once per scene (per process) on first use."""

    def __init__(self, reference: dict[str, tuple[float, float]]):
        self.reference = {b: tuple(map(float, reference[b])) for b in BANDS}
        self.maps: dict[Path, dict[str, tuple[float, float]]] = {}

    def scene_maps(self, scene: Path) -> dict[str, tuple[float, float]]:
        if scene not in self.maps:
            vvs = sorted((scene / "tiles" / "vv").glob("*_vv.png"))
            step = max(1, -(-len(vvs) // _HISTOGRAM_TILES))
            counts = {b: np.zeros(256, np.int64) for b in BANDS}
            for vv_path in vvs[::step]:
                tile = vv_path.name[: -len("_vv.png")]
                vv, vh = _read_bands(Record(tile, scene.name, {"vv": vv_path,
                                                                "vh": scene / "tiles" / "vh" / f"{tile}_vh.png"}))
                data = ~_no_data(vv, vh)
                counts["VV"] += np.bincount(vv[data], minlength=256)
                counts["VH"] += np.bincount(vh[data], minlength=256)
            try:
                self.maps[scene] = {b: scene_map(counts[b], self.reference[b]) for b in BANDS}
            except ValueError as exc:
                raise DataError(f"{scene}: cannot fit the scene's 8-bit -> dB map ({exc}); "
                                "read it with harmonise='fixed'") from None
        return self.maps[scene]

    def __call__(self, rec: Record) -> Sample:
        maps = self.scene_maps(rec.paths["vv"].parents[2])
        return load_tile(rec, maps)


def load_tile(rec: Record, maps: dict[str, tuple[float, float]] | None = None) -> Sample:
    """One tile in dB: through `maps` {band: (slope, intercept)} when given, else the fixed ETCI map."""
    vv, vh = _read_bands(rec)
    if maps is None:
        image = np.stack([to_db(vv, "etci", "VV"), to_db(vh, "etci", "VH")])
    else:
        image = np.stack([v.astype(np.float32) * np.float32(maps[b][0]) + np.float32(maps[b][1])
                          for v, b in ((vv, "VV"), (vh, "VH"))])
    valid = ~_no_data(vv, vh)
    image[:, ~valid] = np.nan
    mask = None
    if rec.paths["label"] is not None:
        mask = np.where(_binary(rec.paths["label"], vv.shape, rec.paths["vv"]), WATER, NOT_WATER).astype(np.int64)
    extra = dict(rec.extra)
    if rec.paths["water_body"] is not None:
        extra["water_body"] = _binary(rec.paths["water_body"], vv.shape, rec.paths["vv"])
    if maps is not None:
        extra["db_map"] = maps
    extra["source"] = "etci2021"  # lets consumers of bare Sample lists pick ETCI's conventions (Otsu on VV)
    return Sample(image=image, mask=mask, valid=valid, id=rec.id, region=rec.region,
                  bands=BANDS, extra=extra)
