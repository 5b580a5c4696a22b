"""OMBRIA-S1: {train,test}/{BEFORE,AFTER,MASK}/S1_{before,after,mask}_NNNN.png, 8-bit gray, mask 0/255.

Bi-temporal: `image` is AFTER, `before` is BEFORE, both harmonised to dB. The pictures are single-band
(VV, as in the OMBRIA paper), so samples carry bands=("VV",): a 2-band (VV, VH) model cannot take them
as they are; train a 1-band model (in_channels=1, Preprocessing(bands=["VV"])) or use them for evaluation
of VV-only methods. No georeferencing. id = NNNN (unique over train and test), region = the split name.
255 in areas is no data (outside the radar swath; `no_data`), in either date no data in both.
The masks mark the flood, not all water: a river dark in both dates can be left 0 (test chip 0048's), so
samples carry extra["label"] = LABEL and evaluation names what it scores accordingly.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset, Record
from ..files import check_same_size, gray, large_regions, read_picture
from ..harmonise import to_db
from ..sample import NOT_WATER, WATER, Sample

FORMAT = "ombria"
BANDS = ("VV",)
_NAME = re.compile(r"^S1_after_(\d+)\.png$", re.IGNORECASE)
#: Outside the radar swath the pictures hold 255, in areas of 155 px and more in the shared set's 1,388
#: pictures; saturated bright targets hold it too, in specks of 6 px at most there.
NO_DATA_MIN_PIXELS = 64
#: what a mask's 1 marks (Sample.extra["label"]; readers whose masks mark all water leave it out)
LABEL = "flood"


def split_folders(root: Path) -> list[Path]:
    if (root / "AFTER").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "AFTER").is_dir()) if root.is_dir() else []


def looks_like(path: Path) -> bool:
    return bool(split_folders(path))


def open_ombria(root: Path, *, split: str | None = None, labelled_only: bool = True) -> ChipDataset:
    folders = split_folders(root)
    if split is not None:
        folders = [f for f in folders if f.name.lower() == split.lower()]
        if not folders:
            raise DataError(f"{root}: no '{split}' split folder (with AFTER/) in the OMBRIA data")
    if not folders:
        raise LayoutError(f"{root}: no OMBRIA folder (AFTER/, BEFORE/, MASK/) in the folder")
    records = []
    for folder in folders:
        for after in sorted((folder / "AFTER").iterdir()):
            m = _NAME.match(after.name)
            if not m:
                continue
            n = m.group(1)
            before, mask = folder / "BEFORE" / f"S1_before_{n}.png", folder / "MASK" / f"S1_mask_{n}.png"
            if not before.is_file():
                raise DataError(f"{after}: AFTER image without a matching BEFORE image ({before.name})")
            if not mask.is_file():
                if labelled_only:
                    raise DataError(f"{after}: image without a matching label ({mask.name} is missing)")
                mask = None
            records.append(Record(n, folder.name, {"after": after, "before": before, "mask": mask},
                                  split=folder.name))
    if not records:
        raise LayoutError(f"{root}: no S1_after_NNNN.png pictures under AFTER/")
    return ChipDataset(records, load_triplet, format=FORMAT, root=root, bands=BANDS)


def load_triplet(rec: Record) -> Sample:
    after = gray(read_picture(rec.paths["after"]), rec.paths["after"])
    before = gray(read_picture(rec.paths["before"]), rec.paths["before"])
    check_same_size(after.shape, rec.paths["after"], before.shape, rec.paths["before"])
    mask = None
    if rec.paths["mask"] is not None:
        raw = gray(read_picture(rec.paths["mask"]), rec.paths["mask"])
        check_same_size(after.shape, rec.paths["after"], raw.shape, rec.paths["mask"])
        unknown = np.flatnonzero(np.bincount(raw.ravel(), minlength=256)[1:255]) + 1
        if unknown.size:
            raise DataError(f"{rec.paths['mask']}: mask value {unknown[0]} is not 0 or 255")
        mask = np.where(raw == 255, WATER, NOT_WATER).astype(np.int64)
    valid = ~(no_data(after) | no_data(before))
    image, before_db = to_db(after, "ombria", "VV")[None], to_db(before, "ombria", "VV")[None]
    image[:, ~valid] = before_db[:, ~valid] = np.nan
    return Sample(image=image, mask=mask, valid=valid, id=rec.id, region=rec.region, bands=BANDS, before=before_db,
                  extra={"split": rec.split, "label": LABEL})


def no_data(picture: np.ndarray) -> np.ndarray:
    """(H, W) bool: the areas of 255 in an 8-bit OMBRIA picture (the swath's fill), not its bright specks."""
    return large_regions(picture == 255, NO_DATA_MIN_PIXELS)
