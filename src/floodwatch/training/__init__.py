"""Spec-driven training of the U-Net: `train(spec, results_dir)` (what `floodwatch train` runs).

    from floodwatch.training import train
    result = train("examples/synthetic.yaml", "results", name="unet")
    result.best_checkpoint, result.history[-1]["water_iou"]

A spec with a `semi_supervised` section trains in pseudo-labelling rounds (`floodwatch.training.semi`).
"""
from .api import train
from .loop import TrainResult
from .losses import build_loss


def __getattr__(name: str):
    if name in ("train_semi_supervised", "SemiSupervisedResult"):
        from . import semi

        return getattr(semi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SemiSupervisedResult", "TrainResult", "build_loss", "train", "train_semi_supervised"]
