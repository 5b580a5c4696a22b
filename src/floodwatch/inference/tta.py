"""Test-time augmentation: predict on flipped/rotated copies of a batch, undo each on the result, average.

Flips and quarter turns move pixels without resampling, so undoing them is exact: a model that is itself
equivariant to them gets exactly its own prediction back, any other gets the mean over the views.

    from floodwatch.inference import load_predictor
    from floodwatch.inference.tta import TTAPredictor
    predictor = TTAPredictor(load_predictor("best.pt"), ("identity", "hflip", "vflip", "rot90"))
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import FloodwatchError, InvalidArgumentError

_Op = Callable[[np.ndarray], np.ndarray]
# name -> (forward, inverse), both on the last two axes (H, W), so they fit (N,C,H,W) inputs and (N,H,W) outputs
TRANSFORMS: dict[str, tuple[_Op, _Op]] = {
    "identity": (lambda x: x, lambda x: x),
    "hflip": (lambda x: np.flip(x, -1), lambda x: np.flip(x, -1)),
    "vflip": (lambda x: np.flip(x, -2), lambda x: np.flip(x, -2)),
    "rot90": (lambda x: np.rot90(x, 1, axes=(-2, -1)), lambda x: np.rot90(x, -1, axes=(-2, -1))),
    "rot180": (lambda x: np.rot90(x, 2, axes=(-2, -1)), lambda x: np.rot90(x, 2, axes=(-2, -1))),
    "rot270": (lambda x: np.rot90(x, 3, axes=(-2, -1)), lambda x: np.rot90(x, 1, axes=(-2, -1))),
    "transpose": (lambda x: np.swapaxes(x, -2, -1), lambda x: np.swapaxes(x, -2, -1)),
}
DEFAULT_TTA = ("identity", "hflip", "vflip", "rot90")
#: all eight symmetries of the square
D4 = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "transverse")
TRANSFORMS["transverse"] = (lambda x: np.rot90(np.swapaxes(x, -2, -1), 2, axes=(-2, -1)),
                            lambda x: np.rot90(np.swapaxes(x, -2, -1), 2, axes=(-2, -1)))


def parse_transforms(spec: str | Sequence[str] | bool | None) -> tuple[str, ...]:
    """'hflip,vflip' / a list / True (DEFAULT_TTA) / 'd4' (all eight) -> validated transform names."""
    if spec is True:
        return DEFAULT_TTA
    if not spec:
        return ()
    if isinstance(spec, str):
        spec = D4 if spec.strip().lower() == "d4" else [s.strip() for s in spec.split(",") if s.strip()]
    if not isinstance(spec, (list, tuple)) or not all(isinstance(s, str) for s in spec):
        raise InvalidArgumentError(f"tta: expected True, 'd4' or transform names ('hflip,vflip' or a list), "
                                   f"got {spec!r}")
    names = tuple(s.lower() for s in spec)
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise InvalidArgumentError(f"tta: unknown transform(s) {', '.join(unknown)} (known: {', '.join(TRANSFORMS)}, "
                                   "d4)")
    if not names:
        raise InvalidArgumentError("tta: no transforms given")
    return names


class TTAPredictor:
    """A Predictor averaging `base` over transformed views of each batch (probabilities, not masks)."""

    def __init__(self, base: Any, transforms: str | Sequence[str] = DEFAULT_TTA):
        self.base = base
        self.transforms = parse_transforms(transforms)
        self.preprocessing = base.preprocessing

    @property
    def meta(self) -> dict:
        return getattr(self.base, "meta", None) or {}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        total = None
        for name in self.transforms:
            forward, inverse = TRANSFORMS[name]
            view = np.ascontiguousarray(forward(batch))
            prob = inverse(np.asarray(self.base.predict(view), np.float64))
            if prob.shape != batch.shape[:1] + batch.shape[2:]:
                raise FloodwatchError(f"TTA '{name}': predictor returned shape {prob.shape} for input {view.shape}")
            total = prob if total is None else total + prob
        return (total / len(self.transforms)).astype(np.float32)

    def __repr__(self) -> str:
        return f"TTAPredictor({self.base!r}, {list(self.transforms)})"

    def settings(self) -> dict[str, Any]:  # base.predictor_settings
        return {"tta": list(self.transforms)}
