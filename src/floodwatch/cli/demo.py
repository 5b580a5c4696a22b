"""`floodwatch demo`: the whole path on synthetic data (see floodwatch.demo)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        output: Path = typer.Option(Path("demo_out"), "-o", "--output", help="Folder for everything the demo makes."),
        quick: bool = typer.Option(False, "--quick", help="Smaller data and model: about a minute."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
    ) -> None:
        """Synthetic data -> train -> evaluate beside Otsu -> chip inference -> flood map -> report.html, on CPU in minutes."""
        from ..demo import run_demo

        run_demo(output, quick=quick, progress=not quiet)
