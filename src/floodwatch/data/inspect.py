"""What is in a data folder: layout, counts per split and region, class balance, nodata, problems."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any


from ..errors import DataError
from .formats import open_dataset
from .progress import track


def inspect_dataset(path: str | os.PathLike, format: str | None = None, progress: bool | None = None,
                    **opts: Any) -> dict[str, Any]:
    """Read every chip once and report; per-chip read errors are collected under 'problems' (their ids under
    'unreadable_chips'), not raised, so one report lists them all."""
    ds = open_dataset(path, format, labelled_only=False, **opts)
    counts = Counter(water=0, not_water=0, ignore=0)
    per_region: dict[str, dict[str, int]] = {}
    sizes: Counter = Counter()
    problems, empty, unlabelled, no_water, unreadable = [], [], [], [], []
    labels: set[str] = set()  # what the masks' 1 marks: "water", or the reader's word ("flood" for OMBRIA)
    pixels = invalid = 0
    for i in track(range(len(ds)), "inspecting", total=len(ds), show=progress):
        rec = ds.records[i]
        region = per_region.setdefault(rec.region, {"chips": 0, "water": 0, "not_water": 0})
        region["chips"] += 1
        try:
            s = ds[i]
        except DataError as exc:
            problems.append(str(exc))
            unreadable.append(rec.id)
            continue
        sizes[f"{s.shape[0]}x{s.shape[1]}"] += 1
        pixels += s.valid.size
        invalid += int((~s.valid).sum())
        if s.is_empty:
            empty.append(s.id)
        if s.mask is None:
            unlabelled.append(s.id)
            continue
        labels.add(s.label)
        c = s.class_counts()
        counts.update(c)
        w, n = c["water"], c["not_water"]
        region["water"] += w
        region["not_water"] += n
        if w == 0 and n > 0:
            no_water.append(s.id)
    if unlabelled:
        problems.append(f"{len(unlabelled)} chip(s) without a label: {', '.join(unlabelled[:5])}"
                        + (" ..." if len(unlabelled) > 5 else ""))
    labelled = counts["water"] + counts["not_water"]
    return {
        "path": str(Path(path)), "format": ds.format, "bands": list(ds.bands), "chips": len(ds),
        # the counts keep their water_* names whatever the masks mark; `label` says what that is
        "label": " + ".join(sorted(labels)) or "water",
        "per_split": dict(Counter(s or "-" for s in ds.splits)), "per_region": per_region,
        "sizes": dict(sizes),
        "class_balance": {**dict(counts), "water_share": counts["water"] / labelled if labelled else None},
        "nodata_share": invalid / pixels if pixels else None,
        "empty_chips": empty, "no_water_chips": no_water, "unlabelled_chips": unlabelled,
        "unreadable_chips": unreadable, "problems": problems,
    }
