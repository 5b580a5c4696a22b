"""One supervised training run: `train_supervised(spec, results_dir)` and its `Trainer` (what
`floodwatch.training.train`, and so `floodwatch train`, runs for a spec without `semi_supervised`).

Layout of a run (`<results_dir>/<name>/`): best.pt (highest validation water IoU), metrics.csv and
learning_curve.png (rewritten every epoch), events.* for TensorBoard, spec.yaml (the validated spec), and as
`training_config.checkpoints` says: last.pt (written every epoch, what `resume` continues from; with 'best',
the default, it is removed when the run ends) and epoch_NNN.pt (every checkpoint_interval epochs, with
'all'). Every checkpoint is a floodwatch checkpoint (weights, spec, pre-processing, class map); last.pt and
epoch_NNN.pt add optimizer / scheduler / scaler / RNG state and the history so far.

Determinism: all randomness of epoch e is seeded from (random_seed, e): the shuffle (DistributedSampler
with num_replicas=1 in a single process, so 1 and N processes see the same global batches), the training
crops and the augmenter. A resumed run therefore repeats exactly the epochs the killed run would have run.
"""
from __future__ import annotations

import contextlib
import csv
import math
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..config import Spec, save_spec
from ..data.preprocess import Preprocessing
from ..data.sample import IGNORE_INDEX
from ..errors import CheckpointError, FloodwatchError, InvalidArgumentError, SpecError
from ..io import atomic_path
from ..models import build_model
from ..models.checkpoint import checkpoint_or_none, load_model, read_checkpoint, save_checkpoint
from ..models.precision import autocast
from . import distributed as dist_util
from .data import ChipDataset, MixedChipDataset, check_channels, check_crop_fits, fit_preprocessing, load_samples
from .losses import build_loss, ignore_boundaries

#: Batches of training crops over which BatchNorm statistics are re-estimated after every epoch.
PRECISE_BN_BATCHES = 32

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "water_iou", "f1", "precision", "recall", "accuracy",
                  "lr", "seconds")


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path | None  # None when training_config.checkpoints is 'best' (the default)
    history: list[dict[str, float]] = field(default_factory=list)
    results_dir: Path = Path(".")


def train_supervised(spec: Spec, results_dir: str | Path, *, name: str = "model", pretrained: str | Path | None = None,
                     gpus: int = 1, resume: bool = False, progress: bool = True,
                     replaces: Path | None = None) -> TrainResult:
    """Supervised training of the spec's U-Net into `<results_dir>/<name>/`, in `gpus` processes (DDP when
    more than one). Called through `floodwatch.training.train`, which also picks semi-supervised runs.
    `replaces`: see Trainer."""
    if gpus < 1:
        raise InvalidArgumentError(f"gpus: must be at least 1, got {gpus}")
    if torch.cuda.is_available() and gpus > torch.cuda.device_count():
        raise InvalidArgumentError(f"gpus: {gpus} requested but {torch.cuda.device_count()} CUDA device(s) visible")
    out = Path(results_dir) / name
    if resume:
        check_resume_spec(spec, out, pretrained)
    args = (spec.to_dict(), str(out), str(pretrained) if pretrained else None, resume, progress, replaces)
    if gpus == 1:
        run(0, 1, 0, *args)
    else:
        import torch.multiprocessing as mp

        try:
            mp.spawn(run, args=(gpus, dist_util.free_port(), *args), nprocs=gpus, join=True)
        except mp.ProcessRaisedException as exc:
            # the child's traceback ends with "<ErrorClass>: message"; keep the CLI's one-line contract
            last = str(exc).strip().splitlines()[-1]
            raise FloodwatchError(f"training process failed: {last}") from None
    history = read_metrics(out / "metrics.csv")
    last = out / "last.pt"
    return TrainResult(best_checkpoint=out / "best.pt", last_checkpoint=last if last.is_file() else None,
                       history=history, results_dir=out)


#: spec fields a resumed run may change: they decide what is logged, how chips are loaded and which checkpoints
#: are kept, never the weights
RESUME_MAY_CHANGE = ("training_config.log_summary_steps", "training_config.num_workers",
                     "training_config.checkpoints", "training_config.checkpoint_interval")


