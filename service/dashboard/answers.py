"""What the submission view shows of each question: the answer as the student sent it (text, to be
escaped by the template), the formula as the grader read it (typeset), the notebook's run, and the
result. Built from the services' views; student text is never marked safe here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from service.dashboard.mathml import typeset
from service.submissions.schemas import QuestionResultView, ResultRevisionView

# An answer or a notebook's output is shown whole up to this size; the rest is cut with a note
# (the JSON API and results.json have everything).
MAX_SHOWN_CHARS = 50_000
MAX_CHECK_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class NotebookRun:
    cells: str
    cell_error: str | None
    output: str
    checks: list[tuple[str, str]]
    limit: str | None


@dataclass(frozen=True, slots=True)
class QuestionPanel:
    key: str
    # How the answer came: text, expression, choices, value, file, other (JSON), none.
    shape: str
    answer: str
    expression_format: str | None = None
    read_as: str | None = None
    read_as_latex: str | None = None
    formula: Markup | None = None
    result: QuestionResultView | None = None
    # The automatic result under a person's grade (their grade replaces it in `result`).
    automatic: ResultRevisionView | None = None
    notebook: NotebookRun | None = None


def _natural(key: str) -> list[tuple[int, str]]:
    """q2_10 after q2_9: numbers compare as numbers."""
    return [(int(part), "") if part.isdigit() else (0, part) for part in re.split(r"(\d+)", key)]


def _cut(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters not shown)"


def _json(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    return _cut(json.dumps(value, ensure_ascii=False, default=str), limit)


def _answer(raw: object) -> tuple[str, str, str | None]:
    """(shape, text shown, expression format) of an answer as sent."""
    if raw is None:
        return "none", "", None
    if isinstance(raw, Mapping):
        if isinstance(raw.get("text"), str):
            return "text", _cut(raw["text"]), None
        if isinstance(raw.get("expression"), str):
            form = raw.get("format")
            return "expression", _cut(raw["expression"]), form if isinstance(form, str) else None
        if isinstance(raw.get("choices"), list):
            return "choices", "Options " + ", ".join(str(choice) for choice in raw["choices"][:50]), None
        if "value" in raw:
            return "value", _json(raw["value"]), None
        if isinstance(raw.get("name"), str) and isinstance(raw.get("sha256"), str):
            size = raw.get("size")
            shown = f"{raw['name']} ({size:,} bytes" if isinstance(size, int) else f"{raw['name']} ("
            return "file", f"{shown}, SHA-256 {raw['sha256'][:64]})", None
    return "other", _json(raw), None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _notebook(details: Mapping[str, Any]) -> NotebookRun | None:
    sandbox = details.get("sandbox")
    cells = details.get("cells")
    if not isinstance(sandbox, Mapping) and not isinstance(cells, Mapping):
        return None
    sandbox = sandbox if isinstance(sandbox, Mapping) else {}
    cells = cells if isinstance(cells, Mapping) else {}
    ran, count = cells.get("ran"), cells.get("count")
    summary = f"{ran} of {count} cells ran" if isinstance(ran, int) and isinstance(count, int) else ""
    error = cells.get("error")
    cell_error = None
    if isinstance(error, Mapping):
        cell_error = f"Cell {error.get('cell')} raised {_text(error.get('error')) or 'an error'}"
    checks = details.get("checks")
    listed = (
        [(str(name), _json(outcome, MAX_CHECK_CHARS)) for name, outcome in list(checks.items())[:50]]
        if isinstance(checks, Mapping)
        else []
    )
    return NotebookRun(
        cells=summary,
        cell_error=_cut(cell_error, MAX_CHECK_CHARS) if cell_error else None,
        output=_cut(_text(sandbox.get("output_tail")) or ""),
        checks=listed,
        limit=_text(sandbox.get("limit")),
    )


def question_panels(
    answers: Mapping[str, Any] | None,
    results: Mapping[str, QuestionResultView],
    revisions: list[ResultRevisionView],
) -> list[QuestionPanel]:
    """One panel per question answered or graded, in the questions' natural order."""
    automatic = {revision.question: revision for revision in revisions if revision.current}
    panels = []
    for key in sorted(set(answers or {}) | set(results), key=_natural):
        shape, shown, expression_format = _answer((answers or {}).get(key))
        result = results.get(key)
        details: Mapping[str, Any] = (result.details if result is not None else None) or {}
        latex = _text(details.get("read_as_latex"))
        panels.append(
            QuestionPanel(
                key=key,
                shape=shape,
                answer=shown,
                expression_format=expression_format,
                read_as=_text(details.get("read_as")),
                read_as_latex=latex,
                formula=None if latex is None else typeset(latex),
                result=result,
                automatic=automatic.get(key) if result is not None and result.person_grade else None,
                notebook=_notebook(details),
            )
        )
    return panels
