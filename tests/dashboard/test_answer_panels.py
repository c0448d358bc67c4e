"""The submission view's pieces without a database: formulas typeset as MathML with nothing but
MathML let through, and each kind of answer and result made into what the page shows."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime

import pytest

from graders import Verdict
from service.dashboard.answers import MAX_SHOWN_CHARS, question_panels
from service.dashboard.mathml import MATHML, MAX_LATEX_CHARS, typeset
from service.submissions.schemas import QuestionResultView, ResultRevisionView


def test_a_reading_is_typeset_as_mathml() -> None:
    formula = typeset(r"\sum_{i=1}^{t} g_{h,i} \times \psi'\left(z_{i}\right) \times h_{t-1}")
    assert formula is not None
    root = ElementTree.fromstring(str(formula))  # noqa: S314 (our own output): well-formed, in MathML
    assert root.tag == f"{{{MATHML}}}math"
    assert root.find(f".//{{{MATHML}}}msubsup") is not None
    assert "\u2211" in str(formula)  # the summation sign itself, not an entity of ours
    assert "<mo>&lt;</mo>" in str(typeset("a < b"))


@pytest.mark.parametrize(
    "latex",
    [
        r"\text{<script>alert(1)</script>}",  # latex2mathml passes \text's content through as markup
        r"\text{<img src=x onerror=alert(1)>}",
        r"\href{javascript:alert(1)}{x}",
        r"\color{red}{x}",
        r'\mathrm{"onload=alert(1)}',
    ],
)
def test_nothing_but_presentation_mathml_gets_through(latex: str) -> None:
    formula = typeset(latex)
    if formula is None:
        return  # refused whole: the page shows the LaTeX as text
    shown = str(formula)
    for forbidden in ("<script", "<img", "href", "javascript", "onerror", "onload=", "mathcolor"):
        assert forbidden not in shown.replace("&lt;", "‹"), (latex, shown)
    ElementTree.fromstring(shown)  # noqa: S314 (our own output): still well-formed


def test_what_cannot_be_typeset_falls_back_to_text() -> None:
    assert typeset("") is None
    assert typeset(r"\style{x}") is None  # latex2mathml raises
    assert typeset("x" * (MAX_LATEX_CHARS + 1)) is None


def _result(details: dict[str, object], verdict: Verdict = Verdict.CORRECT) -> QuestionResultView:
    return QuestionResultView.model_validate(
        {"verdict": verdict, "score": 1.0, "max_score": 2.0, "feedback": "fb", "details": details}
    )


def test_each_kind_of_answer_is_shown_as_sent() -> None:
    revision = ResultRevisionView(
        question="q2_1",
        revision=1,
        current=True,
        verdict=Verdict.CORRECT,
        score=1.0,
        max_score=2.0,
        grader_version="1",
        job_attempt=1,
        graded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    panels = question_panels(
        {
            "q10": {"text": "tenth"},
            "q2_1": {"expression": "y - yhat", "format": "text"},
            "q1": {"choices": [2, 3]},
            "q3": {"value": [[1, 2], [3, 4]]},
            "q4": {"name": "hw.ipynb", "sha256": "ab" * 32, "size": 2048},
            "q5": {"surprise": ["<b>"]},
            "q6": {"text": "x" * (MAX_SHOWN_CHARS + 10)},
        },
        {
            "q2_1": _result({"read_as": "y - yhat", "read_as_latex": r"y - \hat{y}"}),
            "q7": _result({}, Verdict.INVALID),  # graded, not in the answers (a staff view of a file)
        },
        [revision],
    )
    by_key = {panel.key: panel for panel in panels}
    assert [panel.key for panel in panels] == ["q1", "q2_1", "q3", "q4", "q5", "q6", "q7", "q10"]
    assert (by_key["q1"].shape, by_key["q1"].answer) == ("choices", "Options 2, 3")
    expression = by_key["q2_1"]
    assert (expression.shape, expression.answer, expression.expression_format) == (
        "expression",
        "y - yhat",
        "text",
    )
    assert expression.formula is not None
    assert "<mover" in str(expression.formula)
    assert expression.automatic is None  # no person's grade: the result is the automatic one
    assert by_key["q3"].answer == "[[1, 2], [3, 4]]"
    assert by_key["q4"].answer == f"hw.ipynb (2,048 bytes, SHA-256 {'ab' * 32})"
    assert (by_key["q5"].shape, by_key["q5"].answer) == ("other", '{"surprise": ["<b>"]}')
    assert by_key["q6"].answer.endswith("(10 more characters not shown)")
    assert (by_key["q7"].shape, by_key["q7"].formula) == ("none", None)


def test_a_notebooks_run_is_summarised_from_its_details() -> None:
    details = {
        "cells": {"count": 5, "ran": 3, "error": {"cell": 3, "error": "NameError: name 'x'"}},
        "checks": {"attention": {"points": 0.0, "message": "shape (2,) != (3,)"}},
        "sandbox": {"output_tail": "Traceback ...\nNameError", "limit": None, "seconds": 1.2},
    }
    (panel,) = question_panels(
        {"q4": {"name": "a.ipynb", "sha256": "0" * 64, "size": 1}}, {"q4": _result(details)}, []
    )
    assert panel.notebook is not None
    assert panel.notebook.cells == "3 of 5 cells ran"
    assert panel.notebook.cell_error == "Cell 3 raised NameError: name 'x'"
    assert panel.notebook.output == "Traceback ...\nNameError"
    assert panel.notebook.checks == [("attention", '{"points": 0.0, "message": "shape (2,) != (3,)"}')]
    # Details of another shape (hostile or old rows) show what they can, never fail the page.
    (odd,) = question_panels({}, {"q4": _result({"cells": "many", "sandbox": {"output_tail": 7}})}, [])
    assert odd.notebook is not None
    assert (odd.notebook.cells, odd.notebook.output, odd.notebook.checks) == ("", "", [])
