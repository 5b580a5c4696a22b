"""`train(spec, results_dir)`: the one entry point to training, above both kinds of run.

A spec with a `semi_supervised` section trains in pseudo-labelling rounds (`semi.train_semi_supervised`), any
other spec is one supervised run (`loop.train_supervised`). The choice lives here, so neither module imports
the other's entry point: `semi` uses `loop`'s Trainer, and `loop` knows nothing of `semi`.
"""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the set-aside's lock falls back to its owner's pid (see _lock)
    fcntl = None

from ..config import MAX_SEED, Spec, SpecProblems, load_spec
from ..errors import FloodwatchError, InvalidArgumentError, SpecError
from ..io import check_output_dir, process_gone, process_tag
from .loop import TrainResult, train_supervised


def train(spec_or_path: Spec | str | Path, results_dir: str | Path, *, name: str = "model",
          pretrained: str | Path | None = None, gpus: int = 1, resume: bool = False,
          progress: bool = True, seed: int | None = None, overwrite: bool = False) -> TrainResult:
    """Train a U-Net as the spec says, into `<results_dir>/<name>/`.

    Args:
        spec_or_path: a Spec or the path of a spec file.
        results_dir: parent folder of the run folder.
        name: the run folder's name (one folder name, no path).
        pretrained: torchvision ResNet weights (file/URL, encoder only) or a floodwatch checkpoint (whole
            model, its model_config wins: fine-tuning, e.g. after pruning): a file, a name from
            `floodwatch models list` or https://.../FILE#sha256=HEX, as every command's -m.
        gpus: processes (DDP when more than one); semi-supervised runs take one.
        resume: continue from the run folder's last.pt (rounds finished stay finished), with the spec the run
            started with (its spec.yaml).
        progress: show progress bars.
        seed: replaces training_config.random_seed (initialisation, order, augmentation; not the data split),
            so one spec trains the members of a seed ensemble.
        overwrite: replace a run already in the run folder (without it, and without `resume`, such a folder
            is refused). The old run is set aside (in the run folder's .overwritten) until the new one saves
            its first checkpoint, and comes back if the new one fails (or is interrupted) before that; the
            user's other files stay.

    Returns:
        A TrainResult (a SemiSupervisedResult, a subclass, when the spec has a `semi_supervised` section).

    Raises:
        InvalidArgumentError: a name that is not one folder name, a run already there (or being replaced by
            another train), gpus below 1 (or above 1 for a semi-supervised spec), a seed out of range.
        SpecError, DataError, CheckpointError, ModelError: from reading the spec, the data or `pretrained`;
            FloodwatchError: a run whose training diverged.
    """
    check_run_name(name)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InvalidArgumentError(f"seed: must be 0 to {MAX_SEED}, got {seed}")
    if gpus < 1:
        raise InvalidArgumentError(f"gpus: must be at least 1, got {gpus}")
    if resume and overwrite:
        raise InvalidArgumentError("resume, overwrite: give one of them (continue the run, or replace it)")
    pretrained = resolve_pretrained(pretrained)
    # with `pretrained`, a checkpoint's model (its input channels) may win over the spec's: training checks then
    ignored: list[str] = []
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(
        spec_or_path, check_channels=pretrained is None, ignored=ignored)
    if seed is not None:
        spec = copy.deepcopy(spec)  # the caller's Spec stays as it was
        spec.training_config.random_seed = int(seed)
    out = Path(results_dir) / name
    check_output_dir(out)  # a file in the way fails now, not after the first epoch
    # a Spec object too: its missing data_root was otherwise first met by the reader, naming no field
    _check_data(spec, None if isinstance(spec_or_path, Spec) else Path(spec_or_path), pretrained)
    _settle_killed(out)
    found = run_checkpoints(out)
    if found and not (resume or overwrite):
        raise InvalidArgumentError(f"name: {out} already holds a training run ({found[0].relative_to(out)}); "
                                   f"`resume` continues it, `overwrite` replaces it")
    if spec.semi_supervised is not None and gpus != 1:
        raise InvalidArgumentError(f"gpus: semi-supervised training (the spec's semi_supervised section) runs in "
                                   f"one process; got {gpus}")
    if ignored:  # a TAO spec's dropout_rate, enable_qat, ...: the run must not look as if it applied them
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[yellow]{escape(str(spec_or_path))}: not used by floodwatch, dropped: "
                                   f"{escape(', '.join(ignored))}[/]", highlight=False, soft_wrap=True)
    aside = lock = None
    if overwrite and found:
        for what, path in (("spec", spec_or_path), ("pretrained", pretrained)):
            if isinstance(path, (str, Path)) and Path(path).resolve().is_relative_to(out.resolve()):
                raise InvalidArgumentError(f"{what}: {path} lies in the run `overwrite` would replace ({out}); "
                                           "copy it out first or give another name")
        aside, lock = _set_aside(out)
    try:
        if spec.semi_supervised is None:
            result = train_supervised(spec, results_dir, name=name, pretrained=pretrained, gpus=gpus,
                                      resume=resume, progress=progress, replaces=aside)
        else:
            from .semi import train_semi_supervised  # imported on use: it pulls in inference and evaluation

            result = train_semi_supervised(spec, results_dir, name=name, pretrained=pretrained, resume=resume,
                                           progress=progress, replaces=aside)
    except BaseException:
        if aside is not None:
            _settle(out, aside, lock)
        raise
    if aside is not None:
        _settle(out, aside, lock)
    return result


