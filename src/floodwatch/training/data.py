"""From the spec's dataset_config to torch datasets of fixed-size, pre-processed chips.

Randomness (training crops) is drawn from (seed, epoch, chip index) alone, so an epoch is the same whichever
process or worker draws it: that is what makes resume and 1-vs-N-process runs reproducible.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import Spec
from ..data.preprocess import DEFAULT_CLIP, Preprocessing, network_input
from ..data.sample import IGNORE_INDEX, Sample
from ..errors import DataError, InvalidArgumentError, SpecError


_ALIASES = {"valid": "val", "validation": "val", "training": "train"}


def load_samples(spec: Spec, progress: bool | None = None) -> dict[str, list[Sample]]:
    """{'train': [...], 'val': [...], 'test': [...]} with empty chips (no data / nothing labelled) dropped."""
    ds = spec.dataset_config
    class_map = ds.class_map()
    # (name, chips, times each is drawn per epoch)
    parts: list[tuple[str, Sequence[Sample], int]] = []
    if ds.sources:
        for i, source in enumerate(ds.sources):
            for name, part in _source_parts(source, spec, i).items():
                train = _ALIASES.get(name.lower(), name.lower()) == "train"
                parts.append((name, part, source.repeat if train else 1))
    elif ds.data_root:
        samples = _open_for_training(ds.data_root, ds.format, class_map)
        parts = [(name, part, 1) for name, part in _split(samples, spec).items()]
    else:
        parts = [(part, _open_tao_folders(spec, part), 1) for part in tao_parts(ds)]
    from ..data.progress import track

    out: dict[str, list[Sample]] = {}
    for name, part, repeat in parts:
        name = _ALIASES.get(name.lower(), name.lower())
        # read once and keep in memory: chips are re-cropped every epoch, files need not be re-read
        chips = [s for s in track(part, f"reading {name} chips", total=len(part), show=progress)
                 if not s.is_empty and s.mask is not None]
        out.setdefault(name, []).extend(chips * repeat)
    for name in ("train", "val"):
        if not out.get(name):
            # the field that made the split: its fractions, CSV or folder left it empty
            field = ("dataset_config.split (or the sources' own)" if ds.sources else "dataset_config.split"
                     if ds.data_root else f"dataset_config.{name}_images_path")
            raise DataError(f"{field}: the {name} split has no labelled, non-empty chips")
    return out


def _source_parts(source, spec: Spec, i: int) -> dict[str, Sequence[Sample]]:
    """One entry of dataset_config.sources, kept to its regions and split on its own."""
    dataset = _open_for_training(source.path, source.format, spec.dataset_config.class_map(), source.options)
    for field, names in (("regions", source.regions or []), ("exclude_regions", source.exclude_regions)):
        dataset.check_regions(names, f"dataset_config.sources[].{field}: {source.path}")
    keep = [r.id for r in dataset.records if r.region not in source.exclude_regions
            and (source.regions is None or r.region in source.regions)]
    if not keep:
        raise DataError(f"dataset_config.sources: no chips of {source.path} are left after regions/exclude_regions")
    return _split(dataset.subset(keep), spec, source.split, split_field(spec, i), whole=dataset)


def tao_parts(ds) -> tuple[str, ...]:
    """The splits TAO's *_path fields give: train and val, and test where both of its folders are named (the
    course's spec names test images alone, which cannot be scored)."""
    return ("train", "val") + (("test",) if ds.test_images_path and ds.test_masks_path else ())


def _open_tao_folders(spec: Spec, part: str):
    """TAO's <part>_images_path and <part>_masks_path folders."""
    from ..data.formats import open_dataset

    ds = spec.dataset_config
    images = getattr(ds, f"{part}_images_path")
    # split=part: the chips' region and split are the part they were given for (the course's images/<part>/
    # layout would otherwise name every region "images")
    return open_dataset(Path(images).parent, format="folders", images=images, masks=getattr(ds, f"{part}_masks_path"),
                        class_map=ds.class_map(), split=part)


def _open_for_training(path, format: str | None, class_map, options: dict | None = None):
    """A labelled set opened as training reads it: the class map is the folders layout's (other sources have
    fixed label values) and no permanent-water layer (ETCI's); `options` are the spec's for the reader."""
    from ..data import open_dataset
    from ..data.formats import reader_options, resolve_format

    fmt = resolve_format(path, format)
    wanted = {"class_map": class_map, "water_body": False}
    return open_dataset(path, fmt, **{k: v for k, v in wanted.items() if k in reader_options(fmt)},
                        **(options or {}))


