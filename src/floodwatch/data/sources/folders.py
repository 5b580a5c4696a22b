"""The course's folder layout: images/ and masks/ with the same file id (PNG/JPG, gray or colour).

Optional split subfolders (root/<split>/images or root/images/<split>) or explicit `images=`/`masks=`
folders. A class map (argument, or class_map.json in the root, else notflood 0 / flood 255) lists {name, label_id, mapping_class}: label_id is the pixel value in the mask;
classes whose mapping_class (or name) is flood/water become WATER, 'ignore'/'nodata' become IGNORE_INDEX,
all others NOT_WATER; a mask value not in the map is an error naming the file and the value.
Images: gray (or colour with equal channels) is one VV-like band; 2+ differing channels are VV, VH. The data
set's count is the first picture's that tells (a colour picture all of one value, such as convert's all-no-data
chip, does not); in a 2-band set any colour picture is read as VV, VH, equal channels or not.
Both are harmonised to dB with the ETCI map (the course's data is ETCI-derived).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import DataError, LayoutError
from ...io import read_text
from ..arguments import check_path
from ..dataset import ChipDataset, Record
from ..files import check_same_size, gray, read_picture
from ..harmonise import to_db
from ..sample import IGNORE_INDEX, NOT_WATER, WATER, Sample

FORMAT = "folders"
PICTURES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DEFAULT_CLASS_MAP = [{"name": "notflood", "label_id": 0, "mapping_class": "notflood"},
                     {"name": "flood", "label_id": 255, "mapping_class": "flood"}]
_WATER_NAMES = {"flood", "water", "flooded", "flood_water"}
_IGNORE_NAMES = {"ignore", "nodata", "no_data", "void"}


def looks_like(path: Path) -> bool:
    return bool(_pairs_roots(path))


def _pairs_roots(root: Path) -> list[tuple[str, Path, Path]]:
    """(split name, images folder, masks folder) triples found under root."""
    if (root / "images").is_dir() and (root / "masks").is_dir():
        subs = [d.name for d in sorted((root / "images").iterdir()) if d.is_dir() and (root / "masks" / d.name).is_dir()]
        if subs:
            return [(s, root / "images" / s, root / "masks" / s) for s in subs]
        return [("", root / "images", root / "masks")]
    if not root.is_dir():
        return []
    return [(d.name, d / "images", d / "masks") for d in sorted(root.iterdir())
            if (d / "images").is_dir() and (d / "masks").is_dir()]


def load_class_map(class_map: Any) -> dict[int, int]:
    """Class map (list of dicts, {name: label_id} dict, or a JSON/YAML file) -> {pixel value: class index}."""
    source = "class map"
    if class_map is None:
        class_map = DEFAULT_CLASS_MAP
    if isinstance(class_map, (str, Path)):
        source = str(class_map)
        path = Path(class_map)
        if not path.is_file():
            raise DataError(f"{path}: class map file not found")
        import yaml

        try:
            text = read_text(path, error=DataError, what="class map file")
            class_map = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: not valid JSON/YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(class_map, dict):
        class_map = [{"name": k, "label_id": v} for k, v in class_map.items()]
    table: dict[int, int] = {}
    for i, entry in enumerate(class_map if isinstance(class_map, Sequence) else []):
        if not isinstance(entry, dict) or "label_id" not in entry:
            raise DataError(f"{source}: entry {i} needs a 'label_id' (pixel value in the mask)")
        try:
            value = int(entry["label_id"])
        except (TypeError, ValueError):
            raise DataError(f"{source}: entry {i} label_id '{entry['label_id']}' is not an integer") from None
        kind = str(entry.get("mapping_class") or entry.get("name", "")).lower()
        table[value] = WATER if kind in _WATER_NAMES else IGNORE_INDEX if kind in _IGNORE_NAMES else NOT_WATER
    if not table:
        raise DataError(f"{source}: no classes")
    return table


def open_folders(root: Path, *, split: str | None = None, class_map: Any = None, images: Path | None = None,
                 masks: Path | None = None, labelled_only: bool = True) -> ChipDataset:
    if images is not None:
        triples = [(split or "", check_path(images, "images"), check_path(masks, "masks") if masks else None)]
        if not triples[0][1].is_dir():
            raise LayoutError(f"{images}: images folder not found")
    else:
        triples = _pairs_roots(root)
        if split is not None:
            triples = [t for t in triples if t[0].lower() == split.lower()]
            if not triples:
                raise DataError(f"{root}: no '{split}' split (images/{split}/ or {split}/images/)")
    if not triples:
        raise LayoutError(f"{root}: no images/ and masks/ folders")
    if class_map is None and (root / "class_map.json").is_file():  # written by data.convert.to_images_masks
        class_map = root / "class_map.json"
    table = load_class_map(class_map)
    records = []
    for split_name, img_dir, mask_dir in triples:
        masks_by_id = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in PICTURES} if mask_dir else {}
        for img in sorted(img_dir.iterdir()):
            if img.suffix.lower() not in PICTURES:
                continue
            mask = masks_by_id.get(img.stem)
            if mask is None and labelled_only:
                raise DataError(f"{img}: image without a matching label (no {img.stem}.* in {mask_dir})")
            records.append(Record(img.stem, split_name or root.name, {"image": img, "mask": mask},
                                  split=split_name or None))
    if not records:
        raise LayoutError(f"{root}: no PNG/JPG images in the images folder")
    bands = ("VV",) if _set_band_count(records) == 1 else ("VV", "VH")
    return ChipDataset(records, partial(load_pair, table=table, bands=bands), format=FORMAT, root=root, bands=bands)


def _band_count(arr: np.ndarray) -> int:
    if arr.ndim == 2 or all(np.array_equal(arr[..., 0], arr[..., c]) for c in range(1, arr.shape[2])):
        return 1
    return 2


def _set_band_count(records: list[Record], most: int = 8) -> int:
    """The band count of the first of `most` pictures that shows it: gray, or colour with differing channels.
    A colour picture with equal channels may be a gray copy (ETCI's) or a 2-band chip with no data (all 0)."""
    for rec in records[:most]:
        arr = read_picture(rec.paths["image"])
        if arr.ndim == 2 or _band_count(arr) == 2:
            return _band_count(arr)
    return 1


def load_pair(rec: Record, table: dict[int, int], bands: tuple[str, ...]) -> Sample:
    path = rec.paths["image"]
    arr = read_picture(path)
    if len(bands) == 1 and _band_count(arr) != 1:
        raise DataError(f"{path}: has 2 band(s) (channels that differ) but the other images have 1")
    if len(bands) == 2 and arr.ndim == 2:  # a colour picture with equal channels is 2 bands that happen to agree
        raise DataError(f"{path}: gray picture (1 band) but the other images have 2 (VV, VH in colour channels)")
    planes = [gray(arr, path)] if len(bands) == 1 else [arr[..., 0], arr[..., 1]]
    image = np.stack([to_db(p, "folders", b) for p, b in zip(planes, bands)])
    mask = None
    if rec.paths["mask"] is not None:
        raw = gray(read_picture(rec.paths["mask"]), rec.paths["mask"])
        check_same_size(image.shape, path, raw.shape, rec.paths["mask"])
        values = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
        unmapped = [int(v) for v in values if int(v) not in table]
        if unmapped:
            raise DataError(f"{rec.paths['mask']}: mask value {unmapped[0]} is not in the class map "
                            f"(known: {', '.join(map(str, sorted(table)))})")
        lut = np.full(256, IGNORE_INDEX, np.int64)
        for value, cls in table.items():
            if 0 <= value < 256:
                lut[value] = cls
        mask = lut[raw]
    return Sample(image=image, mask=mask, valid=np.ones(image.shape[-2:], bool), id=rec.id, region=rec.region,
                  bands=bands, extra={"split": rec.split} if rec.split else {})
