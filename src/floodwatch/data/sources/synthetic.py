"""Synthetic chips that a recipe names like any folder: written on first use, then read like Sen1Floods11.

The folder is `floodwatch data synth`'s layout (S1Hand/, LabelHand/) plus `synthetic.json`, the options that
wrote it. Opening a missing folder with options writes it first, all or nothing, and never replaces a folder
that appeared meanwhile (the processes of a multi-GPU training each open it); opening one written with other
options, or one without the record, is an error naming the folder, so a recipe never trains on other chips
than it names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ...errors import DataError, LayoutError
from ..dataset import ChipDataset
from ..synthetic import GENERATOR_VERSION, MANIFEST, check_phenomena, write_synthetic_dataset
from .sen1floods11 import open_sen1floods11

FORMAT = "synthetic"
#: what a missing folder is written with, for options the source does not give
DEFAULTS = {"chips": 16, "size": 64, "seed": 0, "phenomena": []}


def looks_like(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def given_options(root: Path, chips: Any = None, size: Any = None, seed: Any = None,
                  phenomena: str | Sequence[str] | None = None) -> dict:
    """The options a source gives, checked, as MANIFEST holds them (with the generator's version when any is
    given); DataError naming the folder and the option."""
    out: dict[str, Any] = {}
    for name, value, least in (("chips", chips, 1), ("size", size, 2), ("seed", seed, 0)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DataError(f"{root}: synthetic option {name} must be a whole number >= {least} (got {value!r})")
        out[name] = value
    if phenomena is not None:
        if not isinstance(phenomena, (str, list, tuple)) or not all(isinstance(p, str) for p in phenomena):
            raise DataError(f"{root}: synthetic option phenomena must be names (got {phenomena!r})")
        try:
            out["phenomena"] = list(check_phenomena(phenomena))
        except DataError as exc:
            raise DataError(f"{root}: synthetic option phenomena: {exc}") from None
    if out:
        out["generator"] = GENERATOR_VERSION  # an existing folder is always checked against the generator
    return out


def open_synthetic(root: Path, *, chips: int | None = None, size: int | None = None, seed: int | None = None,
                   phenomena: str | Sequence[str] | None = None, split: str | None = None,
                   labelled_only: bool = True) -> ChipDataset:
    """Options left out are not checked against an existing folder, and take DEFAULTS when it is written; a
    missing folder with no option given is an error (a mistyped path should not fill up with chips)."""
    wanted = given_options(root, chips, size, seed, phenomena)
    if not root.exists():
        if not wanted:
            raise LayoutError(f"{root}: folder not found (a synthetic source writes it only when given its "
                              "options: chips, size, seed, phenomena)")
        # replace=False: the processes of a multi-GPU training each open the source; the first folder stays
        write_synthetic_dataset(root, **{**DEFAULTS, **{k: v for k, v in wanted.items() if k != "generator"}},
                                replace=False)
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
    wanted.setdefault("generator", found.get("generator"))  # bare `--format synthetic`: any generator is read
    differ = [k for k in wanted if found.get(k) != wanted[k]]
    if differ:
        raise DataError(f"{record}: written with {', '.join(f'{k} {found.get(k)!r}' for k in differ)}; this source "
                        f"asks for {', '.join(f'{k} {wanted[k]!r}' for k in differ)} (remove the folder or name "
                        "another)")
    ds = open_sen1floods11(root, split=split, labelled_only=labelled_only)
    return ChipDataset(ds.records, ds._loader, format=FORMAT, root=root, bands=ds.bands)
