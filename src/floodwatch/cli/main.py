"""The `floodwatch` command: a thin typer shell over the library. Each command group lives in its own
module with a `register(app)` function; errors from the library print as one line and exit 2."""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import FloodwatchError

app = typer.Typer(name="floodwatch", help="Flood mapping from Sentinel-1 SAR, end to end.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
err_console = Console(stderr=True)


@functools.cache
def _register_all() -> None:
    """Once per process: each `register` adds its commands again, and typer rebuilds every registered command
    on each call, so a process calling `main` many times (tests, a notebook) would slow with each call."""
    from . import acquire, data, demo, evaluate, export, infer, mapping, models, monitor, serve, spec, train

    for module in (data, spec, train, evaluate, infer, demo, export, mapping, serve, monitor, acquire, models):
        module.register(app)
    _lay_out_help(app)


#: `floodwatch --help` in panels, in this order; each command's one line there (its own --help keeps the whole
#: docstring, whose first paragraph is often several lines of file formats and exit codes)
PANELS: dict[str, dict[str, str]] = {
    "Commands": {
        "demo": "Try the whole path on synthetic data in minutes; writes report.html.",
        "map": "Map floods in whole scenes: mask and probability COGs, polygons, km².",
        "infer": "Predict water on chips: mask, probability and overlay per chip.",
        "train": "Train a U-Net flood segmenter from a spec (YAML or TAO text).",
        "evaluate": "Score a model beside Otsu: water IoU, F1, precision, recall per region.",
        "data": "Data: inspect, statistics, conversion, synthetic data, splits, previews.",
        "spec": "Experiment specs: convert TAO specs, validate.",
        "models": "Registered models: list them, read their model cards.",
    },
    "Optimise and serve": {
        "prune": "Remove conv filters for a smaller, faster model (fine-tune it after).",
        "export": "Export to ONNX (fp32, fp16, int8) or TensorRT, optionally for Triton.",
        "serve": "Run a Triton Inference Server on a model repository (Ctrl-C stops it).",
        "client": "Predict water on chips with a model on a Triton server, as infer does.",
    },
    "Monitor places": {
        "fetch": "Fetch Sentinel-1 VV/VH in dB over an AOI from a public STAC catalog.",
        "run": "Fetch, map, record and alert for one AOI and date, in one step.",
        "change": "Map new water between two dates (flood = water after and not before).",
        "aoi": "Areas of interest: define them, record runs over them, watch a STAC catalog.",
        "web": "Serve the monitoring web map of a database (read-only by default).",
    },
}

#: one line for subcommands whose docstring opens with more than one
SUBCOMMAND_LINES = {
    ("data", "inspect"): "Layout, chips per split and region, class balance, nodata, problems.",
    ("data", "stats"): "Per-band statistics, class balance, nodata -> JSON; --plot histograms.",
    ("data", "convert"): "Write a dataset in the course's images/ + masks/ PNG layout.",
    ("data", "synth"): "Write synthetic labelled chips, or one georeferenced scene (--scene).",
    ("spec", "convert"): "Convert a TAO UNet spec to floodwatch YAML.",
    ("spec", "validate"): "Check a spec as `train` would: fields, data paths, bands against channels.",
    ("aoi", "remove"): "Remove an AOI with its records, alerts and watched items.",
    ("aoi", "history"): "Time series of one AOI: flooded km², coverage per acquisition, oldest first.",
    ("aoi", "record"): "Record a finished map/change run in the AOIs it intersects; check alerts.",
    ("aoi", "watch"): "Map every new Sentinel-1 item over an AOI from a STAC catalog.",
    ("models", "list"): "The registered models: name, version, files, summary (* the default).",
    ("models", "info"): "A model's card: inputs, training data, accuracy beside Otsu, failure modes.",
}


def _lay_out_help(root: typer.Typer) -> None:
    """Panels and one-line summaries for the command lists; a command missing from PANELS stays in 'Commands'
    with its docstring's first paragraph (tests/cli/test_help.py asks for one line each)."""
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}
    line_of = {name: line for names in PANELS.values() for name, line in names.items()}
    order = list(panel_of)
    for info in (*root.registered_commands, *root.registered_groups):
        if info.name in panel_of:
            info.rich_help_panel = panel_of[info.name]
            info.short_help = line_of[info.name]
    # typer lists a panel's commands, and the panels themselves, in registration order
    root.registered_commands.sort(key=lambda i: order.index(i.name) if i.name in order else len(order))
    for group in root.registered_groups:
        for info in group.typer_instance.registered_commands:
            line = SUBCOMMAND_LINES.get((group.name, info.name))
            if line:
                info.short_help = line
    for info in (*root.registered_commands,
                 *(i for group in root.registered_groups for i in group.typer_instance.registered_commands)):
        info.help = _reflowed(info.help or inspect.getdoc(info.callback) or "")


