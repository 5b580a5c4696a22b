"""Write any dataset in the course's PNG layout (images/ + masks/, optional split subfolders below them:
images/train, masks/train, ..., the paths of the course's TAO spec, examples/tao_unet_resnet18.txt)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, dumps_json
from .harmonise import to_8bit
from .progress import track
from .sample import IGNORE_INDEX, NOT_WATER, WATER

#: the course's classes plus one for nodata/unlabelled pixels (Sen1Floods11 has them; the course's data not).
CONVERT_CLASS_MAP = [{"name": "notflood", "label_id": 0, "mapping_class": "notflood"},
                     {"name": "flood", "label_id": 255, "mapping_class": "flood"},
                     {"name": "ignore", "label_id": 127, "mapping_class": "ignore"}]


def _pixel_values(class_map: list[dict[str, Any]]) -> dict[int, int | None]:
    from .sources.folders import load_class_map

    table = load_class_map(class_map)
    first = lambda cls: next((v for v, c in table.items() if c == cls), None)  # noqa: E731
    return {WATER: first(WATER), NOT_WATER: first(NOT_WATER), IGNORE_INDEX: first(IGNORE_INDEX)}


def to_images_masks(dataset, out_dir: str | os.PathLike, class_map: list[dict[str, Any]] | None = None,
                    split: dict[str, list[str]] | None = None, progress: bool | None = None) -> Path:
    """images/<id>.png (gray for 1 band; RGB = VV, VH, (VV+VH)/2 for 2 bands, 8-bit with the ETCI map) and
    masks/<id>.png (class map's label_id per pixel), plus class_map.json so the folder reads back as is.
    With `split` ({name: ids}), chips go to images/<name> and masks/<name>. Atomic: all or nothing."""
    from PIL import Image

    class_map = class_map or CONVERT_CLASS_MAP
    values = _pixel_values(class_map)
    where = {i: name for name, ids in (split or {}).items() for i in ids}
    out_dir = Path(out_dir)
    def ours(entry: Path) -> bool:  # what an earlier conversion into out_dir wrote (a rerun replaces it)
        layout = {"images", "masks"}
        # <split>/images, <split>/masks: the split layout of earlier versions
        return (entry.is_file() and entry.name == "class_map.json") or (entry.is_dir() and (
            entry.name in layout or (entry.name in (split or {}) and {e.name for e in entry.iterdir()} <= layout)))

    with atomic_dir(out_dir, ours=ours, writer="data convert") as tmp:
        for s in track(dataset, "converting", total=len(dataset), show=progress):
            if split and s.id not in where:
                continue
            sub = where[s.id] if split else ""
            images, masks = tmp / "images" / sub, tmp / "masks" / sub
            images.mkdir(parents=True, exist_ok=True)
            masks.mkdir(parents=True, exist_ok=True)
            planes = [to_8bit(s.image[i], "folders", b) for i, b in enumerate(s.bands[:2])]
            if len(planes) == 1:
                picture = Image.fromarray(planes[0], mode="L")
            else:
                third = ((planes[0].astype(np.uint16) + planes[1]) // 2).astype(np.uint8)
                picture = Image.fromarray(np.stack([planes[0], planes[1], third], -1), mode="RGB")
            picture.save(images / f"{s.id}.png")
            if s.mask is None:
                continue
            mask = np.zeros(s.mask.shape, np.uint8)
            for cls, value in values.items():
                hit = s.mask == cls
                if hit.any():
                    if value is None:
                        raise DataError(f"chip {s.id}: has {'ignore' if cls == IGNORE_INDEX else cls} pixels "
                                        "but the class map has no class for them")
                    mask[hit] = value
            Image.fromarray(mask, mode="L").save(masks / f"{s.id}.png")
        (tmp / "class_map.json").write_text(dumps_json(class_map, indent=2) + "\n")
    return out_dir