def spec_as_trained(spec: Spec, model_config: dict[str, Any]) -> Spec:
    """`spec` with the model that a run fine-tuning a checkpoint trains: the checkpoint's (architecture, input
    channels, widths, temporal), which wins over the spec's model_config; what only training reads
    (freeze_blocks, initializer, crop size) stays the spec's. The run's spec.yaml and checkpoints record this,
    so that they name the network that trained (a checkpoint's derived-channel pre-processing is its own)."""
    import inspect

    # keys a checkpoint leaves out are build_model's defaults, as load_model builds them, not the spec's
    built = {k: p.default for k, p in inspect.signature(build_model).parameters.items()
             if p.default is not inspect.Parameter.empty}
    built.update(model_config)
    mc = spec.model
    fields = {"arch": built["arch"], "num_layers": built["num_layers"], "all_projections": built["all_projections"],
              "use_batch_norm": built["use_batch_norm"], "model_input_channels": built["in_channels"],
              "temporal": model_config.get("temporal") or mc.temporal,
              "widths": dict(built["widths"]) if built.get("widths") else None}
    return spec.model_copy(update={"model": type(mc).model_validate({**mc.model_dump(), **fields})})


def check_resume_spec(spec: Spec, run_dir: Path, pretrained: str | Path | None = None) -> None:
    """`resume` continues the run in `run_dir` only with the spec it started with (its spec.yaml): with
    another one (fewer epochs, another learning rate or data) it would not continue that run but replace it.
    Compared as `save_spec` writes them, so paths count by where they point; with a floodwatch checkpoint as
    `pretrained`, the spec's model may be that checkpoint's, as the run recorded it (`spec_as_trained`)."""
    import yaml

    from ..config import spec_file_dict, spec_from_dict

    stored = run_dir / "spec.yaml"
    if not stored.is_file():
        return
    try:
        data = yaml.safe_load(stored.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"resume: {stored}: the run's spec cannot be read ({str(exc).splitlines()[0]})") from None
    before = _flat(spec_file_dict(spec_from_dict(data, source=str(stored), check_channels=False), run_dir))

    def changed_from(s: Spec) -> tuple[list[str], dict[str, Any]]:
        now = _flat(spec_file_dict(s, run_dir))
        return [k for k in sorted(before.keys() | now.keys())
                if before.get(k) != now.get(k) and k not in RESUME_MAY_CHANGE], now

    changed, now = changed_from(spec)
    meta = checkpoint_or_none(pretrained) if changed else None
    if meta is not None and meta.get("model_config"):
        # the run recorded the checkpoint's model (a run started before it did so: the spec's, matched above)
        changed, now = changed_from(spec_as_trained(spec, meta["model_config"]))
    if changed:
        shown = [k if isinstance(before.get(k), (list, dict)) or isinstance(now.get(k), (list, dict))
                 else f"{k} ({before.get(k)} -> {now.get(k)})" for k in changed]
        hint = "; the model of a run fine-tuning a checkpoint is that checkpoint's (give it again: `pretrained`)" \
            if any(k.startswith("model_config.") for k in changed) and pretrained is None else ""
        if "training_config.random_seed" in changed:  # a run started with `train --seed N`
            seed = before.get("training_config.random_seed")
            hint += f"; a run started with another seed resumes with it (`seed` {seed})"
        raise SpecError(f"resume: the spec differs from the run's own ({stored}) in {', '.join(shown)}; resume "
                        f"with that spec, or train a new run under another `name`{hint}")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def run(rank: int, world_size: int, port: int, spec_dict: dict, out_dir: str, pretrained: str | None,
        resume: bool, progress: bool, replaces: Path | None = None) -> None:
    """One process of a run (rank 0 of 1 without DDP). Top-level so torch.multiprocessing can spawn it."""
    from ..config import spec_from_dict

    if world_size > 1:
        torch.set_num_threads(1)  # N processes already share the cores
    spec = spec_from_dict(spec_dict, source="spec")
    ctx = dist_util.init(rank, world_size, port)
    try:
        Trainer(spec, Path(out_dir), ctx, pretrained=pretrained, progress=progress and ctx.is_main,
                replaces=replaces).fit(resume)
    finally:
        dist_util.shutdown(ctx)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step for training_config.precision on `device` (None: float32)."""
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda":
        return torch.float16
    return None


class Trainer:
    """One training run. Beyond the spec (used by `floodwatch.training.semi`): `splits` (samples already read
    by load_samples), `extra_train` (more training chips, e.g. pseudo-labelled ones, whose loss is weighted by
    `extra_weight`), `augmentation` (an augmentation config replacing the spec's), and the attribute
    `extra_loss`: None or a callable (model, epoch) -> loss added to every training step's loss.
    `replaces`: the folder an `overwrite` run set the run it replaces aside to, deleted once this run has saved
    its first checkpoint (until then the old run can come back)."""

    def __init__(self, spec: Spec, out: Path, ctx: dist_util.Context, *, pretrained: str | None = None,
                 progress: bool = True, splits: dict[str, list] | None = None, extra_train: list | None = None,
                 extra_weight: float = 1.0, augmentation: dict[str, Any] | None = None,
                 replaces: Path | None = None):
        self.spec, self.out, self.ctx, self.progress = spec, out, ctx, progress
        self.replaces = replaces
        tc, mc = spec.training_config, spec.model
        seed_everything(tc.random_seed)
        # Same algorithms on every run: needed for resume == uninterrupted and 1 == N processes.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

        if splits is None:
            splits = load_samples(spec, progress=None if progress else False)
        check_crop_fits(splits["train"], (mc.model_input_height, mc.model_input_width))
        from_checkpoint = checkpoint_or_none(pretrained) is not None
        self.model, self.model_config, prep = self._model(pretrained, from_checkpoint, splits["train"])
        self.prep: Preprocessing = prep
        #: what spec.yaml and the checkpoints record: the spec with the model that trains
        self.recorded_spec = spec_as_trained(spec, self.model_config)
        what = "pretrained model" if from_checkpoint else "model_config.model_input_channels"
        for part in ("train", "val"):
            check_channels(splits[part], prep, mc.temporal, self.model_config["in_channels"], what)
        size = (mc.model_input_height, mc.model_input_width)
        self.train_set = ChipDataset(splits["train"], prep, size, temporal=mc.temporal, train=True, seed=tc.random_seed)
        self.extra_weight = float(extra_weight)
        if extra_train:
            check_channels(extra_train, prep, mc.temporal, self.model_config["in_channels"], what)
            extra = ChipDataset(extra_train, prep, size, temporal=mc.temporal, train=True, seed=tc.random_seed + 1)
            self.train_set = MixedChipDataset(self.train_set, extra)
        self.extra_loss = None
        self.val_set = ChipDataset(splits["val"], prep, size, temporal=mc.temporal, train=False)
        self.model.to(ctx.device)
        self.mixstyle = None
        if tc.mixstyle is not None:
            from .mixstyle import MixStyle

            ms = tc.mixstyle
            self.mixstyle = MixStyle(ms.probability, ms.alpha, ms.layers, seed=tc.random_seed).attach(self.model)
        if ctx.distributed:
            if ctx.device.type == "cuda" and mc.use_batch_norm:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        self.sampler = DistributedSampler(self.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=tc.random_seed, drop_last=False)
        # validation: a plain stride over tiles (DistributedSampler would pad with repeats and bias the metrics)
        val_idx = list(range(ctx.rank, len(self.val_set), ctx.world_size))
        loader_kw = dict(batch_size=tc.batch_size, num_workers=tc.num_workers,
                         pin_memory=ctx.device.type == "cuda", persistent_workers=tc.num_workers > 0)
        self.train_loader = DataLoader(self.train_set, sampler=self.sampler, **loader_kw)
        self._check_batch_norm_batches(len(self.sampler))
        self.val_loader = DataLoader(torch.utils.data.Subset(self.val_set, val_idx), shuffle=False, **loader_kw)

        self.loss_fn = build_loss(tc.loss, tc.weight, tc.focal_gamma)
        adam = tc.optimizer.adam
        self.optimizer = torch.optim.Adam(self._trainable(), lr=tc.learning_rate, betas=(adam.beta1, adam.beta2),
                                          eps=adam.epsilon)
        self.scheduler = self._scheduler()
        self.average = None
        if tc.ema_decay is not None:
            from .averaging import WeightAverage

            self.average = WeightAverage(self.optimizer.param_groups[0]["params"], tc.ema_decay)
        self.autocast_dtype = autocast_dtype(tc.precision, ctx.device)
        # loss scaling guards float16's narrow range; bfloat16 has float32's exponent and needs none
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.augmenter = None
        aug_cfg = augmentation if augmentation is not None else spec.dataset_config.augmentation()
        if aug_cfg is not None:
            from ..augment import BatchAugmenter
            from ..augment.batch import check_band_delta
            from ..augment.config import parse_config

            # the derived channel may come from a checkpoint being fine-tuned, so it is checked here too
            check_band_delta(parse_config(aug_cfg), prep.derived, mc.temporal)
            db = [s for s in prep.scale[:len(prep.bands)]] + [0.0] * (prep.channels - len(prep.bands))
            db = db * (2 if mc.temporal == "bitemporal" else 1)
            self.augmenter = BatchAugmenter.from_config(aug_cfg, seed=tc.random_seed, db_scale=db)
        self.history: list[dict[str, float]] = []
        self.best_iou = -math.inf
        self.start_epoch = 1
        self._first_bad_step = 0

    # -- setup -----------------------------------------------------------------------------------------
    def _model(self, pretrained: str | None, from_checkpoint: bool,
               train_samples) -> tuple[nn.Module, dict[str, Any], Preprocessing]:
        mc = self.spec.model
        if from_checkpoint:
            # Whole-model transfer: architecture (maybe pruned) and pre-processing come from the checkpoint.
            model, meta = load_model(pretrained)
            model.train()
            cfg = dict(meta["model_config"])
            cfg.setdefault("temporal", mc.temporal)
            prep = meta["preprocessing_obj"]
            if self.spec.dataset_config.preprocessing is not None:
                prep = fit_preprocessing(self.spec, train_samples)
            return model, cfg, prep
        prep = fit_preprocessing(self.spec, train_samples)
        model = build_model(**mc.build_kwargs())
        cfg = {**mc.build_kwargs(), "temporal": mc.temporal}  # the checkpoint's model_config
        _initialise(model, mc.initializer)
        if pretrained:
            from ..models.weights import load_encoder_weights

            load_encoder_weights(model.encoder, pretrained)  # after init: pretrained weights win
        return model, cfg, prep

    def _check_batch_norm_batches(self, chips: int) -> None:
        """A training batch of one chip of at most 32 px leaves one value per channel at the encoder's 1/32
        level, where BatchNorm in training cannot take a mean (torch raises mid-epoch): refused before."""
        mc, tc = self.spec.model, self.spec.training_config
        if not mc.use_batch_norm or min(mc.model_input_height, mc.model_input_width) > 32:
            return
        if tc.batch_size == 1 or chips % tc.batch_size == 1:
            what = "batch_size 1" if tc.batch_size == 1 else f"the last batch of each epoch ({chips} chips)"
            raise SpecError(f"model_config.model_input_height/width: {mc.model_input_height}x{mc.model_input_width} "
                            f"px with use_batch_norm and {what} leave one value per channel at the 1/32 level, "
                            "where BatchNorm cannot train; use crops over 32 px or batches of at least 2 chips")

    def _autocast(self) -> torch.autocast:
        return autocast(self.ctx.device, self.autocast_dtype)

    def _trainable(self) -> list[nn.Parameter]:
        core = getattr(self.model, "module", self.model)
        blocks = {0: ("conv1", "bn1"), 1: ("layer1",), 2: ("layer2",), 3: ("layer3",), 4: ("layer4",)}
        for b in self.spec.model.freeze_blocks:
            for prefix in blocks[b]:
                for p in getattr(core.encoder, prefix).parameters():
                    p.requires_grad_(False)
        return [p for p in core.parameters() if p.requires_grad]

    def _scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        s, epochs = self.spec.training_config.lr_scheduler, self.spec.training_config.epochs
        if s.type == "cosine":
            base = self.spec.training_config.learning_rate
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs, eta_min=base * s.min_lr_ratio)
        if s.type == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=s.step_size, gamma=s.gamma)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)

    # -- the run ---------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> None:
        tc = self.spec.training_config
        if resume:
            self._resume()
        # the folders this run makes, deepest first: removed again if it fails before its first epoch is saved
        created = [d for d in (self.out, *self.out.parents) if not d.exists()]
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_spec(self.recorded_spec, self.out / "spec.yaml")
        # a finished run resumed has nothing to log: no empty events file per resume
        writer = self._writer() if self.start_epoch <= tc.epochs else None
        saved = False
        try:
            with _progress(self.progress) as bar:
                task = bar.add_task("training", total=(tc.epochs - self.start_epoch + 1) * len(self.train_loader))
                for epoch in range(self.start_epoch, tc.epochs + 1):
                    t0 = time.perf_counter()
                    train_loss = self._train_epoch(epoch, bar, task, writer)
                    # with ema_decay the average is what is validated and saved; training goes on from the
                    # trained weights (their BatchNorm statistics are re-estimated after the next epoch)
                    with self.average.applied() if self.average is not None else nullcontext():
                        self._recalibrate_batchnorm()
                        val = self._validate()
                        self._check_finite(epoch, train_loss)
                        row = {"epoch": epoch, "train_loss": train_loss, **val,
                               "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
                        self.scheduler.step()
                        self.history.append(row)
                        if self.ctx.is_main:
                            self._record(epoch, row, writer)
                            saved = True
                            if self.replaces is not None:  # the run overwritten: this one has a checkpoint now
                                shutil.rmtree(self.replaces, ignore_errors=True)
                                self.replaces = None
                            bar.console.print(_summary(row, tc.epochs))
                    dist_util.barrier(self.ctx)
            if self.ctx.is_main and tc.checkpoints == "best":
                # last.pt was only there to resume a killed run; a finished one keeps best.pt alone
                (self.out / "last.pt").unlink(missing_ok=True)
        except BaseException:
            if writer is not None:
                writer.close()
                writer = None
            if self.ctx.is_main and created and not saved:
                shutil.rmtree(self.out, ignore_errors=True)
                for folder in created[1:]:  # parents: only while empty (another run may be writing there)
                    try:
                        folder.rmdir()
                    except OSError:
                        break
            raise
        finally:
            if writer is not None:
                writer.close()

    def _check_finite(self, epoch: int, train_loss: float) -> None:
        """Stop a diverged run before it saves anything of this epoch: non-finite weights (or BatchNorm
        statistics) would make a best.pt that finds no water anywhere. The loss counts only without float16
        loss scaling, which skips the steps whose loss overflowed and goes on."""
        core = getattr(self.model, "module", self.model)
        loss_bad = not math.isfinite(train_loss) and not self.scaler.is_enabled()
        bad = [k for k, v in core.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if not (loss_bad or bad):
            return
        step = self._first_bad_step if self._first_bad_step < len(self.train_loader) else None
        what = (f"the training loss is {train_loss:g}" + (f" from step {step + 1}" if step is not None else "")
                if loss_bad else f"non-finite values in {bad[0]}")
        kept = "the earlier epochs' checkpoints are kept" if epoch > 1 else "nothing was saved"
        raise FloodwatchError(f"training diverged in epoch {epoch} ({what}); {kept}. Lower "
                              f"training_config.learning_rate ({self.spec.training_config.learning_rate:g}) "
                              "and train again with `overwrite` (or under another name)")

    def _train_epoch(self, epoch: int, bar, task, writer) -> float:
        tc = self.spec.training_config
        self.model.train()
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        epoch_seed = tc.random_seed * 1_000_003 + epoch * 1009 + self.ctx.rank
        if self.augmenter is not None:
            self.augmenter.manual_seed(epoch_seed)
        if self.mixstyle is not None:
            self.mixstyle.manual_seed(epoch_seed + 7)
        total = torch.zeros(2, dtype=torch.float64, device=self.ctx.device)
        steps_per_epoch = len(self.train_loader)
        # the first step whose loss is not finite (steps_per_epoch: none), kept on the device: no sync per step
        first_bad = torch.tensor(steps_per_epoch, device=self.ctx.device)
        for step, (image, mask, valid, *extra) in enumerate(self.train_loader):
            image = image.to(self.ctx.device, non_blocking=True)
            mask = mask.to(self.ctx.device, non_blocking=True)
            valid = valid.to(self.ctx.device, non_blocking=True)
            if self.augmenter is not None:
                image, mask, valid = self.augmenter(image, mask, valid)
                mask = torch.where(valid, mask, torch.full_like(mask, IGNORE_INDEX))
            mask = ignore_boundaries(mask, tc.ignore_boundary_px)
            with self._autocast():
                logits = self.model(image)
            is_extra = extra[0].to(self.ctx.device) if extra else None
            loss = self._loss(logits.float(), mask, is_extra) * self._rank_share(mask) + self._regularization()
            if self.extra_loss is not None:
                loss = loss + self.extra_loss(self.model, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.average is not None:
                self.average.update()
            total += torch.stack([loss.detach().double() * image.shape[0],
                                  torch.tensor(image.shape[0], dtype=torch.float64, device=self.ctx.device)])
            first_bad = torch.minimum(first_bad, torch.where(torch.isfinite(loss.detach()), steps_per_epoch, step))
            bar.advance(task)
            global_step = (epoch - 1) * steps_per_epoch + step + 1
            if writer is not None and global_step % tc.log_summary_steps == 0:
                writer.add_scalar("train/loss_step", float(loss.detach()), global_step)
        total = dist_util.all_sum(self.ctx, total)
        self._first_bad_step = int(first_bad)
        return float(total[0] / total[1].clamp(min=1))

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor, is_extra: torch.Tensor | None) -> torch.Tensor:
        """The spec's loss; with extra (pseudo-labelled) chips in the batch and extra_weight != 1, the chip-count
        weighted mean (n_l * L(labelled) + w * n_x * L(extra)) / (n_l + n_x)."""
        if is_extra is None or self.extra_weight == 1.0 or not is_extra.any():
            return self.loss_fn(logits, mask)
        n_x = int(is_extra.sum())
        n_l = len(is_extra) - n_x
        loss = self.extra_weight * n_x * self.loss_fn(logits[is_extra], mask[is_extra])
        if n_l:
            loss = loss + n_l * self.loss_fn(logits[~is_extra], mask[~is_extra])
        return loss / len(is_extra)

    def _rank_share(self, mask: torch.Tensor) -> torch.Tensor | float:
        """DDP averages gradients over ranks, i.e. the mean of per-rank pixel means. For pixel-mean losses
        rescale each rank's mean by its share of the global normaliser, so N processes compute exactly the
        one-process loss of the global batch even when ranks hold different numbers of scored pixels.
        (Dice is a ratio over the batch and has no such split; it stays a per-rank batch Dice.)"""
        tc = self.spec.training_config
        if not self.ctx.distributed or tc.loss not in ("cross_entropy", "focal"):
            return 1.0
        keep = mask != IGNORE_INDEX
        if tc.weight is not None and tc.loss == "cross_entropy":
            w = torch.as_tensor(tc.weight, dtype=torch.float64, device=mask.device)
            local = w[torch.where(keep, mask, 0)][keep].sum()
        else:
            local = keep.sum().double()
        total = dist_util.all_sum(self.ctx, local)
        return (local * self.ctx.world_size / total.clamp(min=1e-12)).float()

    def _regularization(self) -> torch.Tensor | float:
        """TAO's kernel regularizer: weight * sum |w| (L1) or weight * sum w^2 (L2) over conv kernels."""
        reg = self.spec.training_config.regularizer
        if reg.type == "NO_REG" or reg.weight == 0:
            return 0.0
        kernels = [p for n, p in self.model.named_parameters() if p.requires_grad and p.dim() == 4]
        if reg.type == "L1":
            return reg.weight * sum(p.abs().sum() for p in kernels)
        return reg.weight * sum(p.pow(2).sum() for p in kernels)

    @torch.no_grad()
    def _recalibrate_batchnorm(self) -> None:
        """Re-estimate BatchNorm running statistics with the epoch's final weights ("precise BN", Wu and
        Johnson 2021), on at most PRECISE_BN_BATCHES batches of the epoch's training crops, un-augmented as
        inference sees them.

        Why: the running averages (momentum 0.1) mix BatchNorm's initial mean 0 / variance 1 with statistics
        of weights that no longer exist. With few steps per epoch they do not describe the model at all: after
        the demo's first epoch (6 steps) validation gave a loss of 585 and water IoU 0.27 in inference mode,
        where the same weights with re-estimated statistics give 0.25 and 0.85. The checkpoints carry
        the statistics, so this also fixes the saved model, not only the curve.
        """
        core = getattr(self.model, "module", self.model)
        norms = [m for m in core.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
        core.train()
        with self.mixstyle.paused() if self.mixstyle is not None else contextlib.nullcontext():
            for i, (image, *_) in enumerate(self.train_loader):
                if i == PRECISE_BN_BATCHES:
                    break
                with self._autocast():
                    core(image.to(self.ctx.device))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            if self.ctx.distributed:  # each rank saw its own shard: validate and save with rank 0's, as DDP does
                for buffer in (m.running_mean, m.running_var, m.num_batches_tracked):
                    torch.distributed.broadcast(buffer, 0)

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        from ..evaluation.metrics import confusion_counts, scores

        self.model.eval()
        counts = torch.zeros(4, dtype=torch.float64, device=self.ctx.device)
        loss_sum = torch.zeros(2, dtype=torch.float64, device=self.ctx.device)
        for image, mask, valid in self.val_loader:
            image, mask = image.to(self.ctx.device), mask.to(self.ctx.device)
            with self._autocast():
                logits = self.model(image)
            logits = logits.float()
            n_scored = (mask != IGNORE_INDEX).sum()
            if n_scored:
                loss_sum += torch.stack([self.loss_fn(logits, mask).double() * n_scored, n_scored.double()])
            c = confusion_counts(logits.argmax(1), mask, ignore_index=IGNORE_INDEX)
            counts += torch.as_tensor(c.reshape(-1), dtype=torch.float64, device=self.ctx.device)
        counts = dist_util.all_sum(self.ctx, counts)
        loss_sum = dist_util.all_sum(self.ctx, loss_sum)
        s = scores(counts.cpu().numpy().reshape(2, 2).astype(np.int64))
        return {"val_loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else float("nan"),
                **{k: s[k] for k in ("water_iou", "f1", "precision", "recall", "accuracy")}}

    # -- outputs (rank 0) --------------------------------------------------------------------------------
    def _writer(self):
        if not self.ctx.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run wrote beyond the resumed epoch, so curves do not double back
        return SummaryWriter(log_dir=str(self.out), purge_step=self.start_epoch if self.start_epoch > 1 else None)

    def _record(self, epoch: int, row: dict[str, float], writer) -> None:
        tc = self.spec.training_config
        for k, v in row.items():
            if k != "epoch" and isinstance(v, float) and math.isfinite(v):
                writer.add_scalar(f"{'val' if k not in ('train_loss', 'lr', 'seconds') else 'train'}/{k}", v, epoch)
        writer.flush()
        write_metrics(self.out / "metrics.csv", self.history)
        from ..evaluation.report import learning_curve_png  # matplotlib: imported on use

        learning_curve_png(self.out / "metrics.csv", self.out / "learning_curve.png")
        iou = row["water_iou"] if math.isfinite(row["water_iou"]) else -1.0
        improved = iou > self.best_iou
        if improved:
            self.best_iou = iou
        state = self._state(epoch, row)
        if improved:  # the deployable model: no optimizer state, a third of the size
            self._save(self.out / "best.pt", epoch, row,
                       {k: state[k] for k in ("history", "best_water_iou")})
        if tc.checkpoints == "all" and (epoch % tc.checkpoint_interval == 0 or epoch == tc.epochs):
            self._save(self.out / f"epoch_{epoch:03d}.pt", epoch, row, state)
        self._save(self.out / "last.pt", epoch, row, state)  # last: a kill before this leaves the previous one

    def _state(self, epoch: int, row: dict[str, float]) -> dict[str, Any]:
        return {"optimizer_state": self.optimizer.state_dict(), "scheduler_state": self.scheduler.state_dict(),
                "scaler_state": self.scaler.state_dict(),
                "rng_state": {"torch": torch.get_rng_state(), "python": random.getstate()},
                "history": list(self.history), "best_water_iou": self.best_iou,
                **({"weight_average": self.average.state_dict()} if self.average is not None else {})}

    def _save(self, path: Path, epoch: int, row: dict[str, float], state: dict[str, Any]) -> None:
        save_checkpoint(path, self.model, model_config=self.model_config, preprocessing=self.prep,
                        class_map=self.spec.dataset_config.class_map(scored_only=True),
                        spec=self.recorded_spec.to_dict(),
                        epoch=epoch, metrics=dict(row), **state)

    def _resume(self) -> None:
        last = self.out / "last.pt"
        if not last.is_file():
            done = read_metrics(self.out / "metrics.csv")
            if (self.out / "best.pt").is_file() and done and done[-1]["epoch"] >= self.spec.training_config.epochs:
                # a finished run that kept best.pt only (checkpoints: best): nothing left to train
                self.history, self.start_epoch = done, int(done[-1]["epoch"]) + 1
                return
            if self.ctx.is_main:
                from rich.console import Console
                from rich.markup import escape

                Console(stderr=True).print(f"[yellow]resume: no {escape(str(last))}; starting from epoch 1[/]")
            return
        state = read_checkpoint(last)
        core = getattr(self.model, "module", self.model)
        try:
            core.load_state_dict(state["model_state"])
            self.optimizer.load_state_dict(state["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{last}: does not fit this spec's model ({str(exc).splitlines()[0]}); "
                                  "use another results folder or drop `resume`") from None
        if self.average is not None:
            if "weight_average" not in state:
                raise CheckpointError(f"{last}: was trained without ema_decay; use another results folder or drop "
                                      "`resume`")
            self.average.load_state_dict(state["weight_average"])  # and the trained weights, not the average
        self.scheduler.load_state_dict(state["scheduler_state"])
        self.scaler.load_state_dict(state.get("scaler_state", {}) or self.scaler.state_dict())
        self.history = list(state.get("history", []))
        self.best_iou = float(state.get("best_water_iou", -math.inf))
        self.start_epoch = int(state["epoch"]) + 1
        self.prep = self.train_set.prep = self.val_set.prep = Preprocessing.from_dict(state["preprocessing"])


def _initialise(model: nn.Module, initializer: str) -> None:
    """TAO's model_config.initializer for conv kernels (biases zero); BatchNorm keeps weight 1, bias 0."""
    init = {"HE_UNIFORM": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
            "HE_NORMAL": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
            "GLOROT_UNIFORM": nn.init.xavier_uniform_}[initializer]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore")
            w.writeheader()
            for row in history:
                w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def best_row(history: list[dict[str, float]]) -> dict[str, float] | None:
    """The epoch with the highest validation water IoU (NaN epochs, with no water to score, left out)."""
    return max((r for r in history if r.get("water_iou") == r.get("water_iou")),
               key=lambda r: r["water_iou"], default=None)


def _summary(row: dict[str, float], epochs: int) -> str:
    return (f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"water IoU {row['water_iou']:.3f}  F1 {row['f1']:.3f}")


class _NullProgress:
    console = type("C", (), {"print": staticmethod(lambda *a, **k: None)})()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def advance(self, *a, **k):
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=False)
