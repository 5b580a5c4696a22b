"""An accuracy report folder: DIR/index.html with its pictures beside it (plain relative links).

Sections: per-set and per-region scores with Otsu beside the model and ECE; reliability diagram(s);
optionally temperature scaling before/after; a gallery of the chips the model scores worst on
(SAR | truth | prediction vs truth), which is where one learns what it gets wrong.

    from floodwatch.evaluation.accuracy_report import write_accuracy_report
    result = evaluate(predictor, samples)
    write_accuracy_report("report/", {"ETCI test": result}, predictor=predictor, samples={"ETCI test": samples})
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.sample import WATER, Sample
from ..io import atomic_dir
from .calibration import reliability_png
from ..inference.overlay import COLOURS, comparison_rgb, safe_name, sar_backdrop, save_png, side_by_side, water_rgb
from .report import _fmt, metric_definitions

COLUMNS = ["set", "region", "chips", "IoU", "chip IoU", "F1", "prec.", "recall", "ECE", "Otsu IoU", "Otsu F1"]


def score_rows(sets: Mapping[str, dict[str, Any]]) -> list[list[str]]:
    """One 'all' row per set, then its regions."""
    rows = []
    for name, result in sets.items():
        for region, r in [("all", result)] + list(result.get("regions", {}).items()):
            o = r.get("otsu") or {}
            rows.append([name, region, _fmt(r["chips"]), _fmt(r["water_iou"]), _fmt(r["water_iou_chip_mean"]),
                         _fmt(r["f1"]), _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r.get("ece")),
                         _fmt(o.get("water_iou")), _fmt(o.get("f1"))])
    return rows


def report_entry(entry: Path) -> bool:
    """What a report folder consists of (index.html and its pictures): a rerun may replace only these."""
    return entry.is_file() and (entry.name == "index.html" or entry.suffix == ".png")


def worst_chips(result: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The n per-chip rows with the lowest defined water IoU (chips without water either side are no error)."""
    rows = [r for r in result.get("per_chip", []) if r.get("water_iou") is not None
            and not (isinstance(r["water_iou"], float) and math.isnan(r["water_iou"]))]
    return sorted(rows, key=lambda r: r["water_iou"])[:n]


def _gallery(folder: Path, set_name: str, result: dict[str, Any], samples: Sequence[Sample], predictor: Any,
             n: int, threshold: float) -> list[tuple[str, str]]:
    from ..data.preprocess import network_input
    from ..data.sample import band_index
    from ..inference.base import predictor_temporal

    by_id = {s.id: s for s in samples}
    out = []
    temporal = predictor_temporal(predictor)
    for row in worst_chips(result, n):
        s = by_id.get(row["id"])
        if s is None:
            continue
        prob = np.asarray(predictor.predict(network_input(s, predictor.preprocessing, temporal)[None]))[0]
        scored = s.valid & (s.mask != 255)
        truth = s.mask == WATER
        band = band_index(s, "VH")
        shown = s.bands[band] if len(s.bands) == s.image.shape[0] else "SAR"  # VV on a VV-only chip (OMBRIA)
        backdrop = sar_backdrop(s.image[band], s.valid)
        picture = side_by_side([backdrop, water_rgb(backdrop, truth & scored),
                                comparison_rgb(backdrop, prob >= threshold, truth, scored)])
        name = f"worst_{safe_name(set_name)}_{safe_name(s.id)}.png"
        save_png(folder / name, picture)
        otsu = row.get("otsu_water_iou")
        out.append((name, f"{set_name} / {s.id} ({shown}): IoU {_fmt(row['water_iou'])}"
                          + (f", Otsu {_fmt(otsu)}" if otsu is not None else "")))
    return out


