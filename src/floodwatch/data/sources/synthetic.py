"""Synthetic chips that a recipe names like any folder: written on first use, then read like Sen1Floods11.

The folder is `floodwatch data synth`'s layout (S1Hand/, LabelHand/) plus `synthetic.json`, the options that
wrote it. Opening a missing folder writes it first (all or nothing); opening one written with other options,
or one without the record, is an error naming the folder, so a recipe never trains on other chips than it names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset
from ..synthetic import check_phenomena, write_synthetic_dataset
from .sen1floods11 import open_sen1floods11

FORMAT = "synthetic"
MANIFEST = "synthetic.json"


def looks_like(path: Path) -> bool:
    return (path / MANIFEST).is_file()


#: what a missing folder is written with, for options the source does not give
DEFAULTS = {"chips": 16, "size": 64, "seed": 0, "phenomena": []}


def options_record(chips: int | None = None, size: int | None = None, seed: int | None = None,
                   phenomena: str | Sequence[str] | None = None) -> dict:
    """The given generator options as `synthetic.json` holds them (phenomena as checked names)."""
    if isinstance(phenomena, str):
        phenomena = [p.strip() for p in phenomena.split(",") if p.strip()]
    given = {"chips": chips, "size": size, "seed": seed, "phenomena": phenomena}
    return {k: list(check_phenomena(v)) if k == "phenomena" else int(v) for k, v in given.items() if v is not None}


def open_synthetic(root: Path, *, chips: int | None = None, size: int | None = None, seed: int | None = None,
                   phenomena: str | Sequence[str] | None = None, split: str | None = None,
                   labelled_only: bool = True) -> ChipDataset:
    """Options left out are not checked against an existing folder, and take DEFAULTS when it is written."""
    wanted = options_record(chips, size, seed, phenomena)
    if not root.exists():
        write_synthetic_dataset(root, **{**DEFAULTS, **wanted})
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    record = root / MANIFEST
    if not record.is_file():
        raise DataError(f"{root}: no {MANIFEST}, so not known to hold these synthetic chips (remove the folder "
                        "to have it written, or name another)")
    try:
        found = json.loads(record.read_text())
    except ValueError as exc:
        raise DataError(f"{record}: not valid JSON ({exc})") from None
    if not isinstance(found, dict):
        raise DataError(f"{record}: expected a JSON object of the generator's options")
    differ = [k for k in wanted if found.get(k) != wanted[k]]
    if differ:
        raise DataError(f"{record}: written with {', '.join(f'{k} {found.get(k)!r}' for k in differ)}; this source "
                        f"asks for {', '.join(f'{k} {wanted[k]!r}' for k in differ)} (remove the folder or name "
                        "another)")
    ds = open_sen1floods11(root, split=split, labelled_only=labelled_only)
    return ChipDataset(ds.records, ds._loader, format=FORMAT, root=root, bands=ds.bands)
