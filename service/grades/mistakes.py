"""What each grader kind's `details` say went wrong, as (diagnosis, message) pairs to count.

The graders write their diagnostics for one answer; a TA wants them across the class. The details
are data the grader built from a student's answer (graders/_storable.py bounds them), so every
field is read defensively: a missing or oddly typed field yields nothing, never an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graders import Verdict

# A message quotes the student's answer; the statistics show a bounded prefix.
MAX_MESSAGE_CHARS = 200

Mistake = tuple[str, str]


def mistakes_in(kind: str, verdict: Verdict, details: Mapping[str, Any]) -> Iterator[Mistake]:
    if verdict in (Verdict.CORRECT, Verdict.PENDING_MANUAL):
        return
    reader = _READERS.get(kind)
    if reader is not None:
        for diagnosis, message in reader(details):
            yield diagnosis[:64], message[:MAX_MESSAGE_CHARS]


def _expression(details: Mapping[str, Any]) -> Iterator[Mistake]:
    """The expression grader's named mistakes ("sign", "index", ...) with their margin notes; a
    diagnosis without notes counts under its own name."""
    named = details.get("mistakes")
    found = False
    if isinstance(named, list):
        for mistake in named:
            if isinstance(mistake, dict) and isinstance(mistake.get("diagnosis"), str):
                message = mistake.get("message")
                found = True
                yield mistake["diagnosis"], message if isinstance(message, str) else mistake["diagnosis"]
    diagnosis = details.get("diagnosis")
    if not found and isinstance(diagnosis, str):
        yield diagnosis, diagnosis


def _tensor(details: Mapping[str, Any]) -> Iterator[Mistake]:
    """The stage the tensor failed at: its shape, or its values beyond the tolerance."""
    stage = details.get("stage")
    if stage == "shape":
        yield "shape", "wrong shape"
    elif stage == "values":
        yield "values", "values outside the tolerance"


def _notebook(details: Mapping[str, Any]) -> Iterator[Mistake]:
    """Each failed check of a notebook, by check name and how it failed (shape, values, timeout ...)."""
    checks = details.get("checks")
    if not isinstance(checks, dict):
        return
    for name, check in checks.items():
        status = check.get("status") if isinstance(check, dict) else None
        if isinstance(status, str) and status != "correct":
            yield status, f"{name}: {status}"


def _choice(details: Mapping[str, Any]) -> Iterator[Mistake]:
    """The wrong set of options picked, so a popular distractor shows."""
    picked = details.get("picked")
    if isinstance(picked, list) and all(isinstance(option, int) for option in picked):
        yield "choice", "picked " + (", ".join(str(option) for option in picked) or "nothing")


_READERS = {"expression": _expression, "tensor": _tensor, "notebook": _notebook, "choice": _choice}
