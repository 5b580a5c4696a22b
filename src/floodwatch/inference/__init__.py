"""Inference back-ends behind one Predictor interface.

The names below load on first use (PEP 562), so `floodwatch.inference.tiling` and the other light modules
can be imported without torch (the CLI, `monitoring`)."""
from __future__ import annotations

from typing import Any

__all__ = ["Predictor", "TorchPredictor", "load_predictor", "predict_samples", "water_probability"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
