"""Inference back-ends behind one Predictor interface."""
from .predictor import Predictor, TorchPredictor, load_predictor, water_probability

__all__ = ["Predictor", "TorchPredictor", "load_predictor", "water_probability"]
