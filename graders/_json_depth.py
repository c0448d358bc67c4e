"""How deeply a JSON document nests, measured before it is parsed.

Python's JSON decoder (and nbformat's validator) recurses once per nesting level: a document of
thousands of nested brackets exhausts the stack. Untrusted JSON is measured with this first.
"""

from __future__ import annotations

import re

import numpy as np

_JSON_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets count +1 and closing ones -1 (0xFF read as int8).
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_nesting_depth(document: bytes) -> int:
    """How deeply arrays and objects nest, counted without parsing (brackets inside strings are
    text); linear in the size and never recursive."""
    brackets = _JSON_STRING.sub(b"", document).translate(None, _NOT_A_BRACKET)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_BRACKET_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max())
