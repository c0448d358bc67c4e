"""hw5 reference implementations: the instructor's code, loaded by the grading service."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def hard_attention(q: Array, keys: Array, values: Array) -> Array:
    scores = np.asarray(keys, dtype=np.float64) @ np.asarray(q, dtype=np.float64)
    return np.asarray(values, dtype=np.float64)[int(np.argmax(scores))]


def softmax_attention(q: Array, keys: Array, values: Array) -> Array:
    scores = np.asarray(keys, dtype=np.float64) @ np.asarray(q, dtype=np.float64)
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    return weights @ np.asarray(values, dtype=np.float64)


def attention_variant(rng: np.random.Generator) -> dict[str, list[list[int]] | list[int]]:
    """Small-integer inputs for q3_3, redrawn until the argmax is unique."""
    while True:
        q = rng.integers(-3, 4, size=2)
        keys = rng.integers(-3, 4, size=(4, 2))
        values = rng.integers(0, 10, size=(4, 3))
        scores = keys @ q
        if np.count_nonzero(scores == scores.max()) == 1:
            return {"q": q.tolist(), "keys": keys.tolist(), "values": values.tolist()}
