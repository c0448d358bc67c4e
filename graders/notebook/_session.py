"""Stage 1 seen from outside: the grading process's side of a notebook run.

The runner shares its process with student code, which can cancel any thread, block any signal and
write to any descriptor there, so this side keeps every time limit itself and trusts no line:
the cells get `notebook_seconds` from the runner's ready line (sent before any student code), then
the run is killed; each check gets its own `seconds` from the moment its result pipe is handed
over. A check's result is read from that pipe only (it did not exist while the cells ran), must be
exactly one well-formed record, and anything else makes that check `invalid`, never the answer.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from graders.notebook._wire import RecordCutShort, encode_check_request, read_record, strict_json
from graders.sandbox import PipeRead, SandboxChannel

# After a check's time limit: the fork and writing the record of a call that returned in time.
CHECK_GRACE_SECONDS = 0.5
# What any text from the sandbox may keep (characters): a line of feedback, not a log.
MAX_MESSAGE_CHARS = 600
# What a parser's complaint about a record may add to "its result could not be read (...)".
MAX_REASON_CHARS = 200
# Cell numbers above this are not a notebook's (a forged progress line); they are not counted.
MAX_CELL_NUMBER = 1_000_000


@dataclass(frozen=True, slots=True)
class CheckResult:
    # "ok" (payload holds the .npy bytes), "error", "timeout" or "invalid" (unreadable result).
    status: str
    message: str = ""
    payload: bytes = b""
    # As in the record (`_wire.Record`): None for one .npy array, else the .npz payload's layout.
    layout: Any = None
    # Arguments the call changed in place, as the runner saw them (feedback; names only).
    mutated: tuple[str, ...] = ()


@dataclass
class RunReport:
    """What the grading process saw of one run. Only `ready`, the timings and `checks` framing are
    its own observations; cell events come from the student's process and are feedback only."""

    ready: dict[str, float] | None = None
    cell_count: int | None = None
    cells_ran: int = 0
    cell_error: tuple[int, str] | None = None
    running_cell: int | None = None
    cells_finished: bool = False
    cells_timed_out: bool = False
    # From the ready line to the end of the cells (or to the kill at their time limit).
    cells_seconds: float | None = None
    checks: dict[str, CheckResult] = field(default_factory=dict)
    unreadable_lines: int = 0


def clean_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Text from the sandbox made storable and printable: no NULs, control characters (but newline
    and tab) or lone surrogates, at most `limit` characters."""
    kept = (c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs"))
    return "".join(kept)[:limit]


def converse(
    report: RunReport, channel: SandboxChannel, entries: list[dict[str, Any]], cell_seconds: float
) -> None:
    """Drive one run: wait for it to be ready, give the cells their time, then ask for each check."""
    if not _wait_until_ready(report, channel):
        return
    began = time.monotonic()
    while not report.cells_finished:
        line = channel.read_line(began + cell_seconds)
        if line is None:
            if not (channel.ended or channel.overflowed or channel.past_deadline()):
                report.cells_timed_out = True
                channel.stop()
            report.cells_seconds = round(time.monotonic() - began, 3)
            return
        _take_cell_event(report, line)
    report.cells_seconds = round(time.monotonic() - began, 3)
    for index, entry in enumerate(entries):
        read_end = channel.send_pipe(encode_check_request(index))
        if read_end is None:
            return
        began = time.monotonic()
        read = channel.read_pipe(read_end, began + entry["seconds"] + CHECK_GRACE_SECONDS, entry["max_bytes"])
        report.checks[entry["id"]] = read_check_result(read, entry["seconds"])
        if channel.past_deadline():
            return


def _wait_until_ready(report: RunReport, channel: SandboxChannel) -> bool:
    line = channel.read_line(channel.deadline)
    if line is None:
        return False
    try:
        event = strict_json(line)
        seconds, waited = float(event["seconds"]), float(event["waited"])
    except (ValueError, KeyError, TypeError):
        return False  # no student code ran yet: the runner itself failed
    if event.get("event") != "ready":
        return False
    report.ready = {"seconds": round(seconds, 3), "waited": round(waited, 3)}
    return True


def _take_cell_event(report: RunReport, line: bytes) -> None:
    """One progress line; later lines never overwrite what an earlier one said."""
    event: dict[str, Any] = {}
    try:
        parsed = strict_json(line)
        if isinstance(parsed, dict):
            event = parsed
    except ValueError:
        pass
    kind, index = event.get("event"), event.get("index")
    if kind == "cells" and report.cell_count is None and _small_int(event.get("count")):
        report.cell_count = event["count"]
    elif kind == "cell_started" and _small_int(index):
        report.running_cell = index
    elif kind == "cell" and isinstance(index, int) and _small_int(index):
        report.cells_ran += 1
        if event.get("status") != "ok" and report.cell_error is None:
            report.cell_error = (index, clean_text(str(event.get("error", "an error"))))
    elif kind == "cells_done":
        report.cells_finished = True
    elif line.strip():
        report.unreadable_lines += 1


def _small_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_CELL_NUMBER


def read_check_result(read: PipeRead, seconds: float) -> CheckResult:
    """The one record a check's pipe must hold, read strictly."""
    timeout = CheckResult("timeout", f"did not return within {seconds:g} s")
    if read.overflowed:
        return CheckResult("invalid", "its result could not be read (larger than allowed)")
    if not read.ended:
        return timeout
    try:
        record = read_record(read.data)
    except RecordCutShort:
        if read.seconds >= seconds:
            return timeout  # killed at its limit, maybe mid-write
        if not read.data:
            return CheckResult("error", "the call ended the process without a result")
        return CheckResult("invalid", "its result could not be read (cut short)")
    except ValueError as error:
        reason = clean_text(str(error), MAX_REASON_CHARS)
        return CheckResult("invalid", f"its result could not be read ({reason})")
    mutated = tuple(clean_text(name, MAX_REASON_CHARS) for name in record.mutated)
    if record.status == "ok":
        return CheckResult("ok", payload=record.payload, layout=record.layout, mutated=mutated)
    return CheckResult("error", clean_text(record.error), mutated=mutated)