def check_run_name(name: str) -> None:
    """The run goes to RESULTS_DIR/NAME: a path would put it elsewhere ('../x') or into RESULTS_DIR itself."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidArgumentError(f"name: '{name}' is not a folder name (the run goes to a folder of that name "
                                   "in the results folder; no '/', not '.' or '..', not empty)")


def resolve_pretrained(ref: str | Path | None) -> Path | str | None:
    """`pretrained` as every command's -m: a file, a registered model name (its checkpoint) or URL#sha256=HEX
    (downloaded, verified); a URL without a checksum stays a URL (torchvision's encoder weights)."""
    from ..errors import CheckpointError
    from ..io import require_file
    from ..models.download import is_url
    from ..models.zoo import resolve_model

    if ref is None or (is_url(str(ref)) and "#sha256=" not in str(ref)):
        return ref
    # a missing file fails now, not after the data were opened (and not behind a data problem)
    path = require_file(resolve_model(str(ref), "checkpoint"), "weights file", error=CheckpointError)
    _check_encoder_weights(path)
    return path


def _check_encoder_weights(path: Path) -> None:
    """A file that is no floodwatch checkpoint must be ResNet encoder weights: anything else fails now, not
    after every chip was read (and `spec validate -m` finds it as train does)."""
    from ..errors import CheckpointError
    from ..models.checkpoint import checkpoint_or_none
    from ..models.weights import read_state_dict

    if checkpoint_or_none(path) is not None:
        return
    if not any(k.removeprefix("encoder.") == "conv1.weight" for k in read_state_dict(path)):
        raise CheckpointError(f"{path}: no 'conv1.weight' key; neither a floodwatch checkpoint nor ResNet "
                              "(torchvision-format) encoder weights")


def run_checkpoints(out: Path) -> list[Path]:
    """The checkpoints of a run in `out` (a semi-supervised run's rounds included): a run is there."""
    return sorted(p for pattern in ("best.pt", "last.pt", "round_[0-9]*/best.pt", "round_[0-9]*/last.pt")
                  for p in out.glob(pattern))


#: what a run (supervised or semi-supervised) writes into its folder; other files there are the user's
_RUN_ENTRIES = ("best.pt", "last.pt", "epoch_*.pt", "metrics.csv", "learning_curve.png", "spec.yaml",
                "events.out.tfevents.*", "semi_supervised.json", "round_[0-9]*")
#: an `overwrite` run sets the run it replaces aside in this subfolder of the run folder until it has saved a
#: checkpoint of its own: entries renamed within the run folder need no write access to the results folder and
#: work where the run folder is a mount point, and the user's other files never move. Its process holds an
#: exclusive lock on LOCK meanwhile (the OS lets go when the process dies, in a container too, where pids and
#: hosts tell nothing); PUTTING_BACK says the run entries in the run folder are the old run's, so whatever is
#: still aside goes back and nothing there is removed.
_ASIDE, _LOCK, _BACK = ".overwritten", "lock", "PUTTING_BACK"


def _run_entries(folder: Path) -> list[Path]:
    return sorted({p for pattern in _RUN_ENTRIES for p in folder.glob(pattern)})


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _lock(aside: Path) -> int | None:
    """Take the set-aside's lock: its descriptor (closing it lets go), or None while another live process
    holds it, or when it was settled meanwhile."""
    try:
        fd = os.open(aside / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FloodwatchError(f"{aside / _LOCK}: cannot lock the run an `overwrite` set aside ({exc.strerror})") \
            from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # Windows: no flock; the lock file names its owner (pid@host) and a dead owner's is free
            owner = os.read(fd, 200).decode(errors="replace")
            if owner and not process_gone(owner):
                raise BlockingIOError
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, process_tag().encode())
        if os.fstat(fd).st_ino != os.stat(aside / _LOCK).st_ino:  # settled (and removed) by another train
            raise FileNotFoundError
    except OSError:
        os.close(fd)
        return None
    return fd


def _set_aside(out: Path) -> tuple[Path, int]:
    """Move the run in `out` aside (into `out/.overwritten`, locked), so the new run starts in a run folder
    without it (what progress readers and TensorBoard watch) while the old one can still come back."""
    aside = out / _ASIDE
    try:
        aside.mkdir()
    except FileExistsError:  # made after this train settled `out`: another train's
        raise InvalidArgumentError(_busy(out)) from None
    except OSError as exc:
        raise FloodwatchError(f"{out}: cannot set the old run aside to replace it ({exc.strerror})") from None
    fd = _lock(aside)
    if fd is None:  # another train settling it: it looked empty (nothing moved yet) to that one
        raise InvalidArgumentError(_busy(out))
    try:
        (aside / _BACK).touch()  # until the whole run is aside, a kill puts back what moved
        for entry in _run_entries(out):
            os.rename(entry, aside / entry.name)
        (aside / _BACK).unlink()
    except BaseException as exc:  # Ctrl-C too
        _settle(out, aside, fd)
        if isinstance(exc, OSError):
            raise FloodwatchError(f"{out}: cannot set the old run aside to replace it ({exc.strerror})") from None
        raise
    return aside, fd


def _busy(out: Path) -> str:
    return (f"name: {out} is being replaced by another train (an `overwrite` keeps the old run in "
            f"{out / _ASIDE} until the new one saves a checkpoint); wait for it to finish or give another name")


def _put_back(out: Path, aside: Path) -> None:
    """The new run saved nothing: its files go and the old run's return. The marker is written once the new
    run's files are gone: a put-back cut short is finished by the next train without removing entries that
    are already back (before the marker, the new run's files are there but no checkpoint: put back again)."""
    if not (aside / _BACK).exists():
        for entry in _run_entries(out):
            _remove(entry)
        (aside / _BACK).touch()
    for entry in sorted(aside.iterdir()):
        if entry.name not in (_LOCK, _BACK):
            os.replace(entry, out / entry.name)
    (aside / _BACK).unlink()


def _settle(out: Path, aside: Path, fd: int) -> bool:
    """The end of an `overwrite` run, or of one killed earlier (`fd`: its lock, held, closed here): once the
    new run has a checkpoint the old run goes (the trainer drops it at the first one); without one, or with a
    put-back under way, the old run comes back. Returns whether it did."""
    try:
        back = aside.exists() and ((aside / _BACK).exists() or not run_checkpoints(out))
        if back:
            _put_back(out, aside)
    finally:
        os.close(fd)
    # what is left: the lock alone, or the dropped run (no marker: removed in any order, a kill meanwhile
    # still leaves the new run's checkpoint to drop the rest next time)
    shutil.rmtree(aside, ignore_errors=True)
    return back


def _settle_killed(out: Path) -> None:
    """An `overwrite` run killed (SIGKILL, power loss) before its clean-up left the old run aside: settle it
    now, as that run would have. One whose process still holds the lock is another train's: refused."""
    aside = out / _ASIDE
    if not aside.is_dir():
        return
    fd = _lock(aside)
    if fd is None:
        if aside.exists():
            raise InvalidArgumentError(_busy(out))
        return
    if _settle(out, aside, fd):
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[yellow]{escape(str(out))}: the run an interrupted `overwrite` had "
                                   "set aside is back (that run saved nothing)[/]", highlight=False,
                                   soft_wrap=True)