def evaluation_samples(data: str | os.PathLike | None = None, *, format: str | None = None,
                       spec: str | os.PathLike | None = None, split: str | None = None) -> tuple[list[Sample], str]:
    """The chips to score and a description: a dataset folder (`data`, optional `format`/`split`), or a
    spec's held-out chips (its test split when it has one, else validation; `split` picks one). It lives
    with the training data because a spec's splits are drawn here, exactly as training drew them."""
    if (data is None) == (spec is None):
        raise InvalidArgumentError("data, spec: give one of them (a data folder or a spec), not both")
    if spec is not None:
        from ..config import load_spec

        parts = load_samples(load_spec(spec))
        name = split or ("test" if parts.get("test") else "val")
        if name not in parts:
            raise DataError(f"{spec}: the spec has no '{name}' split (it has {', '.join(sorted(parts))})")
        return list(parts[name]), f"{spec} ({name} split)"
    from ..data import open_dataset

    samples = list(open_dataset(data, format=format, split=split))
    return samples, f"{data}{f' ({split} split)' if split else ''}"


def split_field(spec: Spec, source: int | None = None) -> str:
    """The field whose split a data set (dataset_config.sources[source], or data_root) takes."""
    ds = spec.dataset_config
    own = source is not None and ds.sources[source].split is not None
    return f"dataset_config.sources[{source}].split" if own else "dataset_config.split"


def split_csv_problem(dataset, ids: dict[str, list[str]], csv: str, field: str) -> str | None:
    """A split CSV (`ids`: read_split_csv's reading of `csv`) listing chips the data set lacks (a CSV of another
    data set, or of other chip names)."""
    known = set(dataset.ids)
    missing = [i for chip_ids in ids.values() for i in chip_ids if i not in known]
    if missing:
        return (f"{field}.csv: {csv} lists {len(missing)} chip id(s) that {dataset.root} does not have, e.g. "
                f"'{missing[0]}'")
    return None


def _split(dataset, spec: Spec, split=None, field: str = "dataset_config.split",
           whole=None) -> dict[str, Sequence[Sample]]:
    """The spec's split of a data set: a CSV (id,split) or make_split's method and fractions. `whole`: the
    source `dataset` was kept from by regions/exclude_regions; a CSV of all its chips then splits the kept ones."""
    from ..config import SplitConfig
    from ..data.splits import make_split, read_split_csv

    split = split or spec.dataset_config.split or SplitConfig()
    if split.csv:
        listed = read_split_csv(split.csv)
        problem = split_csv_problem(whole or dataset, listed, split.csv, field)
        if problem:
            raise DataError(problem)
        kept = set(dataset.ids)
        ids = {name: [i for i in chip_ids if i in kept] for name, chip_ids in listed.items()}
    else:
        ids = make_split(dataset, split.method, split.fractions, split.seed)
    return {name: dataset.subset(chip_ids) for name, chip_ids in ids.items()}


def fit_preprocessing(spec: Spec, train: Sequence[Sample]) -> Preprocessing:
    """The spec's override when it gives offset/scale, else per-channel mean/std of the training chips."""
    over = spec.dataset_config.preprocessing
    bands = list(train[0].bands)
    derived = over.derived if over else "none"
    clip = (over.clip_ranges(len(bands)) if over else None) or [DEFAULT_CLIP] * len(bands)
    if len(clip) != len(bands):
        raise SpecError(f"dataset_config.preprocessing.clip: {len(clip)} ranges for {len(bands)} bands "
                        f"({', '.join(bands)})")
    anchor = over.anchor if over else None
    if anchor is not None and len(anchor.db) != len(bands):
        raise SpecError(f"dataset_config.preprocessing.anchor.db: {len(anchor.db)} levels for {len(bands)} bands "
                        f"({', '.join(bands)})")
    kept = dict(bands=bands, clip=clip, derived=derived, anchor_percentile=anchor and anchor.percentile,
                anchor_db=anchor and list(anchor.db))
    if over and over.offset is not None:
        return Preprocessing(**kept, offset=over.offset, scale=over.scale)
    from ..data.stats import compute_stats, preprocessing_from_stats

    # mean/std are those of the default dB clip range, unanchored (the anchor levels are typical land levels, so
    # they move the mean little, and BatchNorm follows); a clip override only changes the clipping
    fitted = preprocessing_from_stats(compute_stats(train, progress=False), derived=derived)
    return Preprocessing(**kept, offset=fitted.offset, scale=fitted.scale)


