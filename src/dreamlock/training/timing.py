"""Where start-up time goes: named phases, summed, kept on the trainer (``Trainer.startup``) and
printed by ``benchmarks/train_speed.py``."""

from __future__ import annotations

import time
from contextlib import contextmanager


class Phases:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
