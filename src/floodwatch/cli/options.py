"""Options shared by the commands that run a model (evaluate, infer, map), declared once."""
import typer

from .common import Backend

THRESHOLD = typer.Option(0.5, "--threshold", help="Water probability threshold.")
BACKEND = typer.Option(Backend.auto, "--backend", help="Model back-end; auto picks by the file suffix.")
TTA = typer.Option(False, "--tta", help="Test-time augmentation (identity, hflip, vflip, rot90).")
TTA_TRANSFORMS = typer.Option(None, "--tta-transforms", help="TTA views, e.g. 'hflip,vflip' or 'd4' (implies --tta).")
WEIGHTS = typer.Option(None, "--weights", help="Ensemble weights, one per -m: '2,1'.")
TEMPERATURE = typer.Option(None, "--temperature", help="Apply the temperature in this JSON file.")
REFINE = typer.Option(None, "--refine", help="Refine the probability: none, guided (edge-aware guided filter, "
                      "guidance = the SAR input), 'guided:r=4,eps=0.1,min=16' (radius, edge threshold, flip "
                      "regions under 16 px) or 'clean:min=16' (flip only).")
