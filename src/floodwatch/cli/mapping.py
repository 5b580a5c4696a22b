"""CLI commands for this stage (filled in as the stage lands)."""
import typer


def register(app: typer.Typer) -> None:
    pass
