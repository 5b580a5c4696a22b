"""A tiny synthetic Sen1Floods11-layout data set (8 chips of 32 px) and specs over it."""
from __future__ import annotations

import copy

import pytest

from floodwatch.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data", chips=8, size=32, seed=3)


@pytest.fixture(scope="session")
def make_spec():
    return _make_spec


def _make_spec(root, **training) -> dict:
    spec = {"dataset_config": {"data_root": str(root), "format": "sen1floods11",
                               "split": {"method": "random", "fractions": [0.5, 0.5, 0.0]}},
            # no BatchNorm: results then do not depend on how the batch is split over processes
            "model_config": {"num_layers": 10, "use_batch_norm": False, "model_input_height": 32,
                             "model_input_width": 32, "model_input_channels": 2},
            "training_config": {"batch_size": 2, "epochs": 2, "learning_rate": 0.003, "loss": "cross_entropy",
                                "checkpoints": "all", "checkpoint_interval": 1, "log_summary_steps": 1,
                                "random_seed": 7}}
    spec["training_config"].update(training)
    return copy.deepcopy(spec)


@pytest.fixture
def kill_in_epoch_2(monkeypatch):
    """Call it to make the next training die in its epoch 2 (KeyboardInterrupt, as a killed process); call what it
    returns to train normally again."""
    from floodwatch.training.loop import Trainer

    original = Trainer._train_epoch

    def killed_in_epoch_2(self, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    def kill():
        monkeypatch.setattr(Trainer, "_train_epoch", killed_in_epoch_2)
        return lambda: monkeypatch.setattr(Trainer, "_train_epoch", original)

    return kill
