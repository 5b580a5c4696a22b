"""Inference back-ends behind one Predictor interface, and the calls a notebook maps chips with.

    load_predictor(model=None)          a model reference (file, registered name, URL#sha256=..., None: the
                                        default model) -> a Predictor; what the commands' -m means
    predict_array(image, predictor)     (bands, H, W) array in dB -> (H, W) water probability, checked as infer
                                        checks a chip file (axis order, pixel type, linear power, 8-bit, VV/VH)
    read_chip(path) / predict_samples   a chip file -> Sample; Samples -> probabilities
    infer_chips(predictor, inputs, out_dir)   what `floodwatch infer` writes: masks, probabilities, summary.json

Whole scenes (GeoTIFF COGs, km², GeoJSON): `floodwatch.mapping.map_scene`. A walk-through: docs/python_api.md.

The names below load on first use (PEP 562), so `floodwatch.inference.tiling` and the other light modules
can be imported without torch (the CLI, `monitoring`)."""
from __future__ import annotations

from typing import Any

_HOMES = {"Predictor": "predictor", "TorchPredictor": "predictor", "load_predictor": "predictor",
          "predict_samples": "predictor", "water_probability": "predictor", "predict_array": "arrays",
          "infer_chips": "chips", "read_chip": "chips"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))  # tab completion in a notebook lists the lazy names too
