"""`floodwatch spec convert|validate`: TAO's protobuf-text spec -> YAML, and checking a spec."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_output_named, esc, make_console


def register(app: typer.Typer) -> None:
    spec_app = typer.Typer(help="Experiment specs: convert TAO specs, validate.", no_args_is_help=True)
    app.add_typer(spec_app, name="spec")

    @spec_app.command("convert")
    def convert(tao_spec: Path = typer.Argument(..., help="TAO UNet spec (protobuf text)."),
                output: Path = typer.Option(..., "-o", "--output", help="YAML spec to write.")) -> None:
        """Convert a TAO UNet spec to floodwatch YAML (paths re-expressed relative to the output)."""
        from ..config import convert_tao_spec

        # a spec is known by these suffixes (evaluate --calibrate); YAML over a.pt is refused as JSON is
        check_output_named(output, (".yaml", ".yml"), "a YAML spec")
        ignored = convert_tao_spec(tao_spec, output)
        console = make_console()
        _print_dropped(console, ignored)
        console.print(esc(f"wrote {output}"))

    @spec_app.command("validate")
    def validate(spec: Path = typer.Argument(..., help="Spec file (YAML or TAO text)."),
                 model: Optional[str] = typer.Option(
                     None, "-m", "--model", help="The checkpoint `train -m` would fine-tune (its model, not "
                                                 "model_config's, is then checked against the data).")) -> None:
        """Check a spec as `train -e SPEC [-m MODEL]` would; prints a one-line summary, or every error, one a
        line, each starting with the spec's file name and the field (exit 2). Field errors (typos, wrong
        values) come alone: until they are fixed there is no spec whose data paths and channel counts could
        be checked; those two come together, and when the paths exist, the data's bands against the model's
        channels (and the unlabelled folders' bands), as training checks them."""
        from ..config import SpecProblems, load_spec, spec_channel_problems, spec_path_problems
        from ..training.api import resolve_pretrained

        err = make_console(stderr=True)

        def fail(problems: list[str], note: str = "") -> None:
            # here, unlike in the commands that load a spec to use it, every problem is the output
            for problem in problems:
                err.print(f"[bold red]error:[/] {esc(problem)}", highlight=False, soft_wrap=True)
            if note:
                err.print(esc(note), highlight=False, soft_wrap=True)
            raise typer.Exit(2)

        ignored: list[str] = []
        try:
            s = load_spec(spec, check_channels=False, ignored=ignored)  # channels are listed below, with the paths
        except SpecProblems as exc:
            fail(exc.lines, "fix these first; data paths and channel counts are checked after")
        pretrained = resolve_pretrained(model)  # a bad -m fails here, as in train
        # a checkpoint's model may take the place of model_config's (train checks then, as here)
        problems = (spec_channel_problems(s) if pretrained is None else []) + spec_path_problems(s)
        if not problems:  # the data are there: training's band and channel checks, on the data opened (not read)
            from ..training.api import training_data_problems

            problems = training_data_problems(s, pretrained)
        if problems:
            fail([f"{spec.name}: {p}" for p in problems])  # as field errors start: file name, then field
        from ..models.checkpoint import checkpoint_or_none

        ds, m, t = s.dataset_config, s.model, s.training_config
        meta, source = checkpoint_or_none(pretrained), ""
        if meta is not None and meta.get("model_config"):  # the model train would fine-tune, not model_config's
            from ..training.loop import spec_as_trained

            m, source = spec_as_trained(s, meta["model_config"]).model, f", from {Path(str(pretrained)).name}"
        data = ds.data_root or ds.train_images_path or \
            f"{len(ds.sources)} source(s): " + ", ".join(Path(src.path).name for src in ds.sources)
        line = (f"{spec}: valid. data {data}; ResNet-{m.num_layers} U-Net {m.model_input_height}x"
                f"{m.model_input_width}x{m.model_input_channels} ({m.temporal}{source}); {t.epochs} epoch{'s' if t.epochs != 1 else ''}, "
                f"batch {t.batch_size}, loss {t.loss}, lr {t.learning_rate:g}"
                + (f"; semi-supervised: {s.semi_supervised.rounds} round(s) on "
                   f"{len(s.semi_supervised.unlabelled)} unlabelled folder(s), confidence "
                   f"{s.semi_supervised.confidence:g}, {s.semi_supervised.teacher} teacher"
                   if s.semi_supervised else ""))
        console = make_console()
        console.print(esc(line), highlight=False, soft_wrap=True)
        _print_dropped(console, ignored)  # TAO settings training will not apply: said as `spec convert` says them


def _print_dropped(console, ignored: list[str]) -> None:
    """The TAO settings a spec gave that floodwatch drops, one a line with the reason."""
    if ignored:
        console.print(f"[yellow]not used by floodwatch, dropped:[/] {esc(ignored[0])}", highlight=False, soft_wrap=True)
        for entry in ignored[1:]:
            console.print(f"  {esc(entry)}", highlight=False, soft_wrap=True)
