"""Evaluation: segmentation metrics, the Otsu baseline, model-vs-Otsu scoring and reports.

    from floodwatch.evaluation.evaluate import evaluate
    result = evaluate("results/unet/best.pt", open_dataset("data/"))   # dict: water_iou, otsu, regions, ...

The package itself imports only the metrics, so the trainer can use them without the inference stack.
"""
from .metrics import ConfusionAccumulator, confusion_counts, scores

__all__ = ["ConfusionAccumulator", "confusion_counts", "scores"]
