"""Where a scene's seconds go: per-stage time, summed over the threads that run the stage.

Stages overlap in time (reading, predicting and writing run on three threads), so the stage seconds add
up to more than the wall time when the overlap works; their ratio to the wall time shows which stage
bounds the run.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

#: In pipeline order; `stats.json` lists them in this order.
STAGES = ("read", "preprocess", "predict", "blend", "write", "overviews", "cog", "vectorise", "stats")


class StageClock:
    def __init__(self) -> None:
        self.seconds = {s: 0.0 for s in STAGES}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._check(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds[name] += dt

    def add(self, seconds: dict[str, float]) -> None:
        """Stage seconds measured elsewhere (the COG helper process)."""
        with self._lock:
            for name, dt in seconds.items():
                self._check(name)
                self.seconds[name] += dt

    def _check(self, name: str) -> None:
        if name not in self.seconds:
            raise KeyError(f"unknown stage '{name}' (one of {', '.join(STAGES)})")

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.seconds.items()}