class ChipDataset(torch.utils.data.Dataset):
    """Pre-processed (image, mask, valid) tensors of exactly `size`.

    train=True: one random crop per chip and epoch (chips smaller than `size` are padded with ignored pixels).
    train=False: every chip is cut into tiles covering it completely, so validation sees all pixels.
    """

    def __init__(self, samples: Sequence[Sample], prep: Preprocessing, size: tuple[int, int], *,
                 temporal: str = "single", train: bool = True, seed: int = 0):
        self.samples, self.prep, self.size = list(samples), prep, (int(size[0]), int(size[1]))
        self.temporal, self.train, self.seed, self.epoch = temporal, train, int(seed), 0
        if temporal == "bitemporal":
            missing = [s.id for s in self.samples if s.before is None]
            if missing:
                raise DataError(f"model_config.temporal is bitemporal but chip '{missing[0]}' has no 'before' image")
        if train:
            self.items = [(i, None, None) for i in range(len(self.samples))]
        else:
            h, w = self.size
            self.items = [(i, y, x) for i, s in enumerate(self.samples)
                          for y in range(0, max(s.shape[0], h), h)
                          for x in range(0, max(s.shape[1], w), w)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, y0, x0 = self.items[k]
        s = self.samples[i]
        x = network_input(s, self.prep, self.temporal)
        mask = np.where(s.valid, s.mask, IGNORE_INDEX).astype(np.int64)
        valid = np.asarray(s.valid, bool)
        x, mask, valid = _pad_to(x, mask, valid, self.size, self.prep.fill)
        h, w = self.size
        if y0 is None:  # training: a random window
            rng = np.random.default_rng([self.seed, self.epoch, i])
            y0 = int(rng.integers(0, x.shape[-2] - h + 1))
            x0 = int(rng.integers(0, x.shape[-1] - w + 1))
        else:  # validation: the last tile of a row/column is shifted inwards to stay within the chip
            y0, x0 = min(y0, x.shape[-2] - h), min(x0, x.shape[-1] - w)
        win = (slice(y0, y0 + h), slice(x0, x0 + w))
        return (torch.from_numpy(np.ascontiguousarray(x[(slice(None), *win)])),
                torch.from_numpy(np.ascontiguousarray(mask[win])), torch.from_numpy(np.ascontiguousarray(valid[win])))


class MixedChipDataset(torch.utils.data.Dataset):
    """Training chips of two ChipDatasets (e.g. labelled + pseudo-labelled), each item with a 4th element:
    a bool tensor, True for chips of the second set (the trainer weights their loss)."""

    def __init__(self, first: ChipDataset, second: ChipDataset):
        self.first, self.second = first, second

    @property
    def prep(self) -> Preprocessing:
        return self.first.prep

    @prep.setter
    def prep(self, value: Preprocessing) -> None:
        self.first.prep = self.second.prep = value

    def set_epoch(self, epoch: int) -> None:
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, k: int):
        n = len(self.first)
        is_second = k >= n
        item = self.second[k - n] if is_second else self.first[k]
        return (*item, torch.tensor(is_second))


def check_crop_fits(samples: Sequence[Sample], size: tuple[int, int]) -> None:
    """Training crops larger than every training chip are mostly padding, which nothing learns from: a TAO
    spec's model input (TAO resizes chips to it; here chips are cropped) over smaller chips. Refused; crops
    larger than some chips only are padded there."""
    h, w = size
    if not samples or any(s.shape[0] >= h and s.shape[1] >= w for s in samples):
        return
    ch, cw = max((s.shape for s in samples), key=lambda shape: shape[0] * shape[1])
    fit = f"; use at most {ch // 16 * 16}x{cw // 16 * 16}" if min(ch, cw) >= 16 else ""
    raise SpecError(f"model_config.model_input_height/width: {h}x{w} px training crops, but no training chip is "
                    f"that large (the largest is {ch}x{cw} px): chips are cropped to the model input, not resized, "
                    f"so every crop would be mostly padding{fit}")


