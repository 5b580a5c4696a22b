"""Showing results: a rich table for the terminal, a learning-curve PNG and a self-contained HTML report."""
from __future__ import annotations

import base64
import csv
import html
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import DataError
from ..io import atomic_path, save_figure
from ..inference.overlay import COLOURS


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def metrics_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows 'all' + one per region: chips, model water IoU / chip mean / F1 / precision / recall, Otsu IoU / F1."""
    def row(name: str, r: dict[str, Any]) -> list[str]:
        o = r.get("otsu") or {}
        return [name, _fmt(r["chips"]), _fmt(r["water_iou"]), _fmt(r["water_iou_chip_mean"]), _fmt(r["f1"]),
                _fmt(r["precision"]), _fmt(r["recall"]), _fmt(o.get("water_iou")), _fmt(o.get("f1"))]

    return [row("all", result)] + [row(name, r) for name, r in result.get("regions", {}).items()]


METRIC_COLUMNS = ["region", "chips", "IoU", "chip IoU", "F1", "prec.", "recall", "Otsu IoU", "Otsu F1"]


def print_metrics_table(result: dict[str, Any], console: Any = None, title: str = "water segmentation") -> None:
    """Model beside Otsu, overall and per region (water IoU pixel-aggregated; 'chip IoU' = mean over chips)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(METRIC_COLUMNS):
        table.add_column(col, justify="left" if i == 0 else "right", style="bold" if col == "IoU" else None,
                         overflow="fold" if i == 0 else "ellipsis")
    for i, r in enumerate(metrics_rows(result)):
        table.add_row(escape(r[0]), *r[1:], end_section=(i == 0))  # region names are data, not markup
    console.print(table)
    label = result.get("label") or "water"
    notes = [f"{label} IoU over {result['pixels']:,} pixels at threshold {result.get('threshold', 0.5)}; "
             "chip IoU: mean over chips where it is defined"]
    skipped = [f"{result[k]} {what}" for k, what in (("empty_chips", "empty (all no data or ignore)"),
                                                      ("unlabelled_chips", "unlabelled")) if result.get(k)]
    if skipped:  # the readers leave chips without a label file out before this; only what was seen is counted
        notes.append("skipped: " + ", ".join(skipped))
    if "otsu" in result:
        notes.append(result["otsu"].get("method", "Otsu"))
    console.print("; ".join(notes), style="dim")
    if result.get("label_note"):  # not dim: the scores cannot be read as water scores without it
        console.print(f"label: {escape(result['label_note'])}")


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a training metrics CSV as float lists (non-numeric cells -> nan)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics CSV not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{path}: metrics CSV has no rows")
    cols: dict[str, list[float]] = {k: [] for k in rows[0] if k}
    for r in rows:
        for k in cols:
            try:
                cols[k].append(float(r.get(k) or "nan"))
            except ValueError:
                cols[k].append(float("nan"))
    return cols


def learning_curve_png(metrics_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Losses (left) and scores such as IoU/F1 (right) against epoch (or step) from a training metrics CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = read_metrics_csv(metrics_csv)
    xname = next((k for k in ("epoch", "step", "iteration") if k in cols), None)
    x = cols[xname] if xname else list(range(1, len(next(iter(cols.values()))) + 1))
    numeric = {k: v for k, v in cols.items() if k != xname and any(not math.isnan(a) for a in v)}
    skip = ("lr", "learning_rate", "time", "seconds", "wall")
    losses = {k: v for k, v in numeric.items() if "loss" in k.lower()}
    others = {k: v for k, v in numeric.items()
              if k not in losses and not any(s in k.lower() for s in skip)
              and all(math.isnan(a) or -0.001 <= a <= 1.001 for a in v)}  # scores live in [0, 1]
    if not losses and not others:
        raise DataError(f"{metrics_csv}: no loss or score columns to plot (columns: {', '.join(cols)})")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, group, ylabel in ((axes[0], losses, "loss (lower is better)"),
                              (axes[1], others, "score, 0-1 (higher is better)")):
        for name, ys in group.items():
            pts = [(a, b) for a, b in zip(x, ys) if not math.isnan(b)]
            if pts:
                ax.plot(*zip(*pts), marker="o" if len(pts) < 30 else None, ms=3, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xname or "row")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8)
    axes[1].set_ylim(0, 1)
    # Losses spanning more than 100x (a diverging run, or an early epoch far off): log scale keeps the
    # later, informative epochs readable.
    positive = [v for ys in losses.values() for v in ys if not math.isnan(v) and v > 0]
    if positive and max(positive) / min(positive) > 100:
        axes[0].set_yscale("log")
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=110)


