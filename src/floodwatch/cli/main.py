"""The `floodwatch` command: a thin typer shell over the library. Each command group lives in its own
module with a `register(app)` function; errors from the library print as one line and exit 2."""
from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import FloodwatchError

app = typer.Typer(name="floodwatch", help="Flood mapping from Sentinel-1 SAR, end to end.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
err_console = Console(stderr=True)


def _register_all() -> None:
    from . import acquire, data, demo, evaluate, export, infer, mapping, models, monitor, serve, spec, train

    for module in (data, spec, train, evaluate, infer, demo, export, mapping, serve, monitor, acquire, models):
        module.register(app)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Flood mapping from Sentinel-1 SAR, end to end."""


def main(argv: list[str] | None = None) -> None:
    _register_all()
    try:
        app(args=argv, standalone_mode=True)
    except FloodwatchError as exc:
        from .flags import command_flags, with_flags

        flags = command_flags(typer.main.get_command(app), sys.argv[1:] if argv is None else argv)
        # the message is data (paths, extras such as floodwatch[dali]), never markup
        err_console.print(f"[bold red]error:[/] {escape(with_flags(str(exc), flags))}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
