"""Ensembles: the (weighted) mean of several models' water probabilities.

Every member must read its input the same way, because one pre-processed batch is fed to all of them.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from ..errors import CheckpointError, FloodwatchError, InvalidArgumentError


def _temporal(predictor: Any) -> str:
    meta = getattr(predictor, "meta", None) or {}
    return (meta.get("model_config") or {}).get("temporal") or getattr(predictor, "temporal", None) or "single"


def ensemble_weights(weights: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
    """The weights of an ensemble of `n` normalised to sum 1 (None: equal), or an InvalidArgumentError naming
    `weights` (as the keyword is named: the CLI reports it as its flag)."""
    if weights is None:
        return np.full(n, 1.0 / n)
    values = weights.ravel() if isinstance(weights, np.ndarray) else weights
    if not isinstance(weights, (list, tuple, np.ndarray)) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
        raise InvalidArgumentError(f"weights: expected a list of {n} numbers (one per model), got {weights!r}")
    w = np.asarray(weights, np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise InvalidArgumentError(f"weights: an ensemble of {n} needs {n} non-negative numbers with a positive "
                                   f"sum, got {list(np.atleast_1d(w))}")
    return w / w.sum()


class EnsemblePredictor:
    """A Predictor averaging `predictors` (weights: relative, default equal). `names` label errors."""

    def __init__(self, predictors: Sequence[Any], weights: Sequence[float] | None = None,
                 names: Sequence[str] | None = None):
        self.members = list(predictors)
        if not self.members:
            raise FloodwatchError("ensemble: no models given")
        self.names = [str(n) for n in names] if names is not None else [f"model {i + 1}" for i in
                                                                        range(len(self.members))]
        if len(self.names) != len(self.members):
            raise FloodwatchError(f"ensemble: {len(self.names)} names for {len(self.members)} models")
        self.weights = ensemble_weights(weights, len(self.members))
        self.preprocessing = self.members[0].preprocessing
        reference = self.preprocessing.to_dict()
        for name, member in zip(self.names[1:], self.members[1:]):
            if member.preprocessing.to_dict() != reference:
                raise CheckpointError(f"{name}: its preprocessing {member.preprocessing.to_dict()} differs from "
                                      f"{self.names[0]}'s {reference}; ensemble members must share it")
            if _temporal(member) != _temporal(self.members[0]):
                raise CheckpointError(f"{name}: {_temporal(member)} model cannot join the "
                                      f"{_temporal(self.members[0])} {self.names[0]} in an ensemble")

    @property
    def meta(self) -> dict:
        return getattr(self.members[0], "meta", None) or {}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        total = None
        for name, w, member in zip(self.names, self.weights, self.members):
            prob = np.asarray(member.predict(batch), np.float64)
            if total is not None and prob.shape != total.shape:
                raise FloodwatchError(f"{name}: returned shape {prob.shape}, the other members {total.shape}")
            total = w * prob if total is None else total + w * prob
        return total.astype(np.float32)

    def __repr__(self) -> str:
        return f"EnsemblePredictor({self.names}, weights={self.weights.round(3).tolist()})"

    def settings(self) -> dict[str, Any]:  # base.predictor_settings
        return {"weights": [round(float(w), 6) for w in self.weights]}
