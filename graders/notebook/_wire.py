"""The wire format between the notebook runner (inside the sandbox) and the grading process.

Three kinds of message: progress lines from the runner on the control socket (one JSON object per
line); a check request from the grading process (JSON, sent with the write end of the check's own
pipe); and, on that pipe, ONE result record: a 4-byte big-endian header length, a JSON header, then
`payload_bytes` bytes (the `.npy` array of an `ok` result, nothing for an `error`).

A result that is not one tensor (a tuple, a list or a dict of them: `(dx, dW, db)`, a module's
parameter gradients by name) carries a `layout` in its header and an uncompressed `.npz` archive
as its payload, one member per leaf. A layout is a leaf (the member's name, a string) or
`{"tuple": [layout, ...]}`, `{"list": [layout, ...]}`, `{"dict": [[key, layout], ...]}`; it is at
most MAX_LAYOUT_DEPTH deep and has at most MAX_LAYOUT_PARTS leaves. A header may also name the
arguments the call changed in place (`mutated`), which would corrupt the checks after it.

Standard library only: the runner cannot import `graders` (it is not mounted in the sandbox), so
the grader ships this file into the run's input directory and the runner loads it from there
(see `_runner.load_wire`). One writer and one strict reader, here, keep the two sides in step.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Any

# The length of a record's JSON header, in front of it.
HEADER_LENGTH = struct.Struct(">I")
# A real header is under 1 KB (a status and an error message of at most a few hundred chars);
# a longer one is not read at all, whatever it holds.
MAX_HEADER_BYTES = 64 * 1024
HEADER_KEYS = frozenset({"status", "error", "payload_bytes", "layout", "mutated"})
# A structured result's bounds: a backward pass returns 3 to 10 parts, a module's gradients a few
# dozen; nesting beyond a dict of tuples is not a shape homework asks for.
MAX_LAYOUT_DEPTH = 4
MAX_LAYOUT_PARTS = 256
# A dict key or an argument name: an identifier, or a parameter path such as `layers.0.weight`.
MAX_NAME_CHARS = 128
# A check request is `{"check": <index>}`: a few bytes; the runner reads at most this much of one.
MAX_REQUEST_BYTES = 4096


class RecordError(ValueError):
    """The bytes are not one well-formed record; the message says what is wrong (for feedback)."""


class RecordCutShort(RecordError):
    """The bytes end before the length prefix or the header does (nothing, or a write cut off)."""


@dataclass(frozen=True, slots=True)
class Record:
    # "ok" (payload holds the .npy bytes) or "error" (the message is in `error`, no payload).
    status: str
    error: str = ""
    payload: bytes = b""
    # None: the payload is one .npy array; else the structure of the .npz payload (see above).
    layout: Any = None
    # The names of the arguments the call modified in place.
    mutated: tuple[str, ...] = ()


def encode_line(event: dict[str, Any]) -> bytes:
    """One progress line; the leading newline ends any partial line student code left."""
    return b"\n" + json.dumps(event, allow_nan=False).encode() + b"\n"


def encode_check_request(index: int) -> bytes:
    return json.dumps({"check": index}).encode()


def read_check_request(message: bytes) -> int:
    """The index of the check asked for; raises ValueError, KeyError or TypeError if there is none."""
    index = json.loads(message)["check"]
    if not isinstance(index, int):
        raise TypeError("a check index is a whole number")
    return index


def encode_record(record: Record) -> bytes:
    header: dict[str, Any] = {"status": record.status, "payload_bytes": len(record.payload)}
    if record.status == "error":
        header["error"] = record.error
    if record.layout is not None:
        header["layout"] = record.layout
    if record.mutated:
        header["mutated"] = list(record.mutated)
    encoded = json.dumps(header, allow_nan=False).encode()
    return HEADER_LENGTH.pack(len(encoded)) + encoded + record.payload


def write_record(fd: int, record: Record) -> None:
    """The one writer of records: all of it, however the pipe splits the writes."""
    view = memoryview(encode_record(record))
    while view:
        view = view[os.write(fd, view) :]


def strict_json(data: bytes) -> Any:
    """JSON without NaN, Infinity or numbers that overflow to them; raises ValueError."""

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("a number out of range")
        return value

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a number JSON allows")

    try:
        return json.loads(data, parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_record(data: bytes) -> Record:
    """Exactly one record, read strictly: raises RecordCutShort, or ValueError saying what is wrong."""
    prefix = HEADER_LENGTH.size
    if len(data) < prefix:
        raise RecordCutShort("cut short")
    (length,) = HEADER_LENGTH.unpack_from(data)
    if len(data) < prefix + length:
        raise RecordCutShort("cut short")
    header = strict_json(data[prefix : prefix + length]) if length <= MAX_HEADER_BYTES else None
    payload = data[prefix + length :]
    if not isinstance(header, dict) or set(header) - HEADER_KEYS:
        raise RecordError("not a result header")
    if header.get("payload_bytes") != len(payload):
        raise RecordError("not exactly one record")
    mutated = _names(header.get("mutated", []))
    if header.get("status") == "ok":
        layout = header.get("layout")
        if layout is not None:
            layout_leaves(layout)
        return Record("ok", payload=payload, layout=layout, mutated=mutated)
    if header.get("status") == "error" and not payload and isinstance(header.get("error"), str):
        return Record("error", error=header["error"], mutated=mutated)
    raise RecordError("an unknown status")


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LAYOUT_PARTS:
        raise RecordError("`mutated` is not a list of names")
    if not all(isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS for name in value):
        raise RecordError("`mutated` is not a list of names")
    return tuple(value)


def layout_leaves(layout: Any) -> list[str]:
    """The member names of a layout's leaves, in order; raises RecordError if it is not a layout
    within the bounds, or names a member twice."""
    leaves: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_LAYOUT_DEPTH:
            raise RecordError(f"the result is nested more than {MAX_LAYOUT_DEPTH} levels")
        if isinstance(node, str):
            if not 0 < len(node) <= MAX_NAME_CHARS:
                raise RecordError("a part has no name or too long a name")
            leaves.append(node)
            if len(leaves) > MAX_LAYOUT_PARTS:
                raise RecordError(f"the result has more than {MAX_LAYOUT_PARTS} parts")
            return
        if not isinstance(node, dict) or len(node) != 1:
            raise RecordError("not a result layout")
        ((kind, children),) = node.items()
        if kind in ("tuple", "list") and isinstance(children, list):
            for child in children:
                walk(child, depth + 1)
        elif kind == "dict" and isinstance(children, list):
            keys = set()
            for pair in children:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                    raise RecordError("not a result layout")
                if not 0 < len(pair[0]) <= MAX_NAME_CHARS or pair[0] in keys:
                    raise RecordError("a dict part has no key, too long a key or a repeated key")
                keys.add(pair[0])
                walk(pair[1], depth + 1)
        else:
            raise RecordError("not a result layout")

    walk(layout, 0)
    if len(set(leaves)) != len(leaves):
        raise RecordError("a part is named twice")
    return leaves