def _reflowed(doc: str) -> str:
    """Each paragraph on one line, for the terminal to wrap: typer keeps a docstring's line breaks after its
    first paragraph, and rich then wraps those lines again, leaving a ragged stub at every source line end."""
    return "\n\n".join(p if "\b" in p else " ".join(line.strip() for line in p.splitlines())
                       for p in doc.split("\n\n"))


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Flood mapping from Sentinel-1 SAR, end to end."""


def _click_exceptions():
    try:
        from typer._click import exceptions  # typer >= 0.24 carries its own copy of click
    except ImportError:
        from click import exceptions
    return exceptions


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a service manager stopping the command), raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, so that the same clean-up runs: staged and temporary outputs are removed on the way out."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[threading.Event]:
    """While a command runs, SIGTERM raises Terminated; the event yielded says whether it came. A command that
    stops on SIGTERM itself (`serve`, which stops Triton) installs its own handler and puts this one back
    afterwards. Restored on return: a process calling `main` (tests, a notebook) keeps its own handler."""
    came = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield came
        return
    pid = os.getpid()

    def terminate(signum, frame):
        if os.getpid() != pid:  # a forked worker (a data loader, a pool) ends as SIGTERM ends it by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        came.set()
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield came
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    with _sigterm_as_interrupt() as terminated:
        try:
            _main(argv)
        except SystemExit:
            # typer ends an interrupted command with status 130 (Ctrl-C) whichever signal interrupted it
            if terminated.is_set():
                err_console.print("[bold red]terminated[/]")
                sys.exit(143)  # 128 + SIGTERM, what a shell reports for a process that SIGTERM ended
            raise
        except KeyboardInterrupt:  # one outside typer's handling (while commands register): no traceback either
            err_console.print(f"[bold red]{'terminated' if terminated.is_set() else 'interrupted'}[/]")
            sys.exit(143 if terminated.is_set() else 130)


def _main(argv: list[str] | None) -> None:
    click = _click_exceptions()
    _register_all()
    try:
        # not standalone: click would print a usage error as a multi-line box; here it is one line like the rest
        code = app(args=argv, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    # a bare `floodwatch` or group: the help, as click shows it (click >= 8.2 raises this; () catches nothing)
    except getattr(click, "NoArgsIsHelpError", ()) as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path} --help" if exc.ctx is not None else "--help"
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message())} (see {escape(where)})",
                          highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[bold red]aborted[/]")
        sys.exit(1)
    except FloodwatchError as exc:
        from .flags import command_flags, with_flags

        flags = command_flags(typer.main.get_command(app), sys.argv[1:] if argv is None else argv)
        # the message is data (paths, extras such as floodwatch[dali]), never markup
        err_console.print(f"[bold red]error:[/] {escape(with_flags(str(exc), flags))}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a disk, permission or path failure no check foresaw: still one line, naming the file
        where = next((str(f) for f in (exc.filename, exc.filename2) if f), "")
        # rasterio's and urllib's OSErrors carry no strerror, only their text
        what = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
        err_console.print(f"[bold red]error:[/] {escape(where + ': ' if where else '')}{escape(what)}",
                          highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
