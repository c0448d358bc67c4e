"""The benchmark's reference: about 0.15 s of single-threaded CPU work per call."""

from __future__ import annotations

import numpy as np

ITERATIONS = 600_000


def iterated_logistic_map(x: list[float]) -> np.ndarray:
    values = [float(value) for value in x]
    for _ in range(ITERATIONS):
        values = [3.9 * value * (1.0 - value) for value in values]
    return np.asarray(values, dtype=np.float64)
