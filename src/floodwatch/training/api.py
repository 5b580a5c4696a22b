"""`train(spec, results_dir)`: the one entry point to training, above both kinds of run.

A spec with a `semi_supervised` section trains in pseudo-labelling rounds (`semi.train_semi_supervised`), any
other spec is one supervised run (`loop.train_supervised`). The choice lives here, so neither module imports
the other's entry point: `semi` uses `loop`'s Trainer, and `loop` knows nothing of `semi`.
"""
from __future__ import annotations

import copy
from pathlib import Path

from ..config import Spec, load_spec
from ..errors import InvalidArgumentError
from ..io import check_output_dir
from .loop import TrainResult, train_supervised


def train(spec_or_path: Spec | str | Path, results_dir: str | Path, *, name: str = "model",
          pretrained: str | Path | None = None, gpus: int = 1, resume: bool = False,
          progress: bool = True, seed: int | None = None) -> TrainResult:
    """Train a U-Net as the spec says, into `<results_dir>/<name>/`.

    Args:
        spec_or_path: a Spec or the path of a spec file.
        results_dir: parent folder of the run folder.
        name: the run folder's name.
        pretrained: torchvision ResNet weights (file/URL, encoder only) or a floodwatch checkpoint (whole
            model, its model_config wins: fine-tuning, e.g. after pruning).
        gpus: processes (DDP when more than one); semi-supervised runs take one.
        resume: continue from the run folder's last.pt (rounds finished stay finished).
        progress: show progress bars.
        seed: replaces training_config.random_seed (initialisation, order, augmentation; not the data split),
            so one spec trains the members of a seed ensemble.

    Returns:
        A TrainResult (a SemiSupervisedResult, a subclass, when the spec has a `semi_supervised` section).

    Raises:
        InvalidArgumentError: gpus below 1, or above 1 for a semi-supervised spec.
        SpecError, DataError, CheckpointError: from reading the spec, the data or `pretrained`.
    """
    # with `pretrained`, a checkpoint's model (its input channels) may win over the spec's: training checks then
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path,
                                                                        check_channels=pretrained is None)
    if seed is not None:
        spec = copy.deepcopy(spec)  # the caller's Spec stays as it was
        spec.training_config.random_seed = int(seed)
    if gpus < 1:
        raise InvalidArgumentError(f"gpus: must be at least 1, got {gpus}")
    check_output_dir(Path(results_dir) / name)  # a file in the way fails now, not after the first epoch
    if spec.semi_supervised is None:
        return train_supervised(spec, results_dir, name=name, pretrained=pretrained, gpus=gpus, resume=resume,
                                progress=progress)
    if gpus != 1:
        raise InvalidArgumentError(f"gpus: semi-supervised training (the spec's semi_supervised section) runs in "
                                   f"one process; got {gpus}")
    from .semi import train_semi_supervised  # imported on use: it pulls in inference and evaluation

    return train_semi_supervised(spec, results_dir, name=name, pretrained=pretrained, resume=resume,
                                 progress=progress)
