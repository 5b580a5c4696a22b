"""Train/val/test splits: random, by region (event/scene), or spatially blocked by tile grid position."""
from __future__ import annotations

import csv
import io
import numbers
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InvalidArgumentError
from ..io import atomic_path, read_text
from .arguments import check_dataset, check_path, check_seed, check_whole

SPLIT_NAMES = ("train", "val", "test")
METHODS = ("random", "region", "blocked")


def make_split(dataset, method: str = "random", fractions: tuple[float, ...] = (0.7, 0.15, 0.15), seed: int = 42,
               block: int = 4) -> dict[str, list[str]]:
    """{'train': ids, 'val': ids, 'test': ids}. 'region' keeps each region (event/scene) in one split;
    'blocked' keeps each block x block group of tiles (by `extra['grid']`, ETCI) in one split, so the
    splits are spatially separated. Groups go, largest first, to the split furthest below its share. The
    defaults are the spec's (`floodwatch.config.SplitConfig`). `dataset`: a ChipDataset (open_dataset's)."""
    if method not in METHODS:
        raise InvalidArgumentError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    fractions = _check_fractions(fractions)
    seed = check_seed(seed)
    if method == "blocked":
        block = check_whole(block, "block", 1)
    dataset = check_dataset(dataset, needs=("ids",))
    names = SPLIT_NAMES[: len(fractions)]
    records = getattr(dataset, "records", None)
    ids = list(dataset.ids)
    if method == "random":
        groups = [[i] for i in ids]
    elif method == "region":
        by_region = defaultdict(list)
        for chip_id, region in zip(ids, dataset.regions):
            by_region[region].append(chip_id)
        groups = list(by_region.values())
    else:
        by_block = defaultdict(list)
        for rec in records or []:
            grid = rec.extra.get("grid")
            if grid is None:
                raise DataError(f"chip {rec.id}: no tile grid position; 'blocked' needs gridded tiles (ETCI)")
            by_block[(rec.region, grid[0] // block, grid[1] // block)].append(rec.id)
        groups = list(by_block.values())
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    groups = sorted((groups[i] for i in order), key=len, reverse=True) if method != "random" else [groups[i] for i in order]
    targets = np.array(fractions) * len(ids)
    counts = np.zeros(len(names))
    out: dict[str, list[str]] = {n: [] for n in names}
    for g in groups:
        k = int(np.argmax(targets - counts))
        out[names[k]].extend(g)
        counts[k] += len(g)
    return out


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    """2 or 3 numbers >= 0 summing to 1 (written so that NaN fails: every comparison with NaN is False); a
    string is refused whole, not read as its characters."""
    values = tuple(fractions) if isinstance(fractions, Iterable) and not isinstance(fractions, str) else None
    if not (values is not None and 2 <= len(values) <= 3
            and all(isinstance(f, numbers.Real) and not isinstance(f, bool) and f >= 0 for f in values)
            and abs(sum(values) - 1) <= 1e-6):
        raise InvalidArgumentError(f"fractions: need 2 or 3 non-negative numbers summing to 1, got "
                                   f"{values if values is not None else repr(fractions)}")
    return tuple(float(f) for f in values)


def split_problems(dataset, split: dict[str, list[str]], fractions: tuple[float, ...]) -> list[str]:
    """What makes a split useless for choosing or scoring a model, one line per split: no chip where a share
    was asked for (blocks too large for the scene), or no labelled water pixel holding data, where water IoU
    is undefined. Reads the chips of the validation and test splits (not the training one); one it cannot read
    is named too."""
    def water(chip_id: str) -> int:
        try:
            return dataset.get(chip_id).class_counts()["water"]
        except DataError as exc:  # the split is written already: an unreadable chip is one more warning
            problems.append(str(exc))
            return 0

    problems: list[str] = []
    for (name, ids), share in zip(split.items(), fractions):
        if not share:
            continue
        if not ids:
            problems.append(f"{name}: no chip (asked for {share:.0%}; fewer, larger groups than the shares need)")
        elif name != "train" and not sum(water(i) for i in ids):
            problems.append(f"{name}: no labelled water pixel in its {len(ids)} chip(s) ({', '.join(ids[:3])}"
                            f"{' ...' if len(ids) > 3 else ''}): its water IoU is undefined")
    return problems


def write_split_csv(split: dict[str, list[str]], path: str | os.PathLike) -> Path:
    """CSV with columns id,split (atomic)."""
    path = check_path(path, "path")
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "split"])
            for name, ids in split.items():
                w.writerows([i, name] for i in ids)
    return path


def read_split_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    path = check_path(path, "path")
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    text = read_text(path, error=DataError, what="split file")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields, rows = reader.fieldnames, list(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if fields is None or not {"id", "split"} <= set(fields):
        raise DataError(f"{path}: expected a CSV with columns id,split")
    out: dict[str, list[str]] = {}
    seen = set()
    for n, row in enumerate(rows, start=2):
        if not row["id"] or not row["split"]:
            raise DataError(f"{path}: line {n} has an empty id or split")
        if row["id"] in seen:
            raise DataError(f"{path}: line {n}: id '{row['id']}' is listed twice")
        seen.add(row["id"])
        out.setdefault(row["split"], []).append(row["id"])
    if not out:  # a header alone would read as "no split given" and select every chip
        raise DataError(f"{path}: lists no chip (a header, no rows)")
    return out
