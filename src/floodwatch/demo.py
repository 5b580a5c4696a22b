"""The whole path on synthetic data, on a laptop CPU: data -> spec -> train -> evaluate beside Otsu ->
chip inference -> report.html. `floodwatch demo` is a thin shell over `run_demo`.

Sizes are chosen so the full demo takes a few minutes on 2 CPU cores and `quick=True` about a minute;
the synthetic chips have known water, so the numbers mean something (a model that learned nothing
scores far below Otsu, a working one at or above it).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_path, ensure_output_dir, write_json

#: (chips, chip size px, epochs, ResNet depth); the quick variant is what the test suite runs.
FULL = dict(chips=96, size=64, epochs=10, num_layers=10, batch_size=8)
QUICK = dict(chips=24, size=32, epochs=2, num_layers=10, batch_size=8)


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    spec: Path
    checkpoint: Path
    metrics_json: Path
    predictions_dir: Path
    inference_dir: Path
    report: Path
    metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def demo_spec(data_dir: str, *, size: int, epochs: int, num_layers: int, batch_size: int) -> dict[str, Any]:
    """A spec in TAO's sections; a split by region so the test chips come from places training never saw."""
    return {
        "dataset_config": {"data_root": data_dir, "format": "sen1floods11",
                           "split": {"method": "region", "fractions": [0.5, 0.25, 0.25], "seed": 0}},
        "model_config": {"arch": "resnet", "num_layers": num_layers, "model_input_height": size,
                         "model_input_width": size, "model_input_channels": 2},
        "training_config": {"batch_size": batch_size, "epochs": epochs, "learning_rate": 0.003,
                            "loss": "cross_dice_sum", "lr_scheduler": "cosine", "random_seed": 0,
                            # one epoch_NNN.pt at the end: best.pt and last.pt already cover the demo
                            "checkpoint_interval": epochs, "log_summary_steps": 5},
    }


def run_demo(out_dir: str | os.PathLike = "demo_out", quick: bool = False, *, progress: bool = True,
             console: Any = None) -> DemoResult:
    """Run every stage into `out_dir` and print where everything is; returns the paths and metrics."""
    from rich.console import Console

    from .config import load_spec
    from .data import write_synthetic_dataset
    from .evaluation.evaluate import evaluate, evaluation_samples, to_json_safe
    from .evaluation.overlay import safe_name
    from .evaluation.report import learning_curve_png, print_metrics_table, write_html_report
    from .inference import load_predictor
    from .inference.chips import infer_chips
    from .training import train

    console = console or Console()
    cfg = QUICK if quick else FULL
    out = Path(out_dir).resolve()
    ensure_output_dir(out)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    console.rule(f"[bold]floodwatch demo{' (quick)' if quick else ''}")
    console.print(f"1/5 synthetic data: {cfg['chips']} chips of {cfg['size']} px, 4 regions")
    data_dir = write_synthetic_dataset(out / "data", chips=cfg["chips"], size=cfg["size"], seed=0)
    spec_path = out / "spec.yaml"
    with atomic_path(spec_path) as tmp:
        tmp.write_text(yaml.safe_dump(demo_spec("data", size=cfg["size"], epochs=cfg["epochs"],
                                                num_layers=cfg["num_layers"], batch_size=cfg["batch_size"]),
                                      sort_keys=False))
    load_spec(spec_path)  # fail here, with the field named, rather than inside training
    stage("data")

    console.print(f"2/5 training U-Net/ResNet-{cfg['num_layers']} for {cfg['epochs']} epochs")
    trained = train(spec_path, out / "results", name="demo", progress=progress)
    checkpoint = Path(trained.best_checkpoint)
    stage("train")

    console.print("3/5 evaluating on the held-out test regions, beside Otsu")
    samples, described = evaluation_samples(spec=spec_path)
    predictor = load_predictor(checkpoint)
    metrics = evaluate(predictor, samples, save_predictions=out / "predictions", progress=progress)
    metrics = {"model": str(checkpoint), "data": described, **metrics}
    metrics_json = write_json(out / "metrics.json", to_json_safe(metrics))
    print_metrics_table(metrics, console, title="demo: model beside Otsu on held-out regions")
    stage("evaluate")

    console.print("4/5 chip inference (GeoTIFF in -> masks, probabilities, overlays)")
    chosen = sorted(metrics["per_chip"], key=lambda r: -r["water_pixels"])[:3]
    inputs = [data_dir / "S1Hand" / f"{r['id']}_S1Hand.tif" for r in chosen]
    infer_chips(predictor, inputs, out / "inference", progress=progress)
    stage("infer")

    console.print("5/5 report")
    curve = None
    metrics_csv = Path(trained.results_dir) / "metrics.csv"
    if metrics_csv.is_file():
        curve = learning_curve_png(metrics_csv, out / "learning_curve.png")
    overlays = [out / "predictions" / f"{safe_name(r['id'])}.png" for r in chosen]
    report = write_html_report(
        out / "report.html", title="floodwatch demo (synthetic Sentinel-1 chips)", metrics=metrics,
        learning_curve=curve, overlays=overlays,
        overlay_caption="Each: SAR (VH) | model vs truth | Otsu vs truth, on test chips with the most water.",
        sections=[("Run", _run_html(cfg, seconds, checkpoint, out))])
    stage("report")

    for name, path in (("data", data_dir), ("spec", spec_path), ("checkpoint", checkpoint),
                       ("metrics", metrics_json), ("prediction overlays", out / "predictions"),
                       ("chip inference", out / "inference"), ("report", report)):
        console.print(f"  {name:<20} {path}")
    console.print(f"done in {sum(seconds.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
    return DemoResult(out, data_dir, spec_path, checkpoint, metrics_json, out / "predictions", out / "inference",
                      report, metrics, seconds)


def _run_html(cfg: dict[str, Any], seconds: dict[str, float], checkpoint: Path, out: Path) -> str:
    import html

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in
                   [*cfg.items(), *((f"time: {k} (s)", v) for k, v in seconds.items()),
                    ("checkpoint", os.path.relpath(checkpoint, out))])
    return f"<table>{rows}</table>"
