"""`floodwatch train`: TAO's flags (-e spec, -r results, -n name, -m pretrained model, --gpus) over
`floodwatch.training.train`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import MAX_SEED, QUIET, aliased, esc, make_console


def register(app: typer.Typer) -> None:
    # --pretrained-model was -m's long name; every other command says --model
    @app.command("train", cls=aliased({"--pretrained-model": "--model"}))
    def train_cmd(
        experiment_spec: Path = typer.Option(..., "-e", "--experiment-spec", help="Spec file (YAML or TAO text)."),
        results_dir: Path = typer.Option(..., "-r", "--results-dir", help="Folder for checkpoints and logs."),
        name: str = typer.Option("model", "-n", "--name", help="Run name (a folder name): outputs go to "
                                                                  "RESULTS_DIR/NAME."),
        pretrained: Optional[str] = typer.Option(
            None, "-m", "--model",
            help="A floodwatch checkpoint to fine-tune (a .pt file, a name from `floodwatch models list`, or "
                 "https://.../FILE#sha256=HEX), or torchvision ResNet weights (file or URL) for the encoder."),
        gpus: int = typer.Option(1, "--gpus", help="Processes (one per GPU; gloo on CPU)."),
        resume: bool = typer.Option(False, "--resume", help="Continue a killed run from RESULTS_DIR/NAME/last.pt "
                                                            "(with the spec it started with)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in RESULTS_DIR/NAME "
                                                                  "(one there is refused without this or --resume); "
                                                                  "it stays until the new run saves its first "
                                                                  "checkpoint."),
        seed: Optional[int] = typer.Option(
            None, "--seed", min=0, max=MAX_SEED,
            help="Replace training_config.random_seed (the split keeps its own): one spec, several seeds, an "
                 "ensemble (evaluate/infer -m A -m B)."),
        quiet: bool = QUIET,
    ) -> None:
        """Train a U-Net flood segmenter from a spec; best.pt is chosen by validation water IoU.

        A spec with a semi_supervised section trains in pseudo-labelling rounds (RESULTS_DIR/NAME/round_<r>/,
        semi_supervised.json, best.pt = the last round's best)."""
        from ..training import train
        from ..training.loop import best_row

        result = train(experiment_spec, results_dir, name=name, pretrained=pretrained, gpus=gpus, resume=resume,
                       progress=not quiet, seed=seed, overwrite=overwrite)
        best = best_row(result.history)
        console = make_console()
        rounds = getattr(result, "rounds", None)
        if rounds is not None:  # semi-supervised: one line per round
            for r in rounds:
                iou = r.get("val_water_iou")
                what = ("supervised" if r.get("supervised") else
                        f"{r.get('chips_pseudo_labelled', 0)}/{r.get('chips', 0)} chips pseudo-labelled")
                console.print(esc(f"round {r['round']} ({what}): best water IoU "
                                  f"{'n/a' if iou is None else format(iou, '.3f')} -> {r['best_checkpoint']}"))
            console.print(esc(f"final model: {result.best_checkpoint}; summary: {result.summary}"))
            return
        if best is not None:
            console.print(esc(f"best epoch {best['epoch']}: water IoU {best['water_iou']:.3f} -> "
                              f"{result.best_checkpoint}"))
        last = f"last: {result.last_checkpoint}; " if result.last_checkpoint else ""
        console.print(esc(f"{last}metrics: {result.results_dir / 'metrics.csv'} (learning_curve.png beside it)"))
