"""An AOI's history (flooded and permanent-water km² over time) as a picture or a CSV table."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from ..io import atomic_path, save_figure

#: a record that saw less of the AOI than this measured less of it: drawn hollow, as its km² is a floor
PARTIAL_COVERAGE = 0.9
#: CSV columns, in the order written (Store.history's keys)
CSV_COLUMNS = ("acquired", "kind", "scene_id", "flooded_km2", "permanent_water_km2", "valid_km2", "coverage", "id",
               "recorded")


def plot_history(records: list[dict[str, Any]], out_png: str | Path, title: str = "",
                 threshold_km2: float | None = None) -> Path:
    """Time series PNG of records (from Store.history), with the AOI's alert threshold as a dashed line if given.

    The km² axis starts at 0 (a 10 % rise is not drawn as a tenfold one); records that saw under 90 % of the AOI
    are hollow markers: their km² is of the part seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    partial = False
    for kind, marker in (("map", "o"), ("change", "s")):
        recs = [r for r in records if r["kind"] == kind]
        if not recs:
            continue
        t = [datetime.fromisoformat(r["acquired"].replace("Z", "+00:00")) for r in recs]
        (line,) = ax.plot(t, [r["flooded_km2"] for r in recs], marker=marker,
                          label="flooded km²" + (" (map)" if kind == "map" else " (change: new water)"))
        low = [(ti, r["flooded_km2"]) for ti, r in zip(t, recs)
               if r.get("coverage") is not None and r["coverage"] < PARTIAL_COVERAGE]
        if low:
            partial = True
            ax.plot(*zip(*low), ls="", marker=marker, mfc="white", mec=line.get_color(), zorder=3)
        perm = [(ti, r["permanent_water_km2"]) for ti, r in zip(t, recs) if r["permanent_water_km2"]]
        if perm:
            ax.plot(*zip(*perm), marker=".", ls="--", label=f"permanent water km² ({kind})")
    if threshold_km2 is not None:
        ax.axhline(threshold_km2, color="tab:red", ls=":", label=f"alert threshold {threshold_km2:g} km²")
    if partial:
        ax.plot([], [], ls="", marker="o", mfc="white", mec="grey",
                label=f"saw under {PARTIAL_COVERAGE:.0%} of the AOI")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("km²")
    ax.set_xlabel("acquired (UTC)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    if records or threshold_km2 is not None:
        ax.legend(loc="best", fontsize="small")
    return save_figure(fig, out_png, dpi=100)


def history_csv_text(records: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    """Records (from Store.history) as CSV text, one row per record in the given order, `columns` of each; empty
    cells where a record has no value (a change run's permanent water). `aoi history --csv` and the web map's
    history.csv both write it."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow("record_id" if c == "id" else c for c in columns)  # the id alerts and the web API give
    for r in records:
        writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return buf.getvalue()


def write_history_csv(records: list[dict[str, Any]], out_csv: str | Path) -> Path:
    """history_csv_text of `records` in a file, written under a temporary name, then renamed."""
    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp:
        tmp.write_text(history_csv_text(records), encoding="utf-8")
    return out_csv
