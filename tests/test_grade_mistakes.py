"""What each grader kind's details say went wrong (service/grades/mistakes.py): table-driven, and
never an error on details of an unexpected shape (they are built from students' answers)."""

from __future__ import annotations

from typing import Any

import pytest

from graders import Verdict
from service.grades.mistakes import MAX_MESSAGE_CHARS, mistakes_in

WRONG = Verdict.INCORRECT

CASES: list[tuple[str, str, Verdict, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "expression: each named mistake with its note",
        "expression",
        Verdict.PARTIAL,
        {
            "diagnosis": "sign",
            "mistakes": [
                {"diagnosis": "sign", "message": "Check the sign of y (→ -y)"},
                {"diagnosis": "index", "message": "Check the index of h: h_t does not fit here (→ h_{t-1})"},
            ],
        },
        [
            ("sign", "Check the sign of y (→ -y)"),
            ("index", "Check the index of h: h_t does not fit here (→ h_{t-1})"),
        ],
    ),
    (
        "expression: a diagnosis without notes",
        "expression",
        WRONG,
        {"diagnosis": "transpose"},
        [("transpose", "transpose")],
    ),
    ("expression: nothing named", "expression", WRONG, {"diagnosis": None}, []),
    ("expression: a correct answer names nothing", "expression", Verdict.CORRECT, {"diagnosis": "sign"}, []),
    (
        "expression: odd shapes are skipped",
        "expression",
        WRONG,
        {"mistakes": ["sign", {"diagnosis": 3}, None]},
        [],
    ),
    ("tensor: the shape", "tensor", WRONG, {"stage": "shape"}, [("shape", "wrong shape")]),
    (
        "tensor: the values",
        "tensor",
        WRONG,
        {"stage": "values"},
        [("values", "values outside the tolerance")],
    ),
    (
        "notebook: each failed check",
        "notebook",
        Verdict.PARTIAL,
        {
            "checks": {
                "forward": {"status": "correct"},
                "backward": {"status": "values"},
                "train": {"status": "timeout"},
            }
        },
        [("values", "backward: values"), ("timeout", "train: timeout")],
    ),
    ("notebook: checks of another shape", "notebook", WRONG, {"checks": ["forward"]}, []),
    (
        "choice: the options picked",
        "choice",
        WRONG,
        {"picked": [1, 3], "correct": [2]},
        [("choice", "picked 1, 3")],
    ),
    ("choice: nothing picked", "choice", WRONG, {"picked": []}, [("choice", "picked nothing")]),
    ("manual: nothing to read", "manual", WRONG, {"anything": 1}, []),
    ("an unknown kind", "future", WRONG, {"diagnosis": "sign"}, []),
]


@pytest.mark.parametrize(("name", "kind", "verdict", "details", "expected"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_in_details(
    name: str, kind: str, verdict: Verdict, details: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert list(mistakes_in(kind, verdict, details)) == expected, name


def test_a_long_message_is_cut() -> None:
    details = {"mistakes": [{"diagnosis": "sign" * 40, "message": "x" * 10_000}]}
    ((diagnosis, message),) = mistakes_in("expression", WRONG, details)
    assert (len(diagnosis), len(message)) == (64, MAX_MESSAGE_CHARS)
