"""Drawing the points an answer is checked at, from the instructor's reference function."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graders.expression.config import ExpressionConfig
from graders.expression.evaluate import PointBatch

MAX_REDRAWS = 20


def index_assignments(config: ExpressionConfig) -> list[dict[str, int]]:
    """Every admissible combination of the free indices, e.g. all (t, i) with 1 <= i <= t <= 3."""
    assignments: list[dict[str, int]] = [{}]
    for index in config.indices:
        grown: list[dict[str, int]] = []
        for assignment in assignments:
            high = assignment[index.high] if isinstance(index.high, str) else index.high
            grown.extend(assignment | {index.name: value} for value in range(index.low, high + 1))
        assignments = grown
    return assignments


def draw_points(config: ExpressionConfig, reference: Callable[..., Any]) -> PointBatch:
    """At least `config.points` points, each admissible index combination equally often.

    The reference returns (symbol values, expected value) for one point; a point whose expected
    value is not finite is drawn again.
    """
    assignments = index_assignments(config)
    repeats = math.ceil(config.points / len(assignments))
    rng = np.random.default_rng(config.seed)
    rows: list[tuple[dict[str, int], dict[str, Any], Any]] = []
    for _ in range(repeats):
        for assignment in assignments:
            for _attempt in range(MAX_REDRAWS):
                symbols, expected = reference(rng, dict(assignment))
                if np.all(np.isfinite(np.asarray(expected, dtype=np.float64))):
                    break
            else:
                raise ValueError(f"the reference is undefined at {assignment} after {MAX_REDRAWS} draws")
            rows.append((assignment, symbols, expected))
    size = len(rows)
    indices = {index.name: np.array([float(row[0][index.name]) for row in rows]) for index in config.indices}
    symbols = {}
    for declaration in config.symbols:
        try:
            stacked = [np.asarray(row[1][declaration.name], dtype=np.float64) for row in rows]
        except KeyError:
            raise ValueError(f"the reference gives no value for symbol {declaration.name!r}") from None
        symbols[declaration.name] = np.stack(stacked, axis=-1)
    expected = np.stack([np.asarray(row[2], dtype=np.float64) for row in rows], axis=-1)
    return PointBatch(size=size, indices=indices, symbols=symbols, expected=expected)
