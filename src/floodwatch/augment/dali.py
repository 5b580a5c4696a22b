"""DALI back-end: the same paired augmentation as `BatchAugmenter`, as a `@pipeline_def` pipeline (the course's
way). Needs the `floodwatch[dali]` extra (nvidia-dali-cuda120); DALI is imported only when this is used.

- `augmentation_pipeline(config, chip_size, ...)`: external source (image HWC float32, mask and valid HW1
  uint8) -> flips -> ROI crop-and-resize -> rotation -> contrast -> brightness -> speckle. It runs on the GPU
  when `device_id` is a GPU index and on the CPU with `device_id=None`.
- `DaliChipLoader`: reads and pre-processes chips with a `ChipLoader` (workers, cache, shuffle, shards),
  augments them in DALI and hands out torch batches through `DALIGenericIterator`, like `ChipLoader` does.
- `dali_geometric(op, image, mask, **params)`: one deterministic operator (hflip, vflip, rot90,
  crop_and_resize, rotate) through DALI, to compare with `floodwatch.augment.ops`.

Differences from the torch back-end, by construction: DALI resamples twice (resize, then rotate) where torch
composes both into one grid_sample, and its random streams differ, so only the deterministic operators match.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..data.sample import IGNORE_INDEX, Sample
from ..errors import FloodwatchError
from .batch import _db_scale, check_band_delta
from .config import AugmentationConfig, parse_config
from .loader import ChipLoader


def _dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.fn as fn
        import nvidia.dali.types as types
    except ImportError:
        raise FloodwatchError("the DALI back-end needs NVIDIA DALI: pip install 'floodwatch[dali]'") from None
    return dali, fn, types


def _coin(probability: float):
    """Per-sample 0.0 / 1.0 (DALI's coin_flip gives only integers; arithmetic wants a float)."""
    _, fn, types = _dali()
    return fn.cast(fn.random.coin_flip(probability=probability, dtype=types.INT32), dtype=types.FLOAT)


# -- the graph -------------------------------------------------------------------------------------------------
def _augment_graph(image, mask, valid, cfg: AugmentationConfig, chip_size: tuple[int, int],
                   db_scale: Sequence[float] | None, on_gpu: bool, channels: int | None = None):
    """DALI operators for one batch; image HWC float, mask/valid HW1 uint8. Returns the three nodes."""
    dali, fn, types = _dali()
    import nvidia.dali.math as dmath

    if on_gpu:
        image, mask, valid = image.gpu(), mask.gpu(), valid.gpu()
    sp = cfg.spatial_augmentation
    nodes = [image, mask, valid]

    if sp.hflip_probability or sp.vflip_probability:
        hf = fn.random.coin_flip(probability=sp.hflip_probability, dtype=types.INT32)
        vf = fn.random.coin_flip(probability=sp.vflip_probability, dtype=types.INT32)
        nodes = [fn.flip(x, horizontal=hf, vertical=vf) for x in nodes]

    if sp.crop_and_resize_prob and sp.crop_and_resize_ratio:
        on = _coin(sp.crop_and_resize_prob)
        r = sp.crop_and_resize_ratio
        frac_hw = 1.0 - on * r * fn.random.uniform(range=[0.0, 1.0], shape=[2])
        start = (1.0 - frac_hw) * fn.random.uniform(range=[0.0, 1.0], shape=[2])
        nodes = [fn.resize(x, size=list(chip_size), roi_start=start, roi_end=start + frac_hw, roi_relative=True,
                           antialias=False, interp_type=types.INTERP_LINEAR if k == 0 else types.INTERP_NN)
                 for k, x in enumerate(nodes)]

    if sp.rotate_probability and sp.rotate_max_degrees:
        on = _coin(sp.rotate_probability)
        angle = on * fn.random.uniform(range=[-sp.rotate_max_degrees, sp.rotate_max_degrees])
        nodes = [fn.rotate(x, angle=angle, keep_size=True, fill_value=fill,
                           interp_type=types.INTERP_LINEAR if k == 0 else types.INTERP_NN)
                 for k, (x, fill) in enumerate(zip(nodes, (sp.fill_value, IGNORE_INDEX, 0)))]

    image, mask, valid = nodes
    v = fn.cast(valid, dtype=types.FLOAT)
    scale = types.Constant(np.asarray(db_scale, np.float32).reshape(1, 1, -1), device="gpu" if on_gpu else "cpu") \
        if db_scale is not None else 1.0
    if cfg.contrast.probability and cfg.contrast.delta:
        on = _coin(cfg.contrast.probability)
        f = 1.0 + on * fn.random.uniform(range=[-cfg.contrast.delta, cfg.contrast.delta])
        mean = fn.reductions.sum(image * v, axes=[0, 1], keep_dims=True) / \
            dmath.max(fn.reductions.sum(v, axes=[0, 1], keep_dims=True), 1.0)
        image = image + v * (f - 1.0) * (image - mean)
    b = cfg.brightness_augmentation
    if b.probability and (b.delta or b.band_delta):
        on = _coin(b.probability)
        shift = fn.random.uniform(range=[-b.delta, b.delta]) if b.delta else 0.0
        if b.band_delta:
            if not channels:
                raise FloodwatchError("augmentation brightness_augmentation.band_delta: the DALI pipeline needs the "
                                      "channel count (channels= or db_scale=)")
            own = fn.reshape(fn.random.uniform(range=[-b.band_delta, b.band_delta], shape=[channels]),
                             shape=[1, 1, channels])
            shift = shift + (own.gpu() if on_gpu else own)
        image = image + v * scale * on * shift
    if cfg.speckle.probability and cfg.speckle.std_db:
        on = _coin(cfg.speckle.probability)
        noise = fn.random.normal(image, stddev=cfg.speckle.std_db)
        image = image + v * scale * on * noise
    if cfg.channel_dropout.probability and channels != 1:  # one channel dropped would blank the whole input
        if not channels:
            raise FloodwatchError("augmentation channel_dropout: the DALI pipeline needs the channel count "
                                  "(channels= or db_scale=)")
        on = _coin(cfg.channel_dropout.probability)
        ch = fn.cast(fn.random.uniform(values=[float(c) for c in range(channels)]), dtype=types.INT32)
        keep = fn.reshape(1.0 - on * fn.one_hot(ch, num_classes=channels, dtype=types.FLOAT), shape=[1, 1, channels])
        # valid pixels only: nodata keeps Preprocessing.fill, as under every other photometric operator
        image = image * (1.0 - (1.0 - (keep.gpu() if on_gpu else keep)) * v)
    return fn.transpose(image, perm=[2, 0, 1], output_layout="CHW"), mask, valid


def augmentation_pipeline(augmentation_config: Mapping[str, Any] | Any, chip_size: tuple[int, int], *,
                          batch_size: int, source: Any = None, seed: int = 0, device_id: int | None = None,
                          num_threads: int = 2, db_scale: Sequence[float] | Preprocessing | None = None,
                          prefetch: int = 2, channels: int | None = None):
    """A built DALI pipeline with outputs (image CHW float32, mask HW1 uint8, valid HW1 uint8).

    channels: the image's channel count; needed for channel_dropout unless db_scale gives one factor per channel.

    source: an iterable of (images, masks, valids) batches (lists of HWC/HW1 arrays), one epoch per
    iter(); None: feed with `pipe.feed_input("image"|"mask"|"valid", ...)`.
    """
    dali, fn, types = _dali()
    cfg = parse_config(augmentation_config)
    if isinstance(db_scale, Preprocessing):
        check_band_delta(cfg, db_scale.derived, "single")
    scale = _db_scale(db_scale)

    @dali.pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                       prefetch_queue_depth=prefetch)
    def pipe():
        layouts, dtypes = ["HWC", "HWC", "HWC"], [types.FLOAT, types.UINT8, types.UINT8]
        if source is not None:
            image, mask, valid = fn.external_source(source=source, num_outputs=3, layout=layouts, dtype=dtypes,
                                                    cycle="raise", batch=True)
        else:
            image, mask, valid = (fn.external_source(name=n, layout=l, dtype=d)
                                  for n, l, d in zip(("image", "mask", "valid"), layouts, dtypes))
        return _augment_graph(image, mask, valid, cfg, tuple(chip_size), scale, device_id is not None,
                              channels or (len(scale) if scale else None))

    p = pipe()
    p.build()
    return p