def write_accuracy_report(out_dir: str | os.PathLike, sets: Mapping[str, dict[str, Any]], *,
                          predictor: Any = None, samples: Mapping[str, Sequence[Sample]] | None = None,
                          title: str = "floodwatch accuracy report", worst: int = 6,
                          calibration: dict[str, Any] | None = None, notes: Sequence[str] = ()) -> Path:
    """Write out_dir/index.html (+ PNGs) atomically; returns the index path.

    sets: name -> `evaluate()` result. predictor + samples (name -> the chips evaluated) enable the
    worst-chip gallery. calibration: {'temperature', 'ece_before', 'ece_after', 'reliability_before',
    'reliability_after'} from a temperature fit, shown as its own section.
    """
    threshold = next(iter(sets.values())).get("threshold", 0.5) if sets else 0.5
    parts = [f"<h1>{html.escape(title)}</h1>"] + [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    with atomic_dir(out_dir, ours=report_entry, writer="the accuracy report") as tmp:
        head = "".join(f"<th>{c}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in score_rows(sets))
        methods = sorted({(r.get("otsu") or {}).get("method", "") for r in sets.values()} - {""})
        label = " / ".join(sorted({r.get("label") or "water" for r in sets.values()})) or "water"
        label_notes = sorted({r["label_note"] for r in sets.values() if r.get("label_note")})
        parts += ["<h2 id=scores>Scores: model beside Otsu</h2>", f"<table><tr>{head}</tr>{body}</table>",
                  f"<p class=note>IoU, F1, precision and recall are for {html.escape(label)}, pixel-aggregated; "
                  "'chip IoU' is the mean over chips where it is defined; ECE: expected calibration error of the "
                  "model's probability (15 bins)."
                  + (f" Otsu here: {html.escape('; '.join(methods))}." if methods else "") + "</p>",
                  "<dl class=terms>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                                               for k, v in metric_definitions(label)) + "</dl>"]
        parts += [f"<p>label: {html.escape(n)}</p>" for n in label_notes]
        curves = [(name, r["reliability"]) for name, r in sets.items() if r.get("reliability")]
        if curves:
            reliability_png(curves, tmp / "reliability.png", title="reliability (model)")
            parts += ["<h2 id=reliability>Reliability diagram</h2>",
                      "<p>Observed water share against predicted probability; on the diagonal a probability "
                      "means what it says.</p><img src=reliability.png alt='reliability diagram'>"]
        if calibration:
            reliability_png([("before", calibration["reliability_before"]),
                             (f"after (T = {calibration['temperature']:.3g})", calibration["reliability_after"])],
                            tmp / "calibration.png", title="temperature scaling")
            parts += ["<h2 id=calibration>Temperature scaling</h2>",
                      f"<p>T = {calibration['temperature']:.4g} fitted on "
                      f"{html.escape(str(calibration.get('data', '')))}"
                      f"; ECE {_fmt(calibration['ece_before'])} before, {_fmt(calibration['ece_after'])} after.</p>",
                      "<img src=calibration.png alt='reliability before and after temperature scaling'>"]
        if predictor is not None and samples and worst > 0:
            figures = []
            for name, result in sets.items():
                if name in samples:
                    figures += _gallery(tmp, name, result, samples[name], predictor, worst, threshold)
            if figures:
                legend = " ".join(f'<span class=sw style="background:rgb{c}"></span>{html.escape(n)}'
                                  for n, c in COLOURS.items())
                parts += ["<h2 id=worst>Worst chips</h2>",
                          "<p>Lowest water IoU first. Panels: SAR (VH where the chip has it; the band is in each caption) | "
                          "truth | prediction vs truth.</p>"
                          f"<p>{legend}</p>"]
                parts += [f"<figure><img src='{html.escape(f)}' alt='{html.escape(c)}'><figcaption>{html.escape(c)}"
                          f"</figcaption></figure>" for f, c in figures]
        style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                 "td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}.note{color:#666;font-size:90%}"
                 "img{max-width:100%}figure{display:inline-block;margin:6px}"
                 "figure img{min-width:480px;image-rendering:pixelated}"  # small chips stay visible
                 ".sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}"
                 ".terms{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:90%}"
                 ".terms dt{font-weight:bold}.terms dd{margin:0}")
        (tmp / "index.html").write_text(
            f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n", encoding="utf-8")
    return Path(out_dir) / "index.html"
