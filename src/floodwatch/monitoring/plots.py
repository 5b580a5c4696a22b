"""Pictures of an AOI's history (flooded and permanent-water km² over time)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..io import save_figure


def plot_history(records: list[dict[str, Any]], out_png: str | Path, title: str = "") -> Path:
    """Time series PNG of records (from Store.history); alert thresholds are not drawn (they are per AOI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    for kind, marker in (("map", "o"), ("change", "s")):
        recs = [r for r in records if r["kind"] == kind]
        if not recs:
            continue
        t = [datetime.fromisoformat(r["acquired"].replace("Z", "+00:00")) for r in recs]
        ax.plot(t, [r["flooded_km2"] for r in recs], marker=marker, label=f"flooded km² ({kind})")
        perm = [(ti, r["permanent_water_km2"]) for ti, r in zip(t, recs) if r["permanent_water_km2"]]
        if perm:
            ax.plot(*zip(*perm), marker=".", ls="--", label=f"permanent water km² ({kind})")
    ax.set_ylabel("km²")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    if records:
        ax.legend(loc="upper left")
    return save_figure(fig, out_png, dpi=100)
