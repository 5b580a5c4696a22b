"""ChipLoader: batches of pre-processed chips, read and decoded in worker processes while the model computes.

    loader = ChipLoader(samples, preprocessing, batch_size=16, augmenter=aug, device="cuda")
    for epoch in range(epochs):
        loader.set_epoch(epoch)               # reproducible shuffle (and augmentation) per epoch
        for image, mask, valid in loader:     # (N,C,H,W) float32, (N,H,W) int64, (N,H,W) bool
            ...
    loader.throughput()                        # samples/s the loader delivered in the last epoch

- Reading: `dataset[i]` (any Sequence[Sample], e.g. `floodwatch.data.open_dataset(...)`) runs in `workers`
  torch DataLoader processes, `prefetch` batches ahead each; batches land in pinned memory when the
  device is CUDA, and are copied without blocking.
- Caching: pre-processed chips are kept in memory after the first epoch when they fit `cache_budget`
  (cache="auto"), always (True) or never (False). Later epochs then read no files at all.
- Empty chips (no valid pixel, or no scorable label) are skipped with `skip_empty`; once seen they are left
  out of later epochs' batches. Pixels without data are labelled IGNORE_INDEX.
- Sharding: `rank`/`world_size` split each epoch's permutation like torch's DistributedSampler (padded by
  repeating the start so every rank gets the same number of chips).
- Augmentation: `augmenter(image, mask, valid)` (e.g. a BatchAugmenter) runs in the main process on the
  batch after it is on `device`, so a GPU does it batched.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..data.sample import IGNORE_INDEX, Sample
from ..errors import DataError, FloodwatchError

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class ChipLoader:
    def __init__(self, dataset: Sequence[Sample], preprocessing: Preprocessing, batch_size: int, *,
                 shuffle: bool = True, seed: int = 0, workers: int = 2, prefetch: int = 2,
                 cache: bool | Literal["auto"] = "auto", drop_last: bool = False,
                 device: torch.device | str | None = None, augmenter: Callable[..., Batch] | None = None,
                 skip_empty: bool = True, rank: int = 0, world_size: int = 1,
                 cache_budget: int | None = None) -> None:
        if batch_size < 1:
            raise FloodwatchError(f"batch_size: must be at least 1 (got {batch_size})")
        if not 0 <= rank < world_size:
            raise FloodwatchError(f"rank {rank} is not in 0..{world_size - 1} (world_size {world_size})")
        if cache not in (True, False, "auto"):
            raise FloodwatchError(f"cache: expected 'auto', True or False (got {cache!r})")
        self.dataset, self.preprocessing, self.batch_size = dataset, preprocessing, int(batch_size)
        self.shuffle, self.seed, self.drop_last, self.skip_empty = shuffle, int(seed), drop_last, skip_empty
        self.workers, self.prefetch = max(0, int(workers)), max(1, int(prefetch))
        self.cache_mode, self.cache_budget = cache, cache_budget if cache_budget is not None else _default_budget()
        self.device = torch.device(device) if device is not None else None
        self.augmenter, self.rank, self.world_size = augmenter, int(rank), int(world_size)
        self._aug_seed0 = getattr(augmenter, "seed", 0)
        self.epoch = 0
        self._empty: set[int] = set()
        self._cache: _Cache | None = None
        self._cache_refused = cache is False
        self._samples = 0
        self._busy_s = 0.0

    # -- public ----------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Fix this epoch's shuffle (and reseed the augmenter) so a run resumed at `epoch` sees the same data."""
        self.epoch = int(epoch)
        if hasattr(self.augmenter, "manual_seed"):
            self.augmenter.manual_seed(self._aug_seed0 + 1_000_003 * self.epoch + self.rank)

    def throughput(self) -> float:
        """Samples per second delivered in the last (or current) epoch, counting only time spent inside the
        loader (reading, waiting for workers, moving, augmenting), not the consumer's own work."""
        return self._samples / self._busy_s if self._busy_s > 0 else 0.0

    @property
    def cached(self) -> bool:
        """True once every chip is held in memory (later epochs read nothing)."""
        return self._cache is not None and self._cache.complete(self._wanted())

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[Batch]:
        self._samples, self._busy_s = 0, 0.0
        batches = self._batches()
        source = self._from_cache(batches) if self.cached else self._from_workers(batches)
        t0 = time.perf_counter()
        for idx, (image, mask, valid) in source:
            image, mask, valid = self._to_device(image, mask, valid)
            if self.augmenter is not None:
                image, mask, valid = self.augmenter(image, mask, valid)
            self._samples += len(idx)
            self._busy_s += time.perf_counter() - t0
            yield image, mask, valid
            t0 = time.perf_counter()
        self._busy_s += time.perf_counter() - t0

    # -- epoch plan ------------------------------------------------------------------------------------------
    def _wanted(self) -> list[int]:
        """This rank's chip indices for the current epoch, in order, known-empty chips left out."""
        n = len(self.dataset)
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
                 if self.shuffle else list(range(n)))
        if self.world_size > 1 and n:
            total = math.ceil(n / self.world_size) * self.world_size
            order = (order * math.ceil(total / n))[:total][self.rank::self.world_size]
        return [i for i in order if i not in self._empty]

    def _batches(self) -> list[list[int]]:
        ids = self._wanted()
        batches = [ids[k:k + self.batch_size] for k in range(0, len(ids), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    # -- sources ---------------------------------------------------------------------------------------------
    def _from_cache(self, batches: list[list[int]]):
        for ids in batches:
            yield ids, self._cache.take(ids, pin=self._pin)

    def _from_workers(self, batches: list[list[int]]):
        reader = _ChipReader(self.dataset, self.preprocessing, self.skip_empty)
        kwargs = dict(num_workers=self.workers, collate_fn=_collate, pin_memory=self._pin)
        if self.workers:
            kwargs["prefetch_factor"] = self.prefetch
        loader = torch.utils.data.DataLoader(reader, batch_sampler=batches, **kwargs)
        for ids, empty, error, batch in loader:
            if error is not None:
                raise error
            self._empty.update(empty)
            if batch is None:
                continue
            self._store(ids, batch)
            yield ids, (batch[0], batch[1], batch[2])

    def _store(self, ids: list[int], batch: tuple[torch.Tensor, ...]) -> None:
        if self._cache_refused:
            return
        if self._cache is None:
            per_chip = sum(t[0].numel() * t.element_size() for t in batch)
            if self.cache_mode == "auto" and per_chip * len(self.dataset) > self.cache_budget:
                self._cache_refused = True
                return
            self._cache = _Cache(len(self.dataset), batch)
        if not self._cache.put(ids, batch):  # chips of different sizes: nothing to gain from a flat cache
            self._cache, self._cache_refused = None, True

    @property
    def _pin(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def _to_device(self, image, mask, valid) -> Batch:
        mask = mask.long()  # carried as uint8 (1/8 of the memory and IPC); the loss wants int64
        if self.device is None:
            return image, mask, valid
        nb = self._pin
        return (image.to(self.device, non_blocking=nb), mask.to(self.device, non_blocking=nb),
                valid.to(self.device, non_blocking=nb))


class _ChipReader(torch.utils.data.Dataset):
    """What a worker does per chip: read, pre-process, label nodata IGNORE_INDEX. Errors travel back as values
    so the main process re-raises the FloodwatchError itself (one line), not the worker's traceback."""

    def __init__(self, dataset: Sequence[Sample], preprocessing: Preprocessing, skip_empty: bool) -> None:
        self.dataset, self.preprocessing, self.skip_empty = dataset, preprocessing, skip_empty

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            s = self.dataset[i]
            if self.skip_empty and s.is_empty:
                return i, None
            valid = np.asarray(s.valid, bool)
            image = self.preprocessing.apply(s.image, valid)
            if s.mask is None:
                mask = np.full(valid.shape, IGNORE_INDEX, np.uint8)
            else:
                m = np.asarray(s.mask)
                if ((m != 0) & (m != 1) & (m != IGNORE_INDEX)).any():
                    raise DataError(f"chip {s.id}: mask has values other than 0, 1 and {IGNORE_INDEX}")
                mask = np.where(valid, m, IGNORE_INDEX).astype(np.uint8)
            return i, (torch.from_numpy(image), torch.from_numpy(mask), torch.from_numpy(valid))
        except FloodwatchError as exc:
            return i, exc


def _collate(items):
    ids = [i for i, t in items if isinstance(t, tuple)]
    empty = [i for i, t in items if t is None]
    errors = [t for _, t in items if isinstance(t, Exception)]
    if errors or not ids:
        return ids, empty, (errors[0] if errors else None), None
    parts = [t for _, t in items if isinstance(t, tuple)]
    shapes = {tuple(p[0].shape) for p in parts}
    if len(shapes) > 1:
        return ids, empty, DataError(f"chips {ids[0]}..{ids[-1]} differ in shape {sorted(shapes)}; "
                                     "a batch needs equal chips (tile the scenes first)"), None
    return ids, empty, None, tuple(torch.stack(col) for col in zip(*parts))


class _Cache:
    """Pre-processed chips in flat tensors, one row per dataset index."""

    def __init__(self, n: int, batch: tuple[torch.Tensor, ...]) -> None:
        self.store = [torch.empty((n, *t.shape[1:]), dtype=t.dtype) for t in batch]
        self.filled = torch.zeros(n, dtype=torch.bool)

    def put(self, ids: list[int], batch: tuple[torch.Tensor, ...]) -> bool:
        if any(t.shape[1:] != s.shape[1:] for t, s in zip(batch, self.store)):
            return False
        idx = torch.as_tensor(ids)
        for s, t in zip(self.store, batch):
            s[idx] = t
        self.filled[idx] = True
        return True

    def complete(self, ids: list[int]) -> bool:
        return bool(self.filled[torch.as_tensor(ids, dtype=torch.long)].all()) if ids else True

    def take(self, ids: list[int], *, pin: bool) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(ids)
        out = tuple(s.index_select(0, idx) for s in self.store)
        return tuple(t.pin_memory() for t in out) if pin else out


def _default_budget() -> int:
    """A quarter of physical memory, at most 8 GiB: room for the model, the workers and everyone else."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(min(total // 4, 8 << 30))