# -- deterministic operators, for comparison with floodwatch.augment.ops ----------------------------------------
def dali_geometric(op: str, image: np.ndarray, mask: np.ndarray, **params) -> tuple[np.ndarray, np.ndarray]:
    """Apply one operator with fixed parameters in DALI (CPU). image (N,C,H,W) float32, mask (N,H,W) integer.

    op: hflip | vflip | rot90 (k) | rotate (angle, fill) | crop_and_resize (roi=(y0, x0, y1, x1) pixels).
    """
    dali, fn, types = _dali()
    n, c, h, w = image.shape

    @dali.pipeline_def(batch_size=n, num_threads=1, device_id=None, seed=0)
    def pipe():
        x = fn.external_source(name="image", layout="HWC", dtype=types.FLOAT)
        m = fn.external_source(name="mask", layout="HWC", dtype=types.UINT8)
        out = []
        for k, t in enumerate((x, m)):
            interp = types.INTERP_LINEAR if k == 0 else types.INTERP_NN
            if op in ("hflip", "vflip"):
                t = fn.flip(t, horizontal=int(op == "hflip"), vertical=int(op == "vflip"))
            elif op in ("rot90", "rotate"):
                angle = 90.0 * params.get("k", 1) if op == "rot90" else float(params["angle"])
                fill = (params.get("fill", 0.0), IGNORE_INDEX)[k]
                t = fn.rotate(t, angle=angle, keep_size=True, fill_value=fill, interp_type=interp)
            elif op == "crop_and_resize":
                y0, x0, y1, x1 = (float(v) for v in params["roi"])
                t = fn.resize(t, size=[h, w], roi_start=[y0, x0], roi_end=[y1, x1], antialias=False,
                              interp_type=interp)
            else:
                raise FloodwatchError(f"dali_geometric: unknown operator '{op}'")
            out.append(t)
        return tuple(out)

    p = pipe()
    p.build()
    p.feed_input("image", list(np.ascontiguousarray(image.transpose(0, 2, 3, 1), dtype=np.float32)))
    p.feed_input("mask", list(np.ascontiguousarray(mask[..., None], dtype=np.uint8)))
    xi, mi = p.run()
    out_img = np.stack([np.asarray(xi[i]) for i in range(n)]).transpose(0, 3, 1, 2)
    out_mask = np.stack([np.asarray(mi[i])[..., 0] for i in range(n)]).astype(np.int64)
    return out_img, out_mask


