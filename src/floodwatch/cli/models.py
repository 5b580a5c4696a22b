"""`floodwatch models list|info`: the registered models and their cards (floodwatch.models.zoo)."""
from __future__ import annotations

from typing import Optional

import typer

from .common import esc, make_console


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Registered models: list them, read their model cards.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_cmd() -> None:
        """The registered models: name, version, files, summary (* marks the default). A damaged card, or a file
        missing or not matching its card's sha256, is named on stderr (exit status 2) after the list."""
        from rich.table import Column, Table

        from ..models.zoo import list_models, zoo_dir

        console, problems = make_console(), []
        models = list_models(problems)
        if not models and not problems:
            console.print(esc(f"no models installed in {zoo_dir()}"), highlight=False)
            return
        table = Table(Column("name", overflow="fold"), "version", "files", Column("summary", overflow="fold"))
        for m in models:
            damaged = m.file_problems()  # as any use of the model would find (sha256 of each file, once)
            problems += damaged
            files = ", ".join(f"{kind} ({f.precision})" for kind, f in m.card.files.items()) + \
                (" [bold red]damaged[/]" if damaged else "")
            table.add_row(esc(m.name) + (" *" if m.is_default else ""), esc(m.card.version), files,
                          esc(m.card.summary))
        if models:
            console.print(table)
        if problems:  # the good ones are listed; a bad card still fails the command, as it fails any use
            err = make_console(stderr=True)
            for problem in problems:
                err.print(f"[bold red]error:[/] {esc(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)

    @models_app.command("info")
    def info_cmd(name: Optional[str] = typer.Argument(None, help="Model name (default: the default model)."),
                 markdown: bool = typer.Option(False, "--markdown", help="Print the card's Markdown source.")) -> None:
        """A model's card: inputs, training data and licences, recipe, accuracy beside Otsu, use, failure modes."""
        from rich.console import Console
        from rich.markdown import Markdown

        from ..errors import NoDefaultModelError
        from ..models.card import card_markdown
        from ..models.zoo import get_model

        try:
            model = get_model(name)
        except NoDefaultModelError as exc:
            raise NoDefaultModelError(f"{exc}: see `floodwatch models list`") from None
        text = card_markdown(model.card, default=model.is_default)
        if markdown:
            typer.echo(text, nl=False)
        else:  # prose wraps to the terminal (80 columns when piped), unlike the tables of make_console()
            Console().print(Markdown(text))
        problems = model.file_problems()  # the card is still worth reading; the model is not usable as it is
        if problems:
            err = make_console(stderr=True)
            for problem in problems:
                err.print(f"[bold red]error:[/] {esc(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