def training_data_problems(spec: Spec, pretrained: str | Path | None = None) -> list[str]:
    """What `train` (from scratch, or fine-tuning the floodwatch checkpoint `pretrained`, already resolved)
    would reject about the spec's data, one line per problem starting with the field, before any chip is
    read. From scratch the model's channels are model_config's and are checked against the data; a
    checkpoint brings its own model, and the data are checked against its bands."""
    from ..models.checkpoint import checkpoint_or_none

    meta = checkpoint_or_none(pretrained)
    problems = spec_data_problems(spec, meta["preprocessing"]["bands"] if meta else None, channels=meta is None)
    if meta is None and spec.model.widths:  # a checkpoint brings its own network
        problems += _widths_problems(spec)
    pre = spec.dataset_config.preprocessing
    if meta and pre is not None:  # the spec's pre-processing is fitted, and must make the checkpoint's channels
        from .data import check_model_channels

        mc = meta.get("model_config") or {}
        try:
            check_model_channels(meta["preprocessing"]["bands"], pre.derived, mc.get("temporal", "single"),
                                 int(mc.get("in_channels", 0)), "dataset_config.preprocessing")
        except SpecError as exc:
            problems.append(f"{exc} (the model of the checkpoint {Path(str(pretrained)).name})")
    return problems


