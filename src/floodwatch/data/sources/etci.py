"""ETCI 2021: <scene>/tiles/{vv,vh,flood_label,water_body_label}/, 8-bit PNGs (RGB with equal channels).

VV/VH are converted to dB with the fitted map in `harmonise` (0 is data, not nodata); flood_label 0/255 is
the mask; water_body_label (permanent water) is kept in `extra["water_body"]`; the tile's grid position
`_x-<col>_y-<row>` goes to `extra["grid"]` = (col, row). A root may hold one scene or several.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset, Record
from ..files import check_same_size, gray, read_picture
from ..harmonise import to_db
from ..sample import WATER, NOT_WATER, Sample

FORMAT = "etci"
BANDS = ("VV", "VH")
_GRID = re.compile(r"_x-(\d+)_y-(\d+)$")


def scene_folders(root: Path) -> list[Path]:
    if (root / "tiles" / "vv").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "tiles" / "vv").is_dir()) if root.is_dir() else []


def looks_like(path: Path) -> bool:
    return bool(scene_folders(path))


def open_etci(root: Path, *, split: str | None = None, labelled_only: bool = True, water_body: bool = True) -> ChipDataset:
    """water_body=False skips the permanent-water PNG: a quarter of the decoding, for readers that only train."""
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
    return ChipDataset(records, load_tile, format=FORMAT, root=root, bands=BANDS)


def _binary(path: Path, ref_shape: tuple, ref_path: Path) -> np.ndarray:
    arr = gray(read_picture(path), path)
    check_same_size(ref_shape, ref_path, arr.shape, path)
    unknown = np.flatnonzero(np.bincount(arr.ravel(), minlength=256)[1:255]) + 1
    if unknown.size:
        raise DataError(f"{path}: mask value {unknown[0]} is not 0 or 255")
    return arr == 255


def load_tile(rec: Record) -> Sample:
    vv = gray(read_picture(rec.paths["vv"]), rec.paths["vv"])
    vh = gray(read_picture(rec.paths["vh"]), rec.paths["vh"])
    check_same_size(vv.shape, rec.paths["vv"], vh.shape, rec.paths["vh"])
    image = np.stack([to_db(vv, "etci", "VV"), to_db(vh, "etci", "VH")])
    mask = None
    if rec.paths["label"] is not None:
        mask = np.where(_binary(rec.paths["label"], vv.shape, rec.paths["vv"]), WATER, NOT_WATER).astype(np.int64)
    extra = dict(rec.extra)
    if rec.paths["water_body"] is not None:
        extra["water_body"] = _binary(rec.paths["water_body"], vv.shape, rec.paths["vv"])
    extra["source"] = "etci2021"  # lets consumers of bare Sample lists pick ETCI's conventions (Otsu on VV)
    return Sample(image=image, mask=mask, valid=np.ones(vv.shape, bool), id=rec.id, region=rec.region,
                  bands=BANDS, extra=extra)
