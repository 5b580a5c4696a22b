"""Spec-driven training of the U-Net: `train(spec, results_dir)` (what `floodwatch train` runs).

    from floodwatch.training import train
    result = train("examples/synthetic.yaml", "results", name="unet")
    result.best_checkpoint, result.history[-1]["water_iou"]
"""
from .loop import TrainResult, train
from .losses import build_loss

__all__ = ["TrainResult", "build_loss", "train"]
