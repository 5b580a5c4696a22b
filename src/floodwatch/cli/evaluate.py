"""`floodwatch evaluate`: score a model beside Otsu on a dataset or a spec's held-out split."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        model: Path = typer.Option(..., "-m", "--model", help="Checkpoint (.pt) or ONNX model."),
        data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (any layout floodwatch reads)."),
        format: Optional[str] = typer.Option(None, "--format", help="Dataset format (default: detected)."),
        spec: Optional[Path] = typer.Option(None, "-e", "--experiment-spec",
                                            help="Use this spec's test split (else its validation split)."),
        split: Optional[str] = typer.Option(None, "--split", help="Only this split (train/val/test)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the metrics here as JSON."),
        save_predictions: Optional[Path] = typer.Option(
            None, "--save-predictions", help="Folder for one PNG per chip: SAR | model vs truth | Otsu vs truth."),
        batch_size: int = typer.Option(8, "--batch-size", min=1),
        threshold: float = typer.Option(0.5, "--threshold", help="Water probability threshold."),
        backend: str = typer.Option("auto", "--backend", help="torch, onnx or auto (by file suffix)."),
        no_otsu: bool = typer.Option(False, "--no-otsu", help="Skip the Otsu baseline."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    ) -> None:
        """Water IoU, F1, precision, recall (pixel-aggregated and per-chip mean), per region, beside Otsu."""
        from rich.console import Console

        from ..evaluation.evaluate import evaluate, evaluation_samples, to_json_safe
        from ..evaluation.report import print_metrics_table
        from ..inference import load_predictor
        from ..io import write_json

        samples, described = evaluation_samples(data, format=format, spec=spec, split=split)
        predictor = load_predictor(model, backend)
        result = evaluate(predictor, samples, batch_size=batch_size, threshold=threshold, otsu=not no_otsu,
                          save_predictions=save_predictions, progress=not quiet)
        result = {"model": str(model), "data": described, **result}
        console = Console()
        print_metrics_table(result, console, title=f"{model.name} on {described}")
        if output is not None:
            write_json(output, to_json_safe(result))
            console.print(f"metrics: {output}")
        if save_predictions is not None:
            console.print(f"prediction overlays: {save_predictions}/")
