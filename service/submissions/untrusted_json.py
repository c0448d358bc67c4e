"""JSON from students, read strictly: what a grader, PostgreSQL or a terminal cannot take is refused
here, at the request, instead of failing later as a 500 or a broken grade.

Python's `json` accepts the constants NaN and Infinity, turns `1e999` into inf, and decodes
`\\u0000` and lone surrogates into strings that PostgreSQL's JSONB and text (and UTF-8) cannot hold.
Its decoder recurses once per nesting level, so the depth is bounded before it runs.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from graders import json_nesting_depth

# Answers are {"answers": {question: {"value": tensor}}}: three levels plus a tensor's dimensions
# (at most 8); anything deeper is not an answer.
MAX_ANSWER_DEPTH = 16

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class UnacceptableJSON(ValueError):
    """The document is JSON (or nearly) but holds something we refuse; the message says what."""


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL cannot store this text (a NUL, or a lone surrogate that is not UTF-8), or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "holds a NUL character" if found.group() == "\x00" else "holds a lone UTF-16 surrogate"


def has_control_characters(text: str) -> bool:
    """For names shown to staff in terminals and tables: no control characters, no surrogates."""
    return _CONTROL.search(text) is not None


def load_strict(document: bytes | str, max_depth: int) -> Any:
    """Parse JSON with finite numbers only, storable strings only and at most `max_depth` levels.

    Raises UnacceptableJSON (what is wrong) or ValueError (not JSON at all).
    """
    raw = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
    # No deeper than it has opening brackets: most answers are measured by this count alone.
    if raw.count(b"[") + raw.count(b"{") > max_depth and (depth := json_nesting_depth(raw)) > max_depth:
        raise UnacceptableJSON(f"nested {depth} levels deep; at most {max_depth} are accepted")
    value = json.loads(
        document, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_float_sized_int
    )
    if _may_hold_unstorable_text(raw):
        _check_strings(value)
    return value


def _may_hold_unstorable_text(raw: bytes) -> bool:
    """In UTF-8, a decoded string holds a NUL or a lone surrogate only through a \\u escape (the
    decoder refuses raw control characters) or a surrogate's own bytes (0xED 0xA0-0xBF, let through
    by its surrogatepass): a document with neither needs no walk over its strings. The decoder also
    reads UTF-16 and UTF-32, whose bytes say nothing this simply: those are always walked."""
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return True
    return b"\\u" in raw or b"\xed" in raw


def _refuse_constant(name: str) -> Any:
    raise UnacceptableJSON(f"{name} is not a finite number; only finite numbers are accepted")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnacceptableJSON(f"{text[:32]} is not a finite number (it overflows a float)")
    return value


def _float_sized_int(text: str) -> int:
    # Graders read numbers as floats: an integer past the largest float would become inf there.
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise UnacceptableJSON(f"{text[:32]}... is not a finite number (it overflows a float)")
    return value


def _check_strings(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and (problem := unstorable_text(item)) is not None:
            raise UnacceptableJSON(f"a string {problem}, which cannot be stored: {item[:40]!r}")
