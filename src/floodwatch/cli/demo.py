"""`floodwatch demo`: the whole path on synthetic data (see floodwatch.demo)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        output: Path = typer.Option(Path("demo_out"), "-o", "--output", help="Folder for everything the demo makes."),
        quick: bool = typer.Option(False, "--quick", help="24 chips of 32 px and 2 epochs instead of 96 of 64 px "
                                   "and 10, the same model: under a minute, scores that mean little."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
    ) -> None:
        """Synthetic data -> train -> evaluate beside Otsu -> chip inference -> flood map -> report.html, on CPU in minutes.

        The scores are on synthetic data: they show that each stage works, not how well a model maps real floods
        (`floodwatch models info` has the default model's). -o takes a new or empty folder, or an earlier demo's,
        which it writes over."""
        from ..demo import run_demo

        run_demo(output, quick=quick, progress=not quiet)
