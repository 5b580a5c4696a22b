"""training_config.ema_decay: the average of the weights is what is validated and saved, training goes on from
the trained weights, and a resumed run continues the average."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from floodwatch.config import spec_from_dict
from floodwatch.errors import SpecError
from floodwatch.models.checkpoint import read_checkpoint
from floodwatch.training import distributed as dist_util
from floodwatch.training.averaging import WeightAverage
from floodwatch.training.loop import Trainer


def _ema(steps: list[np.ndarray], decay: float) -> np.ndarray:
    """The bias-corrected exponential average written out as a weighted mean of the steps."""
    w = np.array([(1 - decay) * decay ** (len(steps) - 1 - i) for i in range(len(steps))])
    return np.tensordot(w / w.sum(), np.stack(steps), axes=1)


def test_average_is_the_weighted_mean_of_the_steps_and_is_taken_back():
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], 0.8)
    with avg.applied():  # no step yet: nothing to average, the weights stay
        assert torch.equal(p.detach(), torch.zeros(3))
    seen = []
    for step in range(5):
        with torch.no_grad():
            p.copy_(torch.tensor([step, step ** 2, -1.0]))
        seen.append(p.detach().numpy().copy())
        avg.update()
    with avg.applied():
        np.testing.assert_allclose(p.detach().numpy(), _ema(seen, 0.8), rtol=1e-6)
        state = avg.state_dict()
    np.testing.assert_array_equal(p.detach().numpy(), seen[-1])  # the trained weights are back
    np.testing.assert_array_equal(state["trained"][0].numpy(), seen[-1])  # ... and what a resume restores
    from floodwatch.errors import CheckpointError

    with pytest.raises(CheckpointError, match="ema_decay"):  # a resumed spec with another decay
        WeightAverage([p], 0.9).load_state_dict(state)


def _steps_of(trainer: Trainer) -> list[dict[str, np.ndarray]]:
    """The trained conv kernels after every optimiser step."""
    steps = []
    trainer.optimizer.register_step_post_hook(lambda *_: steps.append(
        {n: p.detach().numpy().copy() for n, p in trainer.model.named_parameters() if p.dim() == 4}))
    return steps


def test_trainer_saves_the_average_and_trains_on_undisturbed(tmp_path, synth_root, make_spec):
    runs = {}
    for decay in (None, 0.9):
        spec = make_spec(synth_root, epochs=2, checkpoints="last", **({"ema_decay": decay} if decay else {}))
        trainer = Trainer(spec_from_dict(spec), tmp_path / str(decay), dist_util.init(0, 1, 0), progress=False)
        runs[decay] = _steps_of(trainer)
        trainer.fit()
    plain, averaged = runs[None], runs[0.9]
    assert len(plain) == len(averaged) > 2
    for a, b in zip(plain, averaged):  # validating and saving the average never touched the trained weights
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    saved = read_checkpoint(tmp_path / "0.9" / "last.pt")["model_state"]
    for name in averaged[0]:
        expected = _ema([s[name] for s in averaged], 0.9)
        np.testing.assert_allclose(saved[name].numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.abs(expected - averaged[-1][name]).max() > 1e-4  # the average is not the last step
    plain_saved = read_checkpoint(tmp_path / "None" / "last.pt")["model_state"]
    for name in averaged[0]:
        np.testing.assert_array_equal(plain_saved[name].numpy(), plain[-1][name])


def test_resume_continues_the_average(tmp_path, synth_root, make_spec, kill_in_epoch_2):
    spec = spec_from_dict(make_spec(synth_root, epochs=2, checkpoints="last", ema_decay=0.9))
    whole = Trainer(spec, tmp_path / "whole", dist_util.init(0, 1, 0), progress=False)
    whole.fit()
    revive = kill_in_epoch_2()
    with pytest.raises(KeyboardInterrupt):
        Trainer(spec, tmp_path / "killed", dist_util.init(0, 1, 0), progress=False).fit()
    revive()
    Trainer(spec, tmp_path / "killed", dist_util.init(0, 1, 0), progress=False).fit(resume=True)
    a = read_checkpoint(tmp_path / "whole" / "last.pt")["model_state"]
    b = read_checkpoint(tmp_path / "killed" / "last.pt")["model_state"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1])
def test_ema_decay_outside_0_1_is_a_spec_error(synth_root, make_spec, decay):
    with pytest.raises(SpecError, match="ema_decay"):
        spec_from_dict(make_spec(synth_root, ema_decay=decay))
