"""An exponential moving average of a model's trained weights (`training_config.ema_decay`).

Averaging the weights of the last few hundred steps finds flatter minima than the last step alone, which is
what carries over to data of another domain (Izmailov et al. 2018, SWA; Cha et al. 2021, SWAD, on domain
generalisation). The trainer validates and saves the average; it keeps training the raw weights.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from ..errors import CheckpointError, InvalidArgumentError


class WeightAverage:
    """avg_t = decay * avg_{t-1} + (1 - decay) * w_t from avg_0 = 0, read bias-corrected as avg_t / (1 - decay^t)
    (Adam's correction): a weighted mean of the steps taken so far, without the random initial weights that an
    average started from them would keep for 1 / (1 - decay) steps."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float):
        if not 0.0 < decay < 1.0:
            raise InvalidArgumentError(f"ema_decay: {decay} is not between 0 and 1")
        self.params, self.decay, self.steps = list(params), float(decay), 0
        self.avg = [torch.zeros_like(p, dtype=torch.float32) for p in self.params]
        self._trained: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        """After each optimiser step."""
        self.steps += 1
        torch._foreach_lerp_(self.avg, [p.detach().float() for p in self.params], 1.0 - self.decay)

    def averaged(self) -> list[torch.Tensor]:
        correction = 1.0 - self.decay ** self.steps
        return [a / correction for a in self.avg]

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the parameters hold the average (nothing changes before the first step); after it,
        the trained weights again."""
        if self.steps == 0:
            yield
            return
        with torch.no_grad():
            self._trained = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.averaged()):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, t in zip(self.params, self._trained):
                    p.copy_(t)
            self._trained = None

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: the running sums, and the trained weights (inside `applied` the model's
        parameters, which a checkpoint saves, are the average)."""
        trained = self._trained if self._trained is not None else [p.detach() for p in self.params]
        return {"decay": self.decay, "steps": self.steps, "avg": [a.clone() for a in self.avg],
                "trained": [t.clone() for t in trained]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the sums and put the trained weights back into the parameters."""
        if len(state["avg"]) != len(self.params) or float(state["decay"]) != self.decay:
            raise CheckpointError(f"ema_decay: the checkpoint's weight average ({state['decay']}, "
                                  f"{len(state['avg'])} tensors) does not fit this run's ({self.decay}, "
                                  f"{len(self.params)}); resume with the spec it was trained with")
        self.steps = int(state["steps"])
        for a, s in zip(self.avg, state["avg"]):
            a.copy_(s)
        for p, t in zip(self.params, state["trained"]):
            p.copy_(t)
