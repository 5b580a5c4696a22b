"""Layout auto-detection and `open_dataset`, the one entry point to every source reader."""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidArgumentError, LayoutError
from .arguments import check_flag, check_path
from .dataset import ChipDataset
from .sources import etci, folders, ombria, sen1floods11, stac_overflow, synthetic

#: format name -> (layout test, opener). Detection tries them in this order.
FORMATS: dict[str, tuple[Callable[[Path], bool], Callable[..., ChipDataset]]] = {
    "sen1floods11": (sen1floods11.looks_like, sen1floods11.open_sen1floods11),
    "etci": (etci.looks_like, etci.open_etci),
    "ombria": (ombria.looks_like, ombria.open_ombria),
    "stac_overflow": (stac_overflow.looks_like, stac_overflow.open_stac_overflow),
    "folders": (folders.looks_like, folders.open_folders),
    # after sen1floods11, whose layout it shares, so detection names the layout; named, it writes a missing folder
    "synthetic": (synthetic.looks_like, synthetic.open_synthetic),
}
_ALIASES = {"images-masks": "folders", "course": "folders", "etci2021": "etci", "ombria_s1": "ombria",
            "s1floods11": "sen1floods11",
            "stac-overflow": "stac_overflow", "stacoverflow": "stac_overflow"}


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise LayoutError(f"{path}: folder not found")
    if not path.is_dir():
        raise LayoutError(f"{path}: not a folder")
    if not any(path.iterdir()):
        raise LayoutError(f"{path}: empty folder")


def detect_format(path: str | os.PathLike) -> str:
    """The name of the layout found in `path` (see FORMATS); LayoutError naming the folder otherwise."""
    path = check_path(path, "path")
    _check_folder(path)
    for name, (looks_like, _) in FORMATS.items():
        if looks_like(path):
            return name
    raise LayoutError(f"{path}: unknown layout (expected one of: Sen1Floods11 S1Hand/+LabelHand/, "
                      "ETCI <scene>/tiles/vv/, OMBRIA {train,test}/AFTER/, STAC Overflow train_features/"
                      f"<chip>_vv.tif, or images/+masks/){_nearby(path)}")


def _detected(path: Path) -> str | None:
    try:
        return next((name for name, (looks_like, _) in FORMATS.items() if looks_like(path)), None)
    except OSError:  # an unreadable neighbour: no hint, not another error
        return None


def _nearby(path: Path, most: int = 24) -> str:
    """Where the data set is when `path` is next to it: a folder above it (S1Hand/, OMBRIA's AFTER/) or
    sub-folders that are data sets (a folder of several), as "; ..." for the unknown-layout message."""
    for parent in list(path.resolve().parents)[:3]:
        name = _detected(parent)
        if name is not None:
            return f"; it lies inside the {name} data set {parent}: give that folder"
    subs = sorted(p for p in path.iterdir() if p.is_dir())[:most]
    found = [f"{p.name}/ ({name})" for p in subs if (name := _detected(p)) is not None]
    return f"; these sub-folders are data sets, give one: {', '.join(found)}" if found else ""


def resolve_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The FORMATS name of `format` (aliases allowed) or, when None, of the layout detected in `path`."""
    path = check_path(path, "path")
    if format is None:
        return detect_format(path)
    if not isinstance(format, str):
        raise InvalidArgumentError(f"format: expected a format name such as 'sen1floods11', got {format!r}")
    name = _ALIASES.get(format.lower(), format.lower())
    if name not in FORMATS:
        raise LayoutError(f"format '{format}': not one of {', '.join(FORMATS)}")
    if name != "synthetic":  # its reader writes a missing folder
        _check_folder(path)
    return name


def reader_options(format: str) -> tuple[str, ...]:
    """The keyword options the reader of `format` (a FORMATS name) declares, e.g. ('split', 'labelled_only')."""
    params = inspect.signature(FORMATS[format][1]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def open_dataset(path: str | os.PathLike, format: str | None = None, **options: Any) -> ChipDataset:
    """Open a folder of chips as a lazy ChipDataset of Samples.

    format: one of FORMATS (None: detect). options go to the reader, and only those it declares (see
    `reader_options`); any other is an InvalidArgumentError naming it, so a misspelt option cannot be
    ignored. Every reader takes `split` (a source's own split: Sen1Floods11's official lists, or a
    train/val/test subfolder) and `labelled_only` (False includes unlabelled chips, mask None); 'folders'
    also takes class_map and images=/masks= for explicit folders, 'etci' water_body=False to skip the
    permanent-water layer, 'synthetic' chips/size/seed/phenomena (a missing folder is written with them).
    """
    # the options every reader takes, checked here once: readers call split.lower() and read any string as True
    if options.get("split") is not None and not isinstance(options["split"], str):
        raise InvalidArgumentError(f"split: expected a split name such as 'train' or 'test', got {options['split']!r}")
    if "labelled_only" in options:
        options["labelled_only"] = check_flag(options["labelled_only"], "labelled_only")
    name = resolve_format(path, format)
    accepted = reader_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidArgumentError(f"{unknown[0]}: not an option of the {name} reader (it takes: "
                                   f"{', '.join(accepted)})")
    return FORMATS[name][1](Path(path), **options)
