"""`floodwatch evaluate`: score a model beside Otsu on a dataset or a spec's held-out split."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import FloodwatchError
from . import options
from .common import (BATCH_SIZE, MODEL_HELP, Backend, DataFormat, QUIET, aliased, check_output_named, esc,
                     make_console, resolve_models, value)


def register(app: typer.Typer) -> None:
    @app.command("evaluate", cls=aliased(BATCH_SIZE))
    def evaluate_cmd(
        model: Optional[list[str]] = typer.Option(None, "-m", "--model", help=MODEL_HELP + " Repeat for an ensemble."),
        data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (any layout floodwatch reads)."),
        format: Optional[DataFormat] = typer.Option(None, "--format", help="Dataset layout (default: detected)."),
        spec: Optional[Path] = typer.Option(None, "-e", "--experiment-spec",
                                            help="Use this spec's test split (else its validation split)."),
        split: Optional[str] = typer.Option(None, "--split", help="Only this split (train/val/test, or a data set's "
                                            "own, e.g. Sen1Floods11's bolivia)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the metrics here as JSON."),
        save_predictions: Optional[Path] = typer.Option(
            None, "--save-predictions", help="Folder for one PNG per chip: SAR | model vs truth | Otsu vs truth."),
        batch_size: int = typer.Option(8, "--batch", min=1, help="Chips per model call."),
        threshold: float = options.THRESHOLD,
        backend: Backend = options.BACKEND,
        tta: bool = options.TTA,
        tta_transforms: Optional[str] = options.TTA_TRANSFORMS,
        downsample: int = options.DOWNSAMPLE,
        weights: Optional[str] = options.WEIGHTS,
        temperature: Optional[Path] = options.TEMPERATURE,
        refine: Optional[str] = options.REFINE,
        self_train: bool = options.SELF_TRAIN,
        calibrate: Optional[Path] = typer.Option(
            None, "--calibrate",
            help="Fit a temperature on this labelled dataset folder (or a spec's val split); report ECE before/after."),
        calibrate_format: Optional[DataFormat] = typer.Option(None, "--calibrate-format",
                                                       help="Its format (default: detected)."),
        save_temperature: Optional[Path] = typer.Option(None, "--save-temperature",
                                                        help="With --calibrate: write the fitted T here (JSON)."),
        report: Optional[Path] = typer.Option(None, "--report",
                                              help="Write an HTML accuracy report (DIR/index.html + pictures)."),
        no_otsu: bool = typer.Option(False, "--no-otsu", help="Skip the Otsu baseline."),
        quiet: bool = QUIET,
    ) -> None:
        """Water IoU, F1, precision, recall (pixel-aggregated and per-chip mean), per region, beside Otsu; ECE."""
        from ..evaluation.evaluate import evaluate, to_json_safe
        from ..evaluation.report import print_metrics_table
        from ..inference.refine import RefinePredictor
        from ..io import check_not_input, check_replaceable, write_json
        from ..models.zoo import kind_for_backend
        from ..training.data import evaluation_samples

        if data is None and spec is None:  # evaluation_samples' message is for both given ("not both")
            raise FloodwatchError("--data, --experiment-spec: give one of them (a data folder or a spec)")
        if calibrate is not None and temperature is not None:
            raise FloodwatchError("--calibrate: fits a new temperature; do not also give --temperature")
        if self_train and calibrate is not None:
            raise FloodwatchError("--self-train: a temperature is fitted for the model as trained; do not also give "
                                  "--calibrate")
        if save_temperature is not None and calibrate is None:
            raise FloodwatchError("--save-temperature: needs --calibrate VAL_PATH")
        # fails now, not after scoring: a file in the way, an input, a name saying another format (JSON over a.pt)
        for target, flag in ((output, "-o"), (save_temperature, "--save-temperature")):
            if target is not None:
                check_not_input(target, *(model or []), data, spec, temperature, calibrate, name=flag)
                check_output_named(target, ".json", "JSON", flag)
        if report is not None:
            from ..evaluation.accuracy_report import report_entry

            check_replaceable(report, report_entry, "the accuracy report")
        samples, described = evaluation_samples(data, format=value(format), spec=spec, split=split)
        model = resolve_models(model, "checkpoint" if self_train else kind_for_backend(value(backend)))
        if self_train:
            for m in model:
                options.check_self_train(m, value(backend), downsample)
        fit_samples, fitted_on = None, str(calibrate)
        if calibrate is not None:  # read before the evaluation: a bad --calibrate must not cost a whole run
            from ..data import open_dataset

            if calibrate.suffix.lower() in (".yaml", ".yml"):  # a spec: its validation split
                fit_samples, _ = evaluation_samples(spec=calibrate, split="val")
                fitted_on = f"{calibrate} (its val split)"  # which of the spec's chips, in every record of it
            else:
                fit_samples = list(open_dataset(calibrate, format=value(calibrate_format)))
        predictor = options.model_options_predictor(model, value(backend), tta, tta_transforms, weights, temperature,
                                                    refine, threshold, downsample)
        refined = isinstance(predictor, RefinePredictor)  # outermost when --refine is on (load_predictor)
        if fit_samples is not None:  # chips the model cannot take fail now, not after the whole scoring
            from ..evaluation.calibration import check_calibration_data

            check_calibration_data(predictor, fit_samples, f"--calibrate {calibrate}")
        if data is not None:  # 8-bit data read through the fixed map, by a model trained on per-scene maps
            from ..data.formats import resolve_format
            from ..inference.predictor import fixed_map_warning

            said = resolve_format(data, value(format)) in ("etci", "folders", "ombria") and \
                fixed_map_warning(predictor, [str(data)])
            if said:
                make_console(stderr=True).print(f"[yellow]warning:[/] {esc(said)}", highlight=False)
        self_training = None
        if self_train:
            from ..inference.selftrain import SelfTraining

            self_training = SelfTraining()
        # the result starts with the model file(s), `data` and the predictor's options, as from Python
        result = evaluate(predictor, samples, batch_size=batch_size, threshold=threshold, otsu=not no_otsu,
                          save_predictions=save_predictions, progress=not quiet, self_train=self_training,
                          data_name=described)
        names = " + ".join(m.name for m in model)
        console = make_console()
        extras = ((" +TTA" if tta or tta_transforms else "") + (f" +downsample {downsample}" if downsample > 1 else "")
                  + (f" +refine {result['refine']}" if refined else "") + (" +self-train" if self_train else ""))
        print_metrics_table(result, console, title=esc(f"{names}{extras} on {described}"))
        console.print(f"ECE (15 bins): {result['ece']:.4f}")
        calibration_view = None
        if calibrate is not None:
            from ..evaluation.calibration import calibrate as fit
            from ..inference.temperature import save_temperature as save_t

            # the temperature is applied before refinement (load_predictor), so it is fitted without it
            cal = fit(predictor.base if refined else predictor, fit_samples, samples, progress=not quiet)
            result["calibration"] = {"data": fitted_on, **cal}
            t, f, c = cal["temperature"], cal["fit"], cal["check"]
            console.print(esc(f"temperature T = {t:.4f} (fitted on {fitted_on}); ECE on it {f['ece_before']:.4f} -> "
                              f"{f['ece_after']:.4f}; on {described} {c['ece_before']:.4f} -> {c['ece_after']:.4f}"))
            if cal.get("note"):
                make_console(stderr=True).print(f"[yellow]warning:[/] {esc(cal['note'])}", highlight=False)
            calibration_view = {"temperature": t, "data": f"{fitted_on}; ECE measured on {described}", **c}
            if save_temperature is not None:
                save_t(save_temperature, t, fitted_on=fitted_on, model=result["model"],
                       ece_before=c["ece_before"], ece_after=c["ece_after"])
                console.print(esc(f"temperature: {save_temperature}"))
        if output is not None:
            write_json(output, to_json_safe(result))
            console.print(esc(f"metrics: {output}"))
        if save_predictions is not None:
            console.print(esc(f"prediction overlays: {save_predictions}/"))
        if report is not None:
            from ..evaluation.accuracy_report import write_accuracy_report

            # the gallery predicts its chips again: with --self-train the per-region models are gone by now
            index = write_accuracy_report(report, {described: result}, predictor=None if self_train else predictor,
                                          samples={described: samples}, calibration=calibration_view,
                                          title=f"{names} accuracy", notes=[f"model: {', '.join(map(str, model))}",
                                                                            f"TTA: {result['tta'] or 'none'}",
                                                                            f"downsample: {downsample}",
                                                                            f"refine: {result['refine'] or 'none'}",
                                                                            f"self-train: {'yes' if self_train else 'no'}"])
            console.print(esc(f"report: {index}"))