def _pad_to(x: np.ndarray, mask: np.ndarray, valid: np.ndarray, size: tuple[int, int], fill: float):
    ph, pw = max(0, size[0] - x.shape[-2]), max(0, size[1] - x.shape[-1])
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), constant_values=fill)
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        valid = np.pad(valid, ((0, ph), (0, pw)), constant_values=False)
    return x, mask, valid


def check_channels(samples: Sequence[Sample], prep: Preprocessing, temporal: str, expected: int,
                   what: str) -> None:
    """Data whose channels do not fit the model: one line naming the chip and both numbers."""
    for s in samples:
        if s.image.shape[0] != len(prep.bands):
            raise DataError(f"chip '{s.id}' has {s.image.shape[0]} bands but the pre-processing expects "
                            f"{len(prep.bands)} ({', '.join(prep.bands)})")
    check_model_channels(prep.bands, prep.derived, temporal, expected, what)


def check_model_channels(bands: Sequence[str], derived: str, temporal: str, expected: int, what: str) -> None:
    """Bands (+ the derived channel, twice for before+after) that do not make the model's input channels."""
    got = (len(bands) + (derived != "none")) * (2 if temporal == "bitemporal" else 1)
    if got != expected:
        raise SpecError(f"{what}: the model takes {expected} input channels but the data give {got} "
                        f"({'+'.join(bands)}{'' if derived == 'none' else '+' + derived}"
                        f"{', before+after' if temporal == 'bitemporal' else ''})")


def labelled_data_problems(spec: Spec, model_bands: Sequence[str] | None = None, *,
                           channels: bool | None = None) -> tuple[list[str], tuple[str, ...] | None]:
    """(What training would reject about the spec's labelled data, one line per problem starting with the field;
    the data's bands, None if no set opened), found by opening the data sets (their file lists and at most a
    first file; no chip is read): training's own check of the bands against model_config.model_input_channels
    (`check_model_channels`). `training.api.spec_data_problems` adds the unlabelled folders'.

    `model_bands`: the bands of a floodwatch checkpoint that training starts from; its model then takes the
    place of model_config (training checks the labelled chips against it when it reads them). `channels`: whether to check
    model_input_channels; by default (None) only without `model_bands` and where the spec has a
    dataset_config.preprocessing block, as `config.spec_channel_problems`: a spec without one may be meant
    for fine-tuning, whose checkpoint brings the pre-processing (and its derived channel)."""
    from ..data.splits import read_split_csv
    from ..errors import FloodwatchError

    ds = spec.dataset_config
    class_map = ds.class_map()
    # (field, opener, the split CSV it takes or None, that split's field)
    if ds.sources:
        labelled = [(f"dataset_config.sources[{i}].path",
                     lambda src=src: _open_for_training(src.path, src.format, class_map, src.options),
                     (src.split or ds.split).csv if (src.split or ds.split) else None, split_field(spec, i))
                    for i, src in enumerate(ds.sources)]
    elif ds.data_root:
        labelled = [("dataset_config.data_root", lambda: _open_for_training(ds.data_root, ds.format, class_map),
                     ds.split.csv if ds.split else None, "dataset_config.split")]
    else:
        labelled = [(f"dataset_config.{part}_images_path", lambda part=part: _open_tao_folders(spec, part), None, "")
                    for part in tao_parts(ds)]
    problems, bands = [], None
    for field, open_, csv, csv_field in labelled:
        try:
            dataset = open_()
            got = tuple(dataset.bands)  # every set opens: a bad second source is found too
            bands = bands or got
        except FloodwatchError as exc:
            problems.append(f"{field}: {exc}")
            continue
        try:
            problem = split_csv_problem(dataset, read_split_csv(csv), csv, csv_field) if csv else None
        except FloodwatchError as exc:  # the CSV itself: not a CSV, no id column
            problem = f"{csv_field}.csv: {exc}"
        if problem:
            problems.append(problem)
    if channels is None:
        channels = model_bands is None and ds.preprocessing is not None
    if channels and bands is not None:
        derived = ds.preprocessing.derived if ds.preprocessing else "none"
        try:
            check_model_channels(bands, derived, spec.model.temporal, spec.model.model_input_channels,
                                 "model_config.model_input_channels")
        except SpecError as exc:
            problems.append(str(exc))
    return problems, bands
