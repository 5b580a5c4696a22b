"""Checks of a caller's arguments, for functions notebooks call directly: a value of the wrong kind is an
InvalidArgumentError naming the parameter, not a numpy or pathlib error from deep inside (or a file named
after a dict). The CLI's own options are checked by typer before they get here."""
from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError


def check_path(value: Any, name: str) -> Path:
    """A str or os.PathLike as a Path (bytes and anything else refused)."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{name}: expected a path or URL (a str or os.PathLike), got "
                                   f"{type(value).__name__} {_short(value)}")
    return Path(text)


def check_flag(value: Any, name: str) -> bool:
    """True or False only: a string such as 'no' would otherwise count as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name}: must be True or False, got {_short(value)}")
    return bool(value)


def check_whole(value: Any, name: str, least: int) -> int:
    """A whole number (not a bool) >= `least`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise InvalidArgumentError(f"{name}: must be a whole number >= {least}, got {_short(value)}")
    return int(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed numpy's generators take: a whole number >= 0."""
    return check_whole(value, name, 0)


def check_dataset(value: Any, name: str = "dataset", needs: tuple[str, ...] = ()):
    """A dataset (a ChipDataset, or anything with len() and [i] and the attributes `needs`). A data folder is
    refused with a pointer to open_dataset, which takes the layout and split options; opening it here would
    also tie the statistics to the readers, which use them (an import cycle)."""
    if isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentError(f"{name}: {_short(value)} is a path, not a dataset; open it first: "
                                   f"open_dataset({_short(os.fspath(value))})")
    if isinstance(value, Mapping) or not all(hasattr(value, a) for a in ("__len__", "__getitem__", *needs)):
        raise InvalidArgumentError(f"{name}: expected a dataset (open_dataset's ChipDataset) or a data folder, "
                                   f"got {type(value).__name__}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
