"""Bounds on what a grade carries out of a grader.

Feedback and details quote student code and sandbox output, so they are hostile data: text is
stripped of what a database (NUL, lone surrogates) or a terminal (ANSI escapes, control and bidi
characters) cannot take; details become finite, shallow, small JSON. Whatever is cut is replaced by
a marker saying so, so that staff know the grade carried more than was kept.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

MAX_FEEDBACK_CHARS = 20_000
MAX_DETAILS_DEPTH = 32
# Of the details' UTF-8 JSON, approximately (each cut adds its short marker).
MAX_DETAILS_BYTES = 64 * 1024
MAX_KEY_CHARS = 200
# Room for an unknown object's repr in details (graders should not put any there).
MAX_REPR_CHARS = 1_000
CUT_KEY = "[cut]"
DEPTH_MARKER = f"[cut: nested deeper than {MAX_DETAILS_DEPTH} levels]"

# CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), and the other two-character escapes.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
# C0 controls but tab and newline, DEL, C1 controls, lone surrogates, bidi overrides and isolates.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def storable_text(text: str, max_chars: int) -> str:
    """The text without escapes and control characters (newlines and tabs stay), cut at max_chars."""
    # Almost every text is clean already: one search instead of two substitutions (it runs for
    # every answer graded, and for every string in its details). ESC and CR are in the class, so a
    # text it does not match holds no escape sequence and no line end to rewrite either.
    if len(text) <= max_chars and _UNSTORABLE.search(text) is None:
        return text
    # Cleaning only removes characters: a prefix this long is all the result can need.
    head = text[: 4 * max_chars + 64]
    cleaned = _UNSTORABLE.sub("", _ANSI_ESCAPE.sub("", head.replace("\r\n", "\n").replace("\r", "\n")))
    if len(cleaned) <= max_chars and len(head) == len(text):
        return cleaned
    kept = cleaned[:max_chars]
    return f"{kept} [cut: {len(text) - len(kept)} more characters]"


def storable_details(details: Mapping[Any, object]) -> dict[str, JsonValue]:
    """Details as JSON a database and a staff view can take: finite numbers (NaN and infinities
    become the strings "NaN", "Infinity", "-Infinity"), clean strings, at most MAX_DETAILS_DEPTH
    levels and about MAX_DETAILS_BYTES in all."""
    return _Bounded(MAX_DETAILS_BYTES).mapping(details, 1)


def storable_fraction(fraction: float) -> float:
    if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        raise ValueError(f"fraction must be a finite number in [0, 1], got {fraction}")
    return float(fraction)


class _Bounded:
    """One walk over a details tree with a byte budget: once it is spent, containers stop growing."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def value(self, value: object, depth: int) -> JsonValue:
        # Strings and floats first: the numbers ABCs below are slow to test against.
        if isinstance(value, str):
            text = storable_text(value, max(self.left, 64))
            self.left -= len(text.encode()) + 2
            return text
        if isinstance(value, float):
            self.left -= 24
            return _finite(value)
        if value is None or isinstance(value, bool):
            self.left -= 5
            return value
        if isinstance(value, numbers.Integral):
            self.left -= 20
            number = int(value)
            return number if -(2**63) <= number < 2**63 else "[cut: an integer out of range]"
        if isinstance(value, numbers.Real):
            self.left -= 24
            return _finite(float(value))
        if isinstance(value, Mapping | list | tuple):
            if depth >= MAX_DETAILS_DEPTH:
                self.left -= len(DEPTH_MARKER) + 2
                return DEPTH_MARKER
            if isinstance(value, Mapping):
                return self.mapping(value, depth + 1)
            return self.sequence(value, depth + 1)
        return self.value(_describe(value), depth)

    def mapping(self, value: Mapping[Any, object], depth: int) -> dict[str, JsonValue]:
        result: dict[str, JsonValue] = {}
        for index, (key, item) in enumerate(value.items()):
            if self.left <= 0:
                marker = f"{len(value) - index} more entries over the size limit of details"
                self.left -= len(marker) + 12
                result[CUT_KEY] = marker
                break
            name = storable_text(str(key), MAX_KEY_CHARS)
            self.left -= len(name.encode()) + 4
            result[name] = self.value(item, depth)
        return result

    def sequence(self, value: list[object] | tuple[object, ...], depth: int) -> list[JsonValue]:
        result: list[JsonValue] = []
        for index, item in enumerate(value):
            if self.left <= 0:
                marker = f"[cut: {len(value) - index} more items over the size limit of details]"
                self.left -= len(marker) + 4
                result.append(marker)
                break
            result.append(self.value(item, depth))
            self.left -= 2
        return result


def _finite(number: float) -> JsonValue:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _describe(value: object) -> str:
    try:
        return repr(value)[:MAX_REPR_CHARS]
    except Exception:
        return f"<{type(value).__name__}>"
