"""Multiple choice: PrairieLearn's partial-credit modes on worked examples."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graders import GradingContext, Verdict, get_grader
from graders.choice import ChoiceConfig, ChoiceGrader, PartialCredit, choice_fraction

GRADER = ChoiceGrader()
# Five options, options 1, 2 and 3 correct.
KEY = frozenset({1, 2, 3})
N = 5


@pytest.mark.parametrize(
    ("picked", "off", "net_correct", "each_answer", "coverage"),
    [
        ({1, 2, 3}, 1.0, 1.0, 1.0, 1.0),
        ({1, 2}, 0.0, 2 / 3, 4 / 5, 2 / 3),  # one missed
        ({1, 2, 3, 4}, 0.0, 2 / 3, 4 / 5, 3 / 4),  # one extra wrong pick
        ({1, 4}, 0.0, 0.0, 2 / 5, (1 / 3) * (1 / 2)),  # right - wrong = 0
        ({4, 5}, 0.0, 0.0, 0.0, 0.0),  # only wrong picks: floored at 0
        ({1, 4, 5}, 0.0, 0.0, 1 / 5, (1 / 3) * (1 / 3)),  # net-correct negative, floored
        ({1}, 0.0, 1 / 3, 3 / 5, 1 / 3),
    ],
)
def test_partial_credit_modes(
    picked: set[int], off: float, net_correct: float, each_answer: float, coverage: float
) -> None:
    chosen = frozenset(picked)
    assert choice_fraction(chosen, KEY, N, PartialCredit.OFF) == pytest.approx(off)
    assert choice_fraction(chosen, KEY, N, PartialCredit.NET_CORRECT) == pytest.approx(net_correct)
    assert choice_fraction(chosen, KEY, N, PartialCredit.EACH_ANSWER) == pytest.approx(each_answer)
    assert choice_fraction(chosen, KEY, N, PartialCredit.COVERAGE) == pytest.approx(coverage)


def multi(mode: str) -> ChoiceConfig:
    return ChoiceConfig(
        options=["a", "b", "c", "d", "e"], correct=[1, 2, 3], multiple=True, partial_credit=mode
    )


def grade(config: ChoiceConfig, picks: list[int]) -> tuple[Verdict, float, str]:
    result = GRADER.grade_raw_answer(config, {"choices": picks}, GradingContext())
    return result.verdict, result.fraction, result.feedback


def test_verdicts_follow_the_fraction() -> None:
    assert grade(multi("net-correct"), [1, 2, 3]) == (Verdict.CORRECT, 1.0, "Correct.")
    verdict, fraction, feedback = grade(multi("net-correct"), [1, 2])
    assert (verdict, fraction) == (Verdict.PARTIAL, pytest.approx(2 / 3))
    assert "67%" in feedback
    assert grade(multi("net-correct"), [4])[:2] == (Verdict.INCORRECT, 0.0)
    assert grade(multi("off"), [1, 2])[:2] == (Verdict.INCORRECT, 0.0)


def test_single_choice() -> None:
    config = ChoiceConfig(options=["a", "b", "c", "d"], correct=[3])
    assert grade(config, [3])[0] is Verdict.CORRECT
    assert grade(config, [2])[0] is Verdict.INCORRECT
    verdict, _, feedback = grade(config, [2, 3])
    assert verdict is Verdict.INVALID
    assert feedback == "Pick exactly one option."


@pytest.mark.parametrize(
    ("picks", "message"),
    [
        ([], "No option is picked."),
        ([0], "There is no option 0"),
        ([6], "There is no option 6"),
        ([1, 1], "more than once"),
    ],
)
def test_malformed_picks_are_invalid(picks: list[int], message: str) -> None:
    verdict, fraction, feedback = grade(multi("coverage"), picks)
    assert verdict is Verdict.INVALID
    assert fraction == 0.0
    assert message in feedback


@pytest.mark.parametrize(
    "raw",
    [
        {"choices": "1"},
        {"choices": [True]},
        {"choices": ["1"]},
        {"choice": [1]},
        {"choices": [1], "x": 1},
        [1],
        None,
    ],
)
def test_answers_of_the_wrong_form_are_invalid(raw: object) -> None:
    result = GRADER.grade_raw_answer(multi("off"), raw, GradingContext())
    assert result.verdict is Verdict.INVALID
    assert "wrong form" in result.feedback


@pytest.mark.parametrize(
    "config",
    [
        {"options": ["a", "b"], "correct": [3]},
        {"options": ["a", "b"], "correct": [1, 2]},  # single choice with two keys
        {"options": ["a", "b"], "correct": [1], "partial_credit": "coverage"},  # needs multiple
        {"options": ["a", "b"], "correct": [1, 1], "multiple": True},
        {"options": ["a"], "correct": [1]},
        {"options": ["a", "b"], "correct": [1], "partial_credit": "half"},
        {"options": ["a", "b"], "correct": [1], "extra": True},
    ],
)
def test_inconsistent_configs_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        get_grader("choice").parse_config(config)


def test_public_config_hides_the_key() -> None:
    public = GRADER.public_config(multi("coverage"))
    assert public == {"options": ["a", "b", "c", "d", "e"], "multiple": True, "partial_credit": "coverage"}
