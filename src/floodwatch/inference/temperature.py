"""Temperature scaling of any Predictor: p' = sigmoid(logit(p) / T), and the JSON file that holds T.

Fitting T on held-out data is an evaluation job (`evaluation.calibration.fit_temperature`, `evaluate
--calibrate`); applying a fitted T is part of prediction, so the wrapper lives here beside TTA and ensembles.
"""
from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InvalidArgumentError
from ..io import write_json

_EPS = 1e-7  # float32 softmax saturates at 1.0; keep logit() finite


def logit(prob: Any) -> np.ndarray:
    p = np.clip(np.asarray(prob, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(prob: Any, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T) as float32."""
    z = logit(prob) / float(temperature)
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # sigmoid without overflow


class TemperaturePredictor:
    """A Predictor whose probabilities are `base`'s with temperature T applied."""

    def __init__(self, base: Any, temperature: float):
        if isinstance(temperature, (str, os.PathLike)):  # a file `evaluate` saved: load_predictor reads it
            raise InvalidArgumentError(f"temperature: expected a number, got the path '{temperature}'; read a "
                                       "temperature file with load_temperature(path)")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
                np.isfinite(temperature) and temperature > 0):
            raise InvalidArgumentError(f"temperature: {temperature!r} must be a positive number")
        self.base, self.temperature = base, float(temperature)
        self.preprocessing = base.preprocessing

    @property
    def meta(self) -> dict:
        return getattr(self.base, "meta", None) or {}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return apply_temperature(self.base.predict(batch), self.temperature)

    def __repr__(self) -> str:
        return f"TemperaturePredictor({self.base!r}, T={self.temperature:.4g})"

    def settings(self) -> dict[str, Any]:  # base.predictor_settings
        return {"temperature": self.temperature}


def save_temperature(path: str | os.PathLike, temperature: float, **info: Any) -> Path:
    return write_json(path, {"temperature": float(temperature), **info})


def load_temperature(path: str | os.PathLike) -> float:
    """T from a JSON file written by save_temperature (or a bare number in the file)."""
    from ..io import read_text

    path = Path(path)
    try:
        obj = json.loads(read_text(path, error=DataError, what="temperature file"))
    except ValueError as exc:
        raise DataError(f"{path}: not a JSON temperature file ({exc})") from None
    if isinstance(obj, dict) and "temperature" not in obj:
        raise DataError(f"{path}: no 'temperature' key (keys: {', '.join(map(str, obj)) or 'none'})")
    t = obj.get("temperature") if isinstance(obj, dict) else obj
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t) or t <= 0:
        raise DataError(f"{path}: 'temperature' must be a positive number, got {t!r}")
    return float(t)