def _img_tag(path: Path, alt: str, upscale_below: int | None = None) -> str:
    """Embedded PNG; images narrower than `upscale_below` px are shown enlarged (small chips stay visible)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    w = ""
    if upscale_below:
        from PIL import Image

        with Image.open(path) as im:
            width = im.size[0]
        w = f' width="{width * max(1, upscale_below // max(width, 1))}"'
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{w}>'


def _figure(path: Path, caption: str, labels: Sequence[str] = ()) -> str:
    """A picture (enlarged when small) with its panels labelled above it and a caption below."""
    from PIL import Image

    with Image.open(path) as im:
        width = im.size[0]
    shown = width * max(1, 500 // max(width, 1))
    head = ""
    if labels:
        cells = "".join(f"<span>{html.escape(t)}</span>" for t in labels)
        head = (f'<div class=panels style="width:{shown}px;grid-template-columns:repeat({len(labels)},1fr)">'
                f"{cells}</div>")
    return (f"<figure>{head}{_img_tag(path, caption, upscale_below=500)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _metrics_html(result: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in METRIC_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in metrics_rows(result))
    return f"<table><tr>{head}</tr>{body}</table>"


def metric_definitions(label: str = "water") -> list[tuple[str, str]]:
    """What the metric columns mean, for readers of a report; `label` is what the masks mark ("water", or
    "flood" for OMBRIA's). TP: `label` called so, FP: the rest called so, FN: `label` missed; all counted over
    scored pixels."""
    return [
        ("IoU", f"intersection over union of predicted and true {label}, TP / (TP + FP + FN), over all scored "
                "pixels of the rows' chips together"),
        ("chip IoU", f"the same per chip, averaged over chips that have {label} or a {label} prediction"),
        ("prec.", f"precision, TP / (TP + FP): of the pixels called {label}, the share that is {label}"),
        ("recall", f"TP / (TP + FN): of the {label}, the share that was found"),
        ("F1", "2 · precision · recall / (precision + recall)"),
        ("Otsu IoU, F1", "the same scores for Otsu's method, the classic baseline that needs no training: one "
                         "threshold per chip (or scene), the backscatter level that best splits its histogram into "
                         "a dark and a bright group, dark being water; the note under the table names the band"),
    ]


METRIC_DEFINITIONS = metric_definitions()


def write_html_report(out_path: str | os.PathLike, *, title: str, metrics: dict[str, Any] | None = None,
                      learning_curve: str | os.PathLike | None = None, learning_curve_note: str = "",
                      overlays: Sequence[str | os.PathLike] = (), overlay_caption: str = "",
                      overlay_labels: Sequence[str] = (), intro: str = "",
                      sections: Iterable[tuple[str, str]] = ()) -> Path:
    """A single self-contained HTML file (images embedded): metrics table, learning curve, overlays.

    intro: HTML under the title. learning_curve_note: HTML under the curve. overlay_labels: one label per
    panel of every overlay picture (panels side by side, equal widths), shown above each picture.
    sections: extra (heading, HTML) pairs appended at the end, e.g. by later pipeline stages.
    """
    parts = [f"<h1>{html.escape(title)}</h1>", intro]
    if metrics is not None:
        terms = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                        for k, v in metric_definitions(metrics.get("label") or "water"))
        parts += ["<h2>Evaluation: model beside Otsu</h2>", _metrics_html(metrics),
                  f"<p class=note>Water IoU is pixel-aggregated over {metrics['pixels']:,} scored pixels at "
                  f"probability threshold {metrics.get('threshold', 0.5)}; 'chip IoU' averages chips where water "
                  "IoU is defined."
                  + (f" Otsu here: {html.escape(metrics['otsu']['method'])}." if metrics.get("otsu") else "")
                  + "</p>",
                  f"<dl class=terms>{terms}</dl>"]
    if learning_curve is not None:
        parts += ["<h2>Learning curve</h2>", _img_tag(Path(learning_curve), "learning curve"), learning_curve_note]
    if overlays:
        legend = " ".join(f'<span class=sw style="background:rgb{c}"></span>{html.escape(n)}'
                          for n, c in COLOURS.items())
        parts += ["<h2>Examples</h2>", f"<p>{html.escape(overlay_caption)}</p><p>{legend}</p>"]
        for p in overlays:
            parts.append(_figure(Path(p), Path(p).stem, overlay_labels))
    for heading, content in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", content]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:90%}"
             "img{image-rendering:pixelated;max-width:100%}figure{display:inline-block;margin:6px;vertical-align:top}"
             ".sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}"
             ".panels{display:grid;font-size:85%;text-align:center;color:#444}"
             ".terms{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:90%}"
             ".terms dt{font-weight:bold}.terms dd{margin:0}")
    doc = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return out_path
