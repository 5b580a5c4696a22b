"""Input pipeline and augmentation: paired (image, mask, valid) augmentation as batched torch ops or a DALI
pipeline, a prefetching/caching chip loader, and a preview grid to check augmentation by eye.

    from floodwatch.augment import BatchAugmenter, ChipLoader
    aug = BatchAugmenter.from_config(spec["augmentation_config"], seed=0, db_scale=preprocessing)
    loader = ChipLoader(samples, preprocessing, batch_size=16, augmenter=aug, device="cuda")
    for epoch in range(n):
        loader.set_epoch(epoch)
        for image, mask, valid in loader: ...

The DALI back-end (`floodwatch.augment.dali`) needs the `floodwatch[dali]` extra and is imported only on use.
"""
from .batch import BatchAugmenter
from .config import PREVIEW_CONFIG, AugmentationConfig, parse_config
from .loader import ChipLoader
from .ops import crop_and_resize, hflip, rot90, rotate, vflip

__all__ = ["AugmentationConfig", "BatchAugmenter", "ChipLoader", "PREVIEW_CONFIG", "crop_and_resize", "hflip",
           "parse_config", "preview_grid", "rot90", "rotate", "vflip"]


def __getattr__(name: str):
    # matplotlib is only needed for the preview; keep `import floodwatch.augment` light
    if name == "preview_grid":
        from .preview import preview_grid

        return preview_grid
    raise AttributeError(f"module 'floodwatch.augment' has no attribute {name!r}")
