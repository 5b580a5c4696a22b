"""Data: the Sample type, one reader per source, synthetic data, statistics, splits and conversion.

    from floodwatch.data import open_dataset
    ds = open_dataset("../shared/data/sen1floods11")      # format detected, chips read lazily
    sample = ds[0]                                        # Sample: image (2,H,W) dB, mask, valid, georef
"""
from .dataset import ChipDataset, Record
from .formats import FORMATS, detect_format, open_dataset
from .preprocess import Preprocessing
from .sample import IGNORE_INDEX, NOT_WATER, WATER, GeoRef, Sample

__all__ = ["ChipDataset", "Record", "FORMATS", "detect_format", "open_dataset", "Preprocessing", "Sample",
           "GeoRef", "IGNORE_INDEX", "NOT_WATER", "WATER", "compute_stats", "preprocessing_from_stats",
           "make_split", "write_split_csv", "read_split_csv", "inspect_dataset", "to_images_masks",
           "synth_scene", "synth_chips", "write_scene", "write_synthetic_dataset"]

_LAZY = {"compute_stats": "stats", "preprocessing_from_stats": "stats", "make_split": "splits",
         "write_split_csv": "splits", "read_split_csv": "splits", "inspect_dataset": "inspect",
         "to_images_masks": "convert", "synth_scene": "synthetic", "synth_chips": "synthetic",
         "write_scene": "synthetic", "write_synthetic_dataset": "synthetic"}


def __getattr__(name: str):
    # Keeps `import floodwatch.data` light: scipy and friends load only when these are used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