def _widths_problems(spec: Spec) -> list[str]:
    """model_config.widths the network cannot take (no prunable conv of that name, below 1): found before any
    chip is read, on a network without storage."""
    import torch

    from ..models import build_model

    try:
        with torch.device("meta"):
            build_model(**spec.model.build_kwargs())
    except FloodwatchError as exc:
        return [str(exc)]
    return []


def _check_data(spec: Spec, path: Path | None, pretrained: str | Path | None) -> None:
    """`training_data_problems`, as the error `spec validate` would print, naming the spec file (`path`; None:
    a Spec object, whose problems are listed by training_data_problems)."""
    problems = training_data_problems(spec, pretrained)
    if problems and path is None:
        raise SpecProblems(problems, hint="training_data_problems(spec) lists them")
    if problems:
        raise SpecProblems([f"{path.name}: {p}" for p in problems], hint=f"run floodwatch spec validate {path}")


def spec_data_problems(spec: Spec, model_bands=None, *, channels: bool | None = None) -> list[str]:
    """What training would reject about the spec's data, one line per problem starting with the field: the
    labelled data's (`data.labelled_data_problems`, which says what `model_bands` and `channels` mean) and the
    unlabelled folders' against the model's bands (`semi.unlabelled_problems`). Here, above both modules,
    because semi imports the trainer, which imports data."""
    from .data import labelled_data_problems

    problems, bands = labelled_data_problems(spec, model_bands, channels=channels)
    if spec.semi_supervised is not None and (model_bands or bands):
        from .semi import unlabelled_problems

        problems += unlabelled_problems(spec.semi_supervised, model_bands or bands)
    return problems