# -- the loader ------------------------------------------------------------------------------------------------
class DaliChipLoader:
    """ChipLoader reading + DALI augmentation, iterated like a ChipLoader: (image, mask, valid) torch batches.

    device_id: GPU index (DALI runs the augmentation there and batches arrive on that GPU) or None (CPU).
    Other keyword arguments go to the underlying ChipLoader (shuffle, workers, cache, rank, world_size, ...).
    """

    def __init__(self, dataset: Sequence[Sample], preprocessing: Preprocessing, batch_size: int,
                 augmentation_config: Mapping[str, Any] | Any = None, *, seed: int = 0, device_id: int | None = None,
                 num_threads: int = 2, **chip_loader_kwargs) -> None:
        _dali()
        self.chips = ChipLoader(dataset, preprocessing, batch_size, seed=seed, device=None, augmenter=None,
                                **chip_loader_kwargs)
        self.config = parse_config(augmentation_config)
        self.preprocessing, self.batch_size, self.seed = preprocessing, batch_size, seed
        self.device_id, self.num_threads = device_id, num_threads
        self.epoch = 0
        self._throughput = 0.0

    def set_epoch(self, epoch: int) -> None:
        """Like ChipLoader.set_epoch; without it epochs simply count up from the last one."""
        self.epoch = int(epoch)

    def throughput(self) -> float:
        """Samples per second delivered in the last epoch (time inside the loader only)."""
        return self._throughput

    def __len__(self) -> int:
        return len(self.chips)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        import time

        # a pipeline per epoch, seeded with seed + epoch: epoch e augments alike whether the epochs before it ran
        # in this loader or not (a resumed run), as ChipLoader's reseeded augmenter does
        iterator = self._build()
        t0, count, busy = time.perf_counter(), 0, 0.0
        for out in iterator:
            d = out[0]
            image, mask, valid = d["image"], d["mask"][..., 0].long(), d["valid"][..., 0].bool()
            count += image.shape[0]
            busy += time.perf_counter() - t0
            yield image, mask, valid
            t0 = time.perf_counter()
        busy += time.perf_counter() - t0
        self._throughput = count / busy if busy > 0 else 0.0
        self.epoch += 1

    def _build(self):
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        first = self.chips.dataset[0] if len(self.chips.dataset) else None
        if first is None:
            raise FloodwatchError("DaliChipLoader: the data set is empty")
        feed = _Feed(self.chips, self.epoch)
        pipe = augmentation_pipeline(self.config, first.shape, batch_size=self.batch_size, source=feed,
                                     seed=self.seed + self.epoch, device_id=self.device_id,
                                     num_threads=self.num_threads, db_scale=self.preprocessing)
        return DALIGenericIterator(pipe, ["image", "mask", "valid"], last_batch_policy=LastBatchPolicy.PARTIAL,
                                   auto_reset=False, prepare_first_batch=False)


class _Feed:
    """One ChipLoader epoch per iter(), as the lists of HWC arrays DALI's external source takes."""

    def __init__(self, chips: ChipLoader, first_epoch: int) -> None:
        self.chips, self.epoch = chips, first_epoch

    def __iter__(self):
        self.chips.set_epoch(self.epoch)
        self.epoch += 1
        for image, mask, valid in self.chips:
            yield (list(image.permute(0, 2, 3, 1).contiguous().numpy()),
                   list(mask.to(torch.uint8)[..., None].numpy()),
                   list(valid.to(torch.uint8)[..., None].numpy()))
