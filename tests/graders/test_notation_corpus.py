"""The notation corpus graded through the public API, as the service grades a submission.

One test per entry, so a run lists every wrong verdict at once; each failure's message is one
line: the entry, how it was read, the verdict, the feedback. A correct entry must score 1.0. A
wrong entry must be graded (incorrect or partial, never invalid or correct) and each of its listed
mistakes named: a Diagnosis value among the result's diagnoses, any other string in its feedback.
"""

from __future__ import annotations

from collections import Counter

import pytest

from graders import GradeResult, Verdict, get_grader
from graders.expression import Diagnosis
from tests.graders.notation_corpus import (
    CORPUS,
    HW5_QUESTIONS,
    LAYERS_QUESTIONS,
    Written,
    material,
    material_name,
)

GRADER = get_grader("expression")
DIAGNOSES = {diagnosis.value for diagnosis in Diagnosis}
MIN_CORRECT_HW5 = 150
MIN_CORRECT_PER_LAYERS_QUESTION = 6
MIN_WRONG = 30


def grade(entry: Written) -> GradeResult:
    configs, context = material(material_name(entry.question))
    raw: dict[str, str] = {"expression": entry.answer}
    if entry.format is not None:
        raw["format"] = entry.format
    # The service's path: the raw answer validated by parse_answer, then graded.
    answer = GRADER.parse_answer(raw)
    return GRADER.grade(configs[entry.question], answer, context)


def named_diagnoses(result: GradeResult) -> set[str]:
    """The diagnoses a result names: `diagnosis` (one, or a list) and `diagnoses` (every mistake)."""
    named: set[str] = set()
    for key in ("diagnosis", "diagnoses"):
        value = result.details.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                named.add(item)
            elif isinstance(item, dict) and isinstance(item.get("diagnosis"), str):
                named.add(str(item["diagnosis"]))
    return named


def missing_mistakes(entry: Written, result: GradeResult) -> list[str]:
    diagnoses = named_diagnoses(result)
    return [
        mistake
        for mistake in entry.mistakes
        if (mistake not in diagnoses if mistake in DIAGNOSES else mistake not in result.feedback)
    ]


def entry_id(entry: Written) -> str:
    kind = "ok" if entry.correct else "wrong-" + ("+".join(entry.mistakes) or "unnamed")
    position = CORPUS.index(entry)
    return f"{position:03d}-{entry.question}-{kind}"


def describe(entry: Written, result: GradeResult) -> str:
    read_as = result.details.get("read_as")
    return (
        f"{entry.answer!r} (format {entry.format}, {entry.source}) was read as {read_as!r}: "
        f"{result.verdict.value} {result.fraction:g}, diagnoses {sorted(named_diagnoses(result))}, "
        f"feedback {result.feedback!r}"
    )


@pytest.mark.parametrize("entry", CORPUS, ids=entry_id)
def test_every_corpus_entry_gets_the_right_verdict(entry: Written) -> None:
    result = grade(entry)
    if entry.correct:
        assert result.verdict is Verdict.CORRECT, describe(entry, result)
        assert result.fraction == 1.0, describe(entry, result)
        return
    assert result.verdict in (Verdict.INCORRECT, Verdict.PARTIAL), describe(entry, result)
    missing = missing_mistakes(entry, result)
    assert not missing, f"not named: {missing}; " + describe(entry, result)


def _spelling(entry: Written) -> tuple[str, str]:
    # Whitespace variants are one spelling.
    return entry.question, "".join(entry.answer.split())


def test_the_corpus_has_enough_distinct_spellings() -> None:
    correct_hw5 = {_spelling(entry) for entry in CORPUS if entry.correct and entry.question in HW5_QUESTIONS}
    assert len(correct_hw5) >= MIN_CORRECT_HW5
    per_question = Counter(question for question, _ in correct_hw5)
    assert set(per_question) == set(HW5_QUESTIONS)
    correct_layers = {
        _spelling(entry) for entry in CORPUS if entry.correct and entry.question in LAYERS_QUESTIONS
    }
    per_layers_question = Counter(question for question, _ in correct_layers)
    too_few = {
        q: per_layers_question[q]
        for q in LAYERS_QUESTIONS
        if per_layers_question[q] < MIN_CORRECT_PER_LAYERS_QUESTION
    }
    assert not too_few
    wrong = [entry for entry in CORPUS if not entry.correct]
    assert len(wrong) >= MIN_WRONG
    assert len({_spelling(entry) for entry in wrong}) == len(wrong)


def test_every_entry_names_a_known_question_and_its_source() -> None:
    questions = set(material("hw5")[0]) | set(material("layers")[0])
    for entry in CORPUS:
        assert entry.question in questions, entry
        assert entry.source, entry
        assert entry.format in (None, "text", "latex"), entry
        assert not (entry.correct and entry.mistakes), entry
    assert len(set(CORPUS)) == len(CORPUS)
    listed = {mistake for entry in CORPUS for mistake in entry.mistakes if mistake in DIAGNOSES}
    assert listed == DIAGNOSES  # every Diagnosis is exercised by some wrong entry
