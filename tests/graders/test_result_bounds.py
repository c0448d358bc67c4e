"""GradeResult normalises what leaves a grader: storable text, finite and bounded details."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from graders import GradeResult, Verdict
from graders._storable import DEPTH_MARKER, MAX_DETAILS_BYTES, MAX_DETAILS_DEPTH, MAX_FEEDBACK_CHARS

HOSTILE = "ok\x00 \x1b[31mred\x1b[0m \x1b]0;title\x07\x07\x08\x7f\x9b\u202e\ud800 tab\tnew\r\nline"


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


def test_feedback_loses_escapes_and_controls_but_keeps_newlines_and_tabs() -> None:
    result = GradeResult(Verdict.CORRECT, 1.0, HOSTILE)
    assert result.feedback == "ok red  tab\tnew\nline"


def test_strings_and_keys_in_details_are_cleaned_and_non_finite_numbers_encoded() -> None:
    details: dict[str, Any] = {
        "out\x00": HOSTILE,
        "numbers": [math.nan, math.inf, -math.inf, 1.5, 10**30],
        "nested": {"seconds": math.nan},
    }
    result = GradeResult.invalid("x", details)
    assert result.details == {
        "out": "ok red  tab\tnew\nline",
        "numbers": ["NaN", "Infinity", "-Infinity", 1.5, "[cut: an integer out of range]"],
        "nested": {"seconds": "NaN"},
    }
    json.dumps(result.details, allow_nan=False)  # strict JSON: what PostgreSQL's jsonb takes


def test_deep_details_are_cut_with_a_marker() -> None:
    deep: Any = "leaf"
    for _ in range(400):
        deep = [deep]
    result = GradeResult.invalid("x", {"error": {"cell": deep}})
    assert depth(result.details) == MAX_DETAILS_DEPTH
    assert DEPTH_MARKER in json.dumps(result.details)


def test_large_details_and_feedback_are_cut_with_a_marker() -> None:
    details = {f"key{index}": "x" * 1000 for index in range(500)}
    result = GradeResult.invalid("y" * (MAX_FEEDBACK_CHARS + 5000), details)
    size = len(json.dumps(result.details, ensure_ascii=False).encode())
    assert MAX_DETAILS_BYTES // 2 < size <= MAX_DETAILS_BYTES + 2048
    assert "more entries over the size limit" in result.details["[cut]"]  # type: ignore[operator]
    assert len(result.feedback) < MAX_FEEDBACK_CHARS + 100
    assert result.feedback.endswith("[cut: 5000 more characters]")


def test_a_shared_list_cannot_blow_up_the_walk() -> None:
    # 2**400 paths through one shared list: the depth bound and the byte budget stop the walk.
    shared: list[Any] = []
    for _ in range(400):
        shared = [shared, shared]
    result = GradeResult.invalid("x", {"tree": shared})
    assert result.details["tree"] is not shared  # a bounded copy (walking the original never ends)
    assert len(json.dumps(result.details).encode()) <= MAX_DETAILS_BYTES + 4096


@pytest.mark.parametrize("fraction", [math.nan, math.inf, -math.inf])
def test_a_non_finite_fraction_is_refused_not_scored(fraction: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        GradeResult.from_fraction(fraction, "")
    with pytest.raises(ValueError, match="finite"):
        GradeResult(Verdict.PARTIAL, fraction, "")
