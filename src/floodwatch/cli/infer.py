"""`floodwatch infer`: masks, probabilities and overlays for chip files (GeoTIFF keeps its georeference)."""
from __future__ import annotations

import warnings

from pathlib import Path
from typing import Optional

import typer

from . import options
from .common import MODEL_HELP, Backend, QUIET, esc, make_console, resolve_models, value


def register(app: typer.Typer) -> None:
    @app.command("infer")
    def infer_cmd(
        inputs: list[Path] = typer.Argument(..., help="Chip files (GeoTIFF in dB, 8-bit PNG; <chip>_vv/<chip>_vh "
                                            "files pair), folders of them, or data set folders (ETCI, Sen1Floods11, "
                                            "STAC Overflow: as evaluate --data reads them)."),
        model: Optional[list[str]] = typer.Option(None, "-m", "--model", help=MODEL_HELP + " Repeat for an ensemble."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder (replaced whole by a rerun)."),
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
        """Predict water on each chip: <stem>_mask/_prob/_overlay.png (previews; the mask PNG is 255 water, 0 not
        water or no data) and, when georeferenced, _mask.tif (1 water, 0 not, 255 no data) and _prob.tif. A rerun
        replaces the output folder; one holding other files is refused."""
        from ..inference.chips import infer_chips, infer_outputs
        from ..io import check_replaceable
        from ..models.zoo import kind_for_backend

        check_replaceable(output, infer_outputs(output), "infer")  # before loading the models; infer_chips checks again
        model = resolve_models(model, kind_for_backend(value(backend)))
        predictor = options.model_options_predictor(model, value(backend), tta, tta_transforms, weights, temperature,
                                                    refine, threshold, downsample)
        # summary.json records the model file(s) and the options, as infer_chips does from Python
        with warnings.catch_warnings(record=True) as said:  # infer_chips' warnings, each on one line
            warnings.simplefilter("always", UserWarning)
            records = infer_chips(predictor, inputs, output, threshold=threshold, progress=not quiet)
        for w in said:
            make_console(stderr=True).print(f"[yellow]warning:[/] {esc(str(w.message))}", highlight=False)
        console = make_console()
        for r in records:
            share = r["water_fraction"]
            console.print(esc(f"{r['id']}: " + ("no valid pixels" if share is None else
                                                f"water {100 * share:.1f}% of valid pixels")))
        console.print(esc(f"{len(records)} chip(s) -> {output}/ (summary.json)"))
