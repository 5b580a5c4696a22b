"""Layout auto-detection and `open_dataset`, the one entry point to every source reader."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..errors import LayoutError
from .dataset import ChipDataset
from .sources import etci, folders, ombria, sen1floods11

#: format name -> (layout test, opener). Detection tries them in this order.
FORMATS: dict[str, tuple[Callable[[Path], bool], Callable[..., ChipDataset]]] = {
    "sen1floods11": (sen1floods11.looks_like, sen1floods11.open_sen1floods11),
    "etci": (etci.looks_like, etci.open_etci),
    "ombria": (ombria.looks_like, ombria.open_ombria),
    "folders": (folders.looks_like, folders.open_folders),
}
_ALIASES = {"images-masks": "folders", "course": "folders", "etci2021": "etci", "ombria_s1": "ombria",
            "s1floods11": "sen1floods11"}


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise LayoutError(f"{path}: folder not found")
    if not path.is_dir():
        raise LayoutError(f"{path}: not a folder")
    if not any(path.iterdir()):
        raise LayoutError(f"{path}: empty folder")


def detect_format(path: str | os.PathLike) -> str:
    """The name of the layout found in `path` (see FORMATS); LayoutError naming the folder otherwise."""
    path = Path(path)
    _check_folder(path)
    for name, (looks_like, _) in FORMATS.items():
        if looks_like(path):
            return name
    raise LayoutError(f"{path}: unknown layout (expected one of: Sen1Floods11 S1Hand/+LabelHand/, "
                      "ETCI <scene>/tiles/vv/, OMBRIA {train,test}/AFTER/, or images/+masks/)")


def open_dataset(path: str | os.PathLike, format: str | None = None, *, split: str | None = None,
                 class_map: Any = None, **opts: Any) -> ChipDataset:
    """Open a folder of chips as a lazy ChipDataset of Samples.

    format: one of FORMATS (None: detect). split: a source's own split (Sen1Floods11's official lists,
    or a train/val/test subfolder). class_map: for the 'folders' layout. opts go to the reader, e.g.
    labelled_only=False to include unlabelled chips (mask None), images=/masks= for explicit folders.
    """
    path = Path(path)
    if format is None:
        format = detect_format(path)
    else:
        _check_folder(path)
    name = _ALIASES.get(format.lower(), format.lower())
    if name not in FORMATS:
        raise LayoutError(f"format '{format}': not one of {', '.join(FORMATS)}")
    return FORMATS[name][1](path, split=split, class_map=class_map, **opts)
