"""STAC Overflow (DrivenData / Microsoft AI for Earth, 2021): one GeoTIFF per band and chip, in dB.

    train_features/<chip>_vv.tif, <chip>_vh.tif   float32 dB, 512 x 512, UTM; 0.0 is missing data
    train_labels/<chip>.tif                        uint8: 1 water, 0 not water, 255 missing
    flood-training-metadata.csv                    chip_id -> flood_id (the event), location, scene_start

`test_features/` (+ `test_labels/` where one has them) is the `test` split; a folder holding `features/` and
`labels/`, or the band files themselves with `labels/` beside them, reads the same way. The region of a chip is
its flood_id from any *metadata*.csv in the root, else the letters its id starts with ('awc00' -> 'awc').
Missing data (0.0 or NaN in either band) becomes NaN and IGNORE_INDEX.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset, Record
from ..files import check_same_grid, check_same_size, read_backscatter, read_binary_label
from ..sample import Sample

FORMAT = "stac_overflow"
BANDS = ("VV", "VH")
#: (features folder, labels folder, split) in the order they are read; "" is the root itself
_FOLDERS = (("train_features", "train_labels", "train"), ("test_features", "test_labels", "test"),
            ("features", "labels", None), ("", "labels", None))


def _feature_folders(root: Path) -> list[tuple[Path, Path, str | None]]:
    found = []
    for features, labels, split in _FOLDERS:
        folder = root / features if features else root
        if folder.is_dir() and any(folder.glob("*_vv.tif")):
            found.append((folder, root / labels, split))
            if not features:  # band files in the root: nothing else to look for
                break
    return found


def looks_like(path: Path) -> bool:
    return bool(_feature_folders(path))


def _regions(root: Path) -> dict[str, str]:
    """chip_id -> flood_id from the metadata CSV(s) in the root, if any."""
    out: dict[str, str] = {}
    for path in sorted(root.glob("*metadata*.csv")):
        try:
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("chip_id") and row.get("flood_id"):
                        out[row["chip_id"]] = row["flood_id"]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: unreadable metadata CSV ({exc})") from None
    return out


def region_of(chip_id: str) -> str:
    m = re.match(r"^([A-Za-z]+)\d+$", chip_id)
    return m.group(1) if m else chip_id


def open_stac_overflow(root: Path, *, split: str | None = None, labelled_only: bool = True) -> ChipDataset:
    folders = _feature_folders(root)
    if not folders:
        raise LayoutError(f"{root}: no STAC Overflow chips (<chip>_vv.tif in train_features/, test_features/, "
                          "features/ or the folder itself)")
    if split is not None:
        if split.lower() not in ("train", "test"):
            raise DataError(f"split: '{split}' is not one of train, test (STAC Overflow's folders)")
        folders = [f for f in folders if f[2] == split.lower()]
        if not folders:
            raise DataError(f"{root}: no {split.lower()}_features/ folder for split '{split}'")
    regions = _regions(root)
    records = []
    for features, labels, folder_split in folders:
        for vv in sorted(features.glob("*_vv.tif")):
            chip = vv.name[: -len("_vv.tif")]
            vh = features / f"{chip}_vh.tif"
            if not vh.is_file():
                raise DataError(f"{vv}: no matching VH file ({vh.name} is missing)")
            label = labels / f"{chip}.tif"
            if not label.is_file():
                if labelled_only:
                    raise DataError(f"{vv}: image without a matching label ({label.relative_to(root)} is missing)")
                label = None
            records.append(Record(chip, regions.get(chip) or region_of(chip), {"vv": vv, "vh": vh, "label": label},
                                  split=folder_split))
    return ChipDataset(records, load_chip, format=FORMAT, root=root, bands=BANDS)


def load_chip(rec: Record) -> Sample:
    vv, georef, _ = read_backscatter(rec.paths["vv"], bands=1)
    vh, vh_georef, _ = read_backscatter(rec.paths["vh"], bands=1)
    check_same_size(vv.shape, rec.paths["vv"], vh.shape, rec.paths["vh"])
    check_same_grid(georef, rec.paths["vv"], vh_georef, rec.paths["vh"])
    image = np.concatenate([vv, vh]).astype(np.float32, copy=False)
    valid = np.isfinite(image).all(axis=0)  # read_backscatter made 0.0, the data set's missing value, NaN
    image[:, ~valid] = np.nan
    mask = None
    if rec.paths["label"] is not None:
        mask = read_binary_label(rec.paths["label"], rec.paths["vv"], vv.shape, georef, valid, ignore=255)
    return Sample(image=image, mask=mask, valid=valid, id=rec.id, region=rec.region, georef=georef,
                  bands=BANDS, extra={"split": rec.split} if rec.split else {})
