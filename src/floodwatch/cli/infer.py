"""`floodwatch infer`: masks, probabilities and overlays for chip files (GeoTIFF keeps its georeference)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DataError
from . import options
from .common import MODEL_HELP, Backend, QUIET, esc, make_console, resolve_models, value


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders expand to the chip files directly inside them (sorted)."""
    from ..inference.chips import PNG_SUFFIXES, TIFF_SUFFIXES

    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in TIFF_SUFFIXES + PNG_SUFFIXES)
            if not found:
                raise DataError(f"{p}: folder holds no .tif/.tiff/.png/.jpg chips")
            out += found
        else:
            out.append(p)
    return out


def register(app: typer.Typer) -> None:
    @app.command("infer")
    def infer_cmd(
        inputs: list[Path] = typer.Argument(..., help="Chip files (GeoTIFF in dB, 8-bit PNG) or folders of them."),
        model: Optional[list[str]] = typer.Option(None, "-m", "--model", help=MODEL_HELP + " Repeat for an ensemble."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
        threshold: float = options.THRESHOLD,
        backend: Backend = options.BACKEND,
        tta: bool = options.TTA,
        tta_transforms: Optional[str] = options.TTA_TRANSFORMS,
        downsample: int = options.DOWNSAMPLE,
        weights: Optional[str] = options.WEIGHTS,
        temperature: Optional[Path] = options.TEMPERATURE,
        refine: Optional[str] = options.REFINE,
        quiet: bool = QUIET,
    ) -> None:
        """Predict water on each chip: <stem>_mask/_prob/_overlay.png and, when georeferenced, _mask/_prob.tif."""
        from ..inference.chips import infer_chips
        from ..models.zoo import kind_for_backend
        from .evaluate import model_options_predictor

        model = resolve_models(model, kind_for_backend(value(backend)))
        predictor = model_options_predictor(model, value(backend), tta, tta_transforms, weights, temperature, refine,
                                            threshold, downsample)
        records = infer_chips(predictor, expand_inputs(inputs), output, threshold=threshold,
                              progress=not quiet)
        console = make_console()
        for r in records:
            share = r["water_fraction"]
            console.print(esc(f"{r['id']}: " + ("no valid pixels" if share is None else
                                                f"water {100 * share:.1f}% of valid pixels")))
        console.print(esc(f"{len(records)} chip(s) -> {output}/ (summary.json)"))
