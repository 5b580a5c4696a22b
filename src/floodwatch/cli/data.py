"""`floodwatch data inspect|stats|convert|synth|split|preview`: thin wrappers over floodwatch.data."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import MAX_SEED, SPLIT_SEED, QUIET, DataFormat, aliased, check_output_named, esc, make_console, value

FORMAT = typer.Option(None, "--format", help="Dataset layout (default: detected).")


class SplitMethod(str, Enum):
    random = "random"
    region = "region"
    blocked = "blocked"


class ConvertTarget(str, Enum):
    images_masks = "images-masks"


def _share(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Data: inspect, statistics, conversion, synthetic data, splits, previews.",
                           no_args_is_help=True)
    app.add_typer(data_app, name="data")

    # --json was inspect's name for it; `data stats` and `evaluate` write their JSON with -o, export's --json prints
    @data_app.command("inspect", cls=aliased({"--json": "--output", "--report": "--output"}))
    def inspect(path: Path = typer.Argument(..., help="Data folder (layout detected)."),
                format: Optional[DataFormat] = FORMAT,
                json_out: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the report to this "
                                                        "JSON file."),
                quiet: bool = QUIET) -> None:
        """Layout, chip counts per split and region, class balance, nodata, empty chips, problems."""
        from rich.table import Column, Table

        from ..data.inspect import inspect_dataset
        from ..errors import DataError
        from ..io import write_json

        if json_out is not None:
            check_output_named(json_out, ".json", "JSON")
        r = inspect_dataset(path, value(format), progress=False if quiet else None)
        console = make_console()
        console.print(f"[bold]{esc(r['path'])}[/]: {r['format']}, {r['chips']} chips, bands {', '.join(r['bands'])}, "
                      f"sizes {', '.join(f'{k} ({v})' for k, v in r['sizes'].items())}")
        cb, label = r["class_balance"], r["label"]  # "flood" where the masks mark the flood only (OMBRIA)
        console.print(f"pixels: {label} {cb['water']:,}, not {label} {cb['not_water']:,}, ignore or no data "
                      f"{cb['ignore']:,}; {label} share {_share(cb['water_share'])}; nodata share "
                      f"{_share(r['nodata_share'])}")
        table = Table(Column("region", overflow="fold"), "chips", label, f"not {label}", f"{label} share",
                      title="per region")
        for name, v in r["per_region"].items():
            n = v["water"] + v["not_water"]
            table.add_row(esc(name), str(v["chips"]), f"{v['water']:,}", f"{v['not_water']:,}",
                          _share(v["water"] / n if n else None))
        console.print(table)
        splits = Table("split", "chips", title="per split (the source's own lists)")
        for name, n in r["per_split"].items():
            splits.add_row(esc(name), str(n))
        console.print(splits)
        for key, label in (("empty_chips", "empty (all nodata or all ignore)"), ("no_water_chips", "no water")):
            if r[key]:
                console.print(esc(f"{label}: {len(r[key])}: {', '.join(r[key][:10])}"
                                  f"{' ...' if len(r[key]) > 10 else ''}"))
        for p in r["problems"]:
            console.print(f"[yellow]problem:[/] {esc(p)}", soft_wrap=True)
        if json_out:
            write_json(json_out, r)
        if r["unreadable_chips"]:  # the report is printed; the exit status says the data is not usable as is
            raise DataError(f"{len(r['unreadable_chips'])} chip(s) could not be read; first: {r['problems'][0]}")

    @data_app.command("stats")
    def stats(paths: list[Path] = typer.Argument(..., help="Data folder(s); several only with --plot or -o."),
              output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                    help="JSON file to write (several folders: one entry each)."),
              format: Optional[DataFormat] = FORMAT,
              split: Optional[str] = typer.Option(None, "--split", help="Only this split of the source."),
              max_pixels: int = typer.Option(2_000_000, "--max-pixels", min=1,
                                             help="Pixels sampled for percentiles."),
              plot: Optional[Path] = typer.Option(
                  None, "--plot", help="PNG of the harmonised per-band dB histograms of all the folders."),
              plot_chips: int = typer.Option(200, "--plot-chips", min=1,
                                             help="Chips per folder for --plot (random)."),
              quiet: bool = QUIET) -> None:
        """Per-band mean/std/percentiles, class balance, nodata share and normalisation inputs -> JSON;
        --plot draws the datasets' harmonised dB histograms side by side."""
        from ..data import open_dataset
        from ..data.stats import compute_stats
        from ..errors import DataError
        from ..io import write_json

        format, show = value(format), False if quiet else None
        if output is None and plot is None:
            raise DataError("stats: give -o FILE.json and/or --plot FILE.png")
        # a file in the way, or a name saying another format (JSON over a.pt), fails now, not after reading every chip
        if output is not None:
            check_output_named(output, ".json", "JSON")
        if plot is not None:
            check_output_named(plot, ".png", "PNG", "--plot")
        if output is not None:
            all_stats = {str(p): compute_stats(open_dataset(p, format, split=split), max_pixels=max_pixels,
                                                 progress=show)
                         for p in paths}
            write_json(output, next(iter(all_stats.values())) if len(paths) == 1 else all_stats)
            typer.echo(f"wrote {output}")
        if plot is not None:
            from ..data.harmonise_plot import harmonised_histograms_png

            # --format names one format for all folders; mixed sources are detected per folder
            harmonised_histograms_png(paths, plot, [format] * len(paths), max_chips=plot_chips, progress=show)
            typer.echo(f"wrote {plot}")

    # --split was convert's name for the CSV; elsewhere (stats, evaluate) --split names one split
    @data_app.command("convert", cls=aliased({"--split": "--split-csv"}))
    def convert(path: Path = typer.Argument(..., help="Data folder."),
                out: Path = typer.Argument(..., help="Output folder."),
                to: ConvertTarget = typer.Option(ConvertTarget.images_masks, "--to", help="Layout to write."),
                format: Optional[DataFormat] = FORMAT,
                split_csv: Optional[Path] = typer.Option(None, "--split-csv",
                                                           help="id,split CSV (`data split`): write images/<split> and "
                                                                "masks/<split> (the course's TAO layout)."),
                quiet: bool = QUIET) -> None:
        """Write a dataset in the course's images/ + masks/ PNG layout (with class_map.json)."""
        from ..data import open_dataset
        from ..data.convert import split_chips, to_images_masks
        from ..data.splits import read_split_csv

        split = read_split_csv(split_csv) if split_csv else None
        ds = open_dataset(path, value(format))
        chips, unknown = (split_chips(ds, split, split_csv) if split is not None else (ds.ids, []))
        to_images_masks(ds, out, split=split, split_source=split_csv or "split", progress=False if quiet else None)
        left_out = f" ({len(ds) - len(chips)} not in {split_csv} left out)" if len(chips) < len(ds) else ""
        typer.echo(f"wrote {len(chips)} chips to {out}{left_out}")
        if len(ds) and ds[0].before is not None:  # bi-temporal chips (OMBRIA): only their after image is written
            note = (f"{path}: its chips' before images are not written (the images/ + masks/ layout holds one image "
                    "per chip), so a bi-temporal model cannot train on the result")
            make_console(stderr=True).print(f"[yellow]warning:[/] {esc(note)}", highlight=False)
        if unknown:  # written all the same: a CSV made for a larger copy of the data set is fine
            note = f"{split_csv}: {len(unknown)} of its ids are no chip of {path}, e.g. '{unknown[0]}'"
            make_console(stderr=True).print(f"[yellow]warning:[/] {esc(note)}", highlight=False)

    @data_app.command("synth")
    def synth(out: Path = typer.Argument(..., help="Output folder (Sen1Floods11 layout), or with --scene a "
                                                   "GeoTIFF file."),
              chips: Optional[int] = typer.Option(None, "--chips", min=1, show_default=False,
                                                  help="Number of chips to write (default 16; not with --scene)."),
              size: int = typer.Option(64, "--size", min=8, help="Chip (or --scene) height and width in pixels."),
              seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED,
                                       help="Random seed (same seed, same data)."),
              scene: bool = typer.Option(False, "--scene", help="Write one georeferenced dual-pol dB scene "
                                         "(UTM, 10 m) to OUT, and its water mask beside it as OUT_label.tif, "
                                         "for trying `floodwatch map`."),
              phenomena: str = typer.Option("", "--phenomena", help="Comma-separated look-alikes and hard "
                                            "cases to add: sand, shadow, urban (land that looks like water "
                                            "or is bright), vegetation, wind (water that is not dark); or "
                                            "all.")) -> None:
        """Write a synthetic labelled dataset in the Sen1Floods11 layout, or one scene GeoTIFF (--scene)."""
        from ..data.synthetic import check_phenomena, synth_scene, write_scene, write_synthetic_dataset
        from ..errors import DataError
        from ..io import check_output_file

        try:
            names = check_phenomena(phenomena)
        except DataError as exc:
            raise DataError(f"--phenomena {exc}") from None
        if scene:
            if chips is not None:
                raise DataError("--chips: --scene writes one scene, not chips")
            if out.suffix:  # a name without one is taken as the GeoTIFF's; another format's (a.pt) is refused
                check_output_named(out, (".tif", ".tiff"), "a GeoTIFF", "OUT")
            check_output_file(out)
            label = out.with_name(f"{out.stem}_label{out.suffix or '.tif'}")
            write_scene(synth_scene(size, size, seed=seed, phenomena=names), out, label_path=label)
            typer.echo(f"wrote a {size}x{size} synthetic scene to {out} (water mask: {label})")
            return
        chips = 16 if chips is None else chips
        write_synthetic_dataset(out, chips=chips, size=size, seed=seed, phenomena=names)
        typer.echo(f"wrote {chips} synthetic chips of {size}x{size} to {out}")

    @data_app.command("split")
    def split(path: Path = typer.Argument(..., help="Data folder."),
              output: Path = typer.Option(..., "-o", "--output", help="CSV (id,split) to write."),
              method: SplitMethod = typer.Option(SplitMethod.random, "--method",
                                                 help="Chips at random, whole regions, or spatial blocks."),
              fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="Shares train,val[,test]."),
              seed: int = typer.Option(SPLIT_SEED, "--seed", min=0, max=MAX_SEED,
                                       help="Random seed (the spec's split.seed default, so that the same "
                                            "method and fractions hold out the same chips)."),
              block: int = typer.Option(4, "--block", help="Tiles per block side (method blocked)."),
              format: Optional[DataFormat] = FORMAT) -> None:
        """Split chips into train/val/test at random, by region, or in spatial blocks."""
        from ..data import open_dataset
        from ..data.splits import make_split, split_problems, write_split_csv
        from ..errors import DataError

        check_output_named(output, ".csv", "CSV")
        try:
            fr = tuple(float(f) for f in fractions.split(","))
        except ValueError:
            raise DataError(f"--fractions '{fractions}': expected numbers separated by commas") from None
        dataset = open_dataset(path, value(format))
        result = make_split(dataset, method.value, fr, seed=seed, block=block)
        write_split_csv(result, output)
        typer.echo(f"wrote {output}: " + ", ".join(f"{k} {len(v)}" for k, v in result.items()))
        err = make_console(stderr=True)
        for problem in split_problems(dataset, result, fr):  # written all the same: the user may know better
            err.print(f"[yellow]warning:[/] {esc(problem)}", highlight=False)

    @data_app.command("preview")
    def preview(path: Path = typer.Argument(..., help="Data folder."),
                output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
                n: int = typer.Option(8, "-n", "--chips", min=1, help="Number of chips shown."),
                seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED,
                                         help="Random seed for the chips and augmentations."),
                format: Optional[DataFormat] = FORMAT) -> None:
        """A grid of chips with their masks (and augmented views)."""
        from ..augment.preview import preview_grid

        check_output_named(output, ".png", "PNG")
        preview_grid(path, output, n=n, seed=seed, format=value(format))
        typer.echo(f"wrote {output}")
