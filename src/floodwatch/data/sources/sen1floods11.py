"""Sen1Floods11 hand-labelled chips: S1Hand/<id>_S1Hand.tif (VV, VH dB) + LabelHand/<id>_LabelHand.tif.

Labels are int16 1 water / 0 not water / -1 no data; -1 and NaN image pixels become IGNORE_INDEX.
The official split lists (flood_{train,valid,test}_data.{txt,csv}, searched under splits/) are honoured.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DataError, LayoutError
from ...io import read_text
from ..dataset import ChipDataset, Record
from ..files import read_backscatter, read_binary_label
from ..sample import Sample

FORMAT = "sen1floods11"
BANDS = ("VV", "VH")
_SPLIT_NAMES = {"train": "train", "val": "valid", "valid": "valid", "validation": "valid", "test": "test",
                "bolivia": "bolivia"}


def looks_like(path: Path) -> bool:
    return (path / "S1Hand").is_dir()


def region_of(chip_id: str) -> str:
    """The event name: the id without its trailing `_<digits>` (Sri-Lanka_534068 -> Sri-Lanka)."""
    m = re.match(r"^(.*)_\d+$", chip_id)
    return m.group(1) if m else chip_id


def read_split_lists(root: Path) -> dict[str, set[str]]:
    """{'train'|'valid'|'test'|'bolivia': ids} from any flood_<split>_data.txt/.csv below root/splits or root."""
    lists: dict[str, set[str]] = {}
    candidates = sorted(root.glob("flood_*_data.*")) + sorted((root / "splits").rglob("flood_*_data.*"))
    for f in candidates:
        m = re.match(r"flood_(\w+?)_data\.(txt|csv)$", f.name)
        if not m or m.group(1) not in _SPLIT_NAMES.values() or m.group(1) in lists:
            continue
        ids = set()
        for line in read_text(f, error=DataError, what="split list").splitlines():
            first = line.split(",")[0].strip()
            if first:  # csv rows are '<id>_S1Hand.tif,<id>_LabelHand.tif'; txt rows are bare ids
                ids.add(re.sub(r"_S1Hand(\.tif)?$", "", first))
        lists[m.group(1)] = ids
    return lists


def open_sen1floods11(root: Path, *, split: str | None = None, labelled_only: bool = True) -> ChipDataset:
    images = sorted((root / "S1Hand").glob("*_S1Hand.tif"))
    unlabelled = sorted((root / "S1Hand_nolabel").glob("*_S1Hand.tif")) if not labelled_only else []
    if not images and not unlabelled:
        raise LayoutError(f"{root / 'S1Hand'}: no *_S1Hand.tif chips in the folder")
    lists = read_split_lists(root)
    membership = {i: name for name, ids in lists.items() for i in ids}
    records = []
    for img in images + unlabelled:
        chip_id = img.name[: -len("_S1Hand.tif")]
        label = root / "LabelHand" / f"{chip_id}_LabelHand.tif"
        if img.parent.name == "S1Hand_nolabel" or not label.is_file():
            if labelled_only:
                raise DataError(f"{img}: image without a matching label ({label.relative_to(root)} is missing)")
            label = None
        records.append(Record(chip_id, region_of(chip_id), {"image": img, "label": label},
                              split=membership.get(chip_id)))
    if split is not None:
        wanted = _SPLIT_NAMES.get(split.lower())
        if wanted is None:
            raise DataError(f"split: '{split}' is not one of train, val, test, bolivia")
        if wanted not in lists:
            raise DataError(f"{root}: no split list for '{split}' (expected splits/**/flood_{wanted}_data.txt or .csv)")
        records = [r for r in records if r.split == wanted]
        if not records:  # labelled_only: the unlabelled chips (S1Hand_nolabel) were not looked at
            raise DataError(f"{root}: none of the {'labelled ' if labelled_only else ''}chips here are in the "
                            f"'{split}' split list")
    return ChipDataset(records, load_chip, format=FORMAT, root=root, bands=BANDS)


def load_chip(rec: Record) -> Sample:
    image, georef, _ = read_backscatter(rec.paths["image"], bands=2)
    image = image.astype(np.float32, copy=False)
    valid = np.isfinite(image).all(axis=0)
    mask = None
    if rec.paths["label"] is not None:
        mask = read_binary_label(rec.paths["label"], rec.paths["image"], image.shape, georef, valid, ignore=-1)
    return Sample(image=image, mask=mask, valid=valid, id=rec.id, region=rec.region, georef=georef,
                  bands=BANDS, extra={"split": rec.split} if rec.split else {})
