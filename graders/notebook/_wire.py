"""The wire format between the notebook runner (inside the sandbox) and the grading process.

Three kinds of message: progress lines from the runner on the control socket (one JSON object per
line); a check request from the grading process (JSON, sent with the write end of the check's own
pipe); and, on that pipe, ONE result record: a 4-byte big-endian header length, a JSON header, then
`payload_bytes` bytes (the `.npy` array of an `ok` result, nothing for an `error`).

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
HEADER_KEYS = frozenset({"status", "error", "payload_bytes"})
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
    if header.get("status") == "ok":
        return Record("ok", payload=payload)
    if header.get("status") == "error" and not payload and isinstance(header.get("error"), str):
        return Record("error", error=header["error"])
    raise RecordError("an unknown status")
