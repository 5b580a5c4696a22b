"""Write any dataset in the course's PNG layout (images/ + masks/, optional split subfolders below them:
images/train, masks/train, ..., the paths of the course's TAO spec, examples/tao_unet_resnet18.txt)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, dumps_json
from .arguments import check_path
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


def _plain_folder_name(name: str) -> bool:
    return name not in ("", ".", "..") and not set(name) & {"/", "\\"} and name.isprintable()


def split_chips(dataset, split: dict[str, list[str]], source: str | os.PathLike = "split"
                ) -> tuple[list[str], list[str]]:
    """(the chips `split` lists, in the dataset's order; its ids that are no chip). DataError, naming `source`,
    for a split name that is no plain folder name (it becomes images/<name>: '../x' would write outside) or a
    split that lists none of the chips (nothing would be written)."""
    for name, ids in split.items():
        if not _plain_folder_name(name):
            raise DataError(f"{source}: split {name!r} (id '{ids[0]}') is not a plain folder name for "
                            "images/<split> and masks/<split> (no '/' or '\\', not '.' or '..', one line)")
    listed = [i for ids in split.values() for i in ids]
    if not listed:
        raise DataError(f"{source}: lists no chip")
    ids = dataset.ids if hasattr(dataset, "ids") else [s.id for s in dataset]
    known, wanted = set(ids), set(listed)
    chosen, unknown = [i for i in ids if i in wanted], [i for i in listed if i not in known]
    if not chosen:
        where = getattr(dataset, "root", "the data set")
        raise DataError(f"{source}: none of its {len(listed)} id(s) is a chip of {where} "
                        f"(e.g. '{listed[0]}'; the chips are like '{ids[0] if ids else '-'}')")
    return chosen, unknown


def to_images_masks(dataset, out_dir: str | os.PathLike, class_map: list[dict[str, Any]] | None = None,
                    split: dict[str, list[str]] | None = None, progress: bool | None = None,
                    split_source: str | os.PathLike = "split") -> Path:
    """images/<id>.png (gray for 1 band; RGB = VV, VH, (VV+VH)/2 for 2 bands, 8-bit with the ETCI map) and
    masks/<id>.png (class map's label_id per pixel; the no-data class wherever the image has no data), plus
    class_map.json so the folder reads back as is. With `split` ({name: ids}), only the chips it lists are
    written, to images/<name> and masks/<name> (see `split_chips`; `split_source` names it in errors).
    Atomic: all or nothing."""
    from PIL import Image

    out_dir = check_path(out_dir, "out_dir")
    class_map = class_map or CONVERT_CLASS_MAP
    values = _pixel_values(class_map)
    where = {i: name for name, ids in (split or {}).items() for i in ids}
    if split is not None:
        chosen = split_chips(dataset, split, split_source)[0]
        dataset = dataset.subset(chosen) if hasattr(dataset, "subset") else [s for s in dataset if s.id in where]
    def ours(entry: Path) -> bool:  # what an earlier conversion into out_dir wrote (a rerun replaces it)
        layout = {"images", "masks"}
        # <split>/images, <split>/masks: the split layout of earlier versions
        return (entry.is_file() and entry.name == "class_map.json") or (entry.is_dir() and (
            entry.name in layout or (entry.name in (split or {}) and {e.name for e in entry.iterdir()} <= layout)))

    with atomic_dir(out_dir, ours=ours, writer="data convert") as tmp:
        for s in track(dataset, "converting", total=len(dataset), show=progress):
            sub = where[s.id] if split is not None else ""
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
            # some sources label their no-data pixels (ETCI: as ground or flood); none of them is a class.
            # The image there stays 0 (to_8bit's NaN), as Sen1Floods11's no data always was: the mask marks it
            no_data = ~s.valid | ~np.isfinite(s.image).all(axis=0)
            classes = np.where(no_data, IGNORE_INDEX, s.mask)
            mask = np.zeros(s.mask.shape, np.uint8)
            for cls, value in values.items():
                hit = classes == cls
                if hit.any():
                    if value is None:
                        raise DataError(f"chip {s.id}: has {'ignore' if cls == IGNORE_INDEX else cls} pixels "
                                        "but the class map has no class for them")
                    mask[hit] = value
            Image.fromarray(mask, mode="L").save(masks / f"{s.id}.png")
        (tmp / "class_map.json").write_text(dumps_json(class_map, indent=2) + "\n")
    return out_dir
