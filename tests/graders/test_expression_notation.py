"""Standard spellings the expression grader reads (issue 10, A1): powers after a function's
argument, function powers, primes as superscripts, typeset-only and font commands, summation
variables of any letter, `^` in text, format detection with a fallback, and ambiguous notations
refused with both readings named."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graders import Verdict
from graders.expression import parse_latex, parse_text, to_text
from tests.graders.hw5_expressions import GRADER, hw5


def config(question: str = "q2_2"):  # type: ignore[no-untyped-def]
    return hw5()[0][question]


def grade(question: str, expression: str, answer_format: str | None = None):  # type: ignore[no-untyped-def]
    configs, context = hw5()
    answer: dict[str, str] = {"expression": expression}
    if answer_format:
        answer["format"] = answer_format
    return GRADER.grade_raw_answer(configs[question], answer, context)


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        # A power after a function's parenthesised argument powers the function's value.
        (r"\tanh(z_i)^2", "tanh(z[i]) ** 2"),
        (r"1 - \tanh(z_i)^{2}", "1 - tanh(z[i]) ** 2"),
        (r"\psi'(z_k)^2", "dpsi(z[k]) ** 2"),
        (r"\exp(x_t)^2", "exp(x[t]) ** 2"),
        (r"\exp(x_t)^\top", "transpose(exp(x[t]))"),
        (r"(1 - h_t)^2 x_t", "(1 - h[t]) ** 2 * x[t]"),
        (r"x_t (1 - h_t^2)", "x[t] * (1 - h[t] ** 2)"),
        # Function powers.
        (r"\tanh^2(z_t)", "tanh(z[t]) ** 2"),
        (r"\tanh^{2} z_i", "tanh(z[i]) ** 2"),
        (r"\sigma^2(z_t)", "sigmoid(z[t]) ** 2"),
        (r"1 - \tanh^2 z_t", "1 - tanh(z[t]) ** 2"),
        # Primes written as superscripts.
        (r"\psi^\prime(z_k)", "dpsi(z[k])"),
        (r"\psi^{\prime}(z_k)", "dpsi(z[k])"),
        (r"\psi^{'}(z_k)", "dpsi(z[k])"),
        (r"\psi^'(z_k)", "dpsi(z[k])"),
        # Typeset-only commands.
        (r"\sum\limits_{k=1}^{t} x_k", "sum(x[k] for k in range(1, t + 1))"),
        (r"\prod\nolimits_{k=1}^{t} x_k", "prod(x[k] for k in range(1, t + 1))"),
        (r"\displaystyle \textstyle \scriptstyle x_t \mathstrut", "x[t]"),
        (r"\bigl( x_t \bigr) \Big( h_t \Big)", "x[t] * h[t]"),
        # Font commands around a declared symbol.
        (r"\mathbf{y}_t", "y[t]"),
        (r"\boldsymbol{y}_{t}", "y[t]"),
        (r"\bm{h}_t", "h[t]"),
        (r"\mathrm{y}_t \mathit{x}_t", "y[t] * x[t]"),
        (r"\vec{y}_t", "y[t]"),
        (r"\mathbf{w}_{hh}", "w_hh"),
        (r"\mathbf{\mathit{w}}_{hh}", "w_hh"),
        (r"\hat{\mathbf{y}}_t", "yhat[t]"),
        (r"\boldsymbol{\hat{y}}_t", "yhat[t]"),
        (r"\mathrm{softmax}(o_t)", "softmax(o[t])"),
        (r"\text{softmax}(o_t)", "softmax(o[t])"),
        (r"\boldsymbol{\hat y}_t - \hat y_{t}", "yhat[t] - yhat[t]"),
        (r"\operatorname{softmax}(\mathbf{o}_t)", "softmax(o[t])"),
        # Summation variables of any letter, Greek included, bound in the body only.
        (r"\sum_{j=1}^{3} gw_{hh,j}", "sum(gw_hh[j] for j in range(1, 4))"),
        (r"\sum_{\tau=1}^{t} x_{\tau}", "sum(x[tau] for tau in range(1, t + 1))"),
        (r"\prod_{\kappa=i+1}^{t} \psi'(z_\kappa)", "prod(dpsi(z[kappa]) for kappa in range(i + 1, t + 1))"),
        (
            r"\sum_{\tau=1}^{t} w_{hh}^{t-\tau} x_\tau",
            "sum(w_hh ** (t - tau) * x[tau] for tau in range(1, t + 1))",
        ),
        # A quotient whose denominator is a function call takes the call's argument.
        (r"x_t / \tanh(z_t)", "x[t] / tanh(z[t])"),
        (r"x_t / h_t \cdot z_t", "x[t] / h[t] * z[t]"),
        # Braces group: a braced product or quotient is one factor.
        (r"\tanh{x_t h_t}", "tanh(x[t] * h[t])"),
        (r"z_t {x_t / \tanh(z_t)}", "z[t] * (x[t] / tanh(z[t]))"),
        # Derivatives written out from their function; Bishop's inner product; pasted delimiters.
        (r"\tanh'(z_k)", "1 - tanh(z[k]) ** 2"),
        (r"\sigma'(z_k)", "sigmoid(z[k]) * (1 - sigmoid(z[k]))"),
        (r"\langle w_{yh}, g_{o,t} \rangle", "dot(w_yh, g_o[t])"),
        (r"\left\langle w_{yh}, g_{o,t} \right\rangle", "dot(w_yh, g_o[t])"),
        (r"\(\hat{y}_t - y_t\)", "yhat[t] - y[t]"),
        (r"\[\hat{y}_t - y_t\]", "yhat[t] - y[t]"),
    ],
)
def test_standard_latex_spellings_are_read(latex: str, text: str) -> None:
    tree = parse_latex(latex, config())
    assert to_text(tree) == text
    assert parse_text(to_text(tree)) == tree


@pytest.mark.parametrize(
    ("latex", "message"),
    [
        (r"\tanh^{-1}(z_t)", "inverse function"),
        (r"\tanh^{x_t}(z_t)", "whole number"),
        (r"\psi''(z_k)", "second derivative"),
        (r"\psi^{\prime\prime}(z_k)", "second derivative"),
        (r"\sum_{x=1}^{3} x_x", "declared symbol"),
        (r"\sum_{\sigma=1}^{3} z_t", "is a function"),
        (r"\sum_{\alpha\beta=1}^{3} z_t", "Unexpected"),
        (r"\sum_{jj=1}^{3} z_t", "one letter"),
        (r"\sum_{j=1}^{3} z_j + z_j", "Unknown symbol 'j'"),  # j is bound in the body only
        (r"\tau + 1", r"Unknown LaTeX command \tau"),
        (r"\exp'(z_k)", "A prime"),
        (r"\langle w_{yh} \rangle", "Unexpected"),
        ("\\langle z_t, " * 41 + "z_t" + " \\rangle" * 41, "at most 40 absolute values and inner products"),
        # Truly ambiguous: both readings named, never a guess.
        (r"\tanh z_t^2", r"tanh(z[t] ** 2) or tanh(z[t]) ** 2"),
        (r"x_t / h_t z_t", "ambiguous"),
        (r"x_t / \tanh(z_t) h_t", "ambiguous"),
    ],
)
def test_refused_spellings_say_why(latex: str, message: str) -> None:
    reading = GRADER.read(config(), latex, "latex")
    assert reading.expr is None
    assert message in str(reading.error)


def test_a_power_after_a_functions_argument_gives_the_right_verdict() -> None:
    # On main this was read as tanh(z_k ** 2): a correct answer marked incorrect without a word.
    answer = r"w_{yh}^\top g_{o,t} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \left(1 - \tanh(z_k)^2\right)"
    assert grade("q2_2", answer).verdict is Verdict.CORRECT
    assert grade("q2_2", r"w_{yh}^\top g_{o,t} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \tanh^2 z_k").verdict is (
        Verdict.INCORRECT
    )


@pytest.mark.parametrize(
    ("question", "answer", "answer_format"),
    [
        (
            "q2_2",
            r"\mathbf{w}_{yh}^{\top} \mathbf{g}_{o,t} w_{hh}^{t-i} "
            r"\prod\limits_{\kappa=i+1}^{t} \psi^{\prime}(z_\kappa)",
            None,
        ),
        ("q2_3", r"\displaystyle\sum_{\tau=1}^{t} g_{h,\tau} \, \psi'(z_\tau) \, h_{\tau-1}", None),
        ("q2_4", r"\sum_{j=1}^{3} gw_{hh,j}", None),
        ("q2_4", "sum(gw_hh[j] for j in range(1, 4))", "text"),
        ("q2_4", "gw_{hh,1} + gw_{hh,2} + gw_{hh,3}", None),
        ("q2_2", "dot(w_yh, g_o[t]) * w_hh^(t-i) * prod((1 - tanh(z[k])^2) for k in range(i+1, t+1))", None),
    ],
)
def test_correct_answers_in_standard_notation_are_graded_correct(
    question: str, answer: str, answer_format: str | None
) -> None:
    result = grade(question, answer, answer_format)
    assert result.verdict is Verdict.CORRECT, result.feedback


def test_a_bound_variable_may_not_shadow_a_symbol_in_text_either() -> None:
    result = grade("q2_4", "sum(gw_hh[x] for x in range(1, 4))", "text")
    assert result.verdict is Verdict.INVALID
    assert "'x' is a declared symbol" in result.feedback


def test_too_many_bound_variables_are_refused() -> None:
    letters = "abcdejlmn"
    answer = " + ".join(f"\\sum_{{{letter}=1}}^{{3}} gw_{{hh,{letter}}}" for letter in letters)
    result = grade("q2_4", answer)
    assert result.verdict is Verdict.INVALID
    assert "more than 8 summation variables" in result.feedback


def test_caret_in_text_is_a_power() -> None:
    assert parse_text("w_hh^(t-i)") == parse_text("w_hh**(t-i)")
    assert to_text(parse_text("(1 - tanh(z[i])^2)")) == "1 - tanh(z[i]) ** 2"
    assert to_text(parse_text("-x^2")) == "-x ** 2"


def test_braced_scripts_mean_latex_and_a_failed_detection_falls_back_with_a_note() -> None:
    braced = GRADER.preview(config("q2_4"), {"expression": "gw_{hh,1} + gw_{hh,2} + gw_{hh,3}"})
    assert braced["format"] == "latex"
    assert braced["ok"] is True
    assert braced["note"] is None

    # `h_t` has no LaTeX mark, and fails as text; as LaTeX it reads, and the preview says so.
    fallback = GRADER.preview(config("q2_3"), {"expression": "h_t x_t"})
    assert fallback["ok"] is True
    assert fallback["format"] == "latex"
    assert fallback["read_as"] == "h[t] * x[t]"
    assert str(fallback["note"]).startswith("Read as LaTeX:")

    configs, context = hw5()
    graded = GRADER.grade_raw_answer(configs["q2_1"], {"expression": "hat{y}_t - y_t"}, context)
    assert graded.verdict is Verdict.INVALID  # neither reading works: the detected one's error
    graded = GRADER.grade_raw_answer(configs["q2_3"], {"expression": "h_t x_t"}, context)
    assert str(graded.details["note"]).startswith("Read as LaTeX:")


def test_when_both_formats_fail_the_error_of_the_one_that_parsed_is_shown() -> None:
    # No LaTeX mark, so detected as text, where it does not parse; as LaTeX it parses but is ambiguous.
    preview = GRADER.preview(config("q2_2"), {"expression": "x_t / h_t z_t"})
    assert preview["ok"] is False
    assert preview["format"] == "latex"
    assert "ambiguous" in str(preview["error"])


def test_an_explicit_format_never_falls_back() -> None:
    preview = GRADER.preview(config("q2_3"), {"expression": "h_t x_t", "format": "text"})
    assert preview["ok"] is False
    assert preview["format"] == "text"
    assert preview["note"] is None


@pytest.mark.parametrize(
    "hostile",
    [
        r"\mathbf{" * 39 + "y" + "}" * 39 + "_t",
        r"\tanh^{2}" * 200,
        r"\psi^{\prime}" * 140 + "(z_t)",
        r"\sum_{\tau=1}^{3}" * 100 + "x_\\tau",
        r"\displaystyle\limits" * 90,
        "x^" * 600 + "2",
        r"x_t / \tanh(" * 39 + "z_t" + ")" * 39,
    ],
)
def test_hostile_notation_stays_cheap(hostile: str) -> None:
    started = time.process_time()
    reading = GRADER.read(config("q2_2"), hostile)
    preview = GRADER.preview(config("q2_2"), {"expression": hostile})
    assert time.process_time() - started < 0.05 * 2
    assert reading.expr is None or preview["ok"] is True


NOTATION_ALPHABET = st.sampled_from(
    [
        *"tikzhx_^{}()/',+- ",
        r"\tanh",
        r"\psi",
        r"\prime",
        r"\mathbf",
        r"\limits",
        r"\displaystyle",
        r"\tau",
        r"\sum_{j=1}^{3}",
        r"\prod_{\kappa=1}^{t}",
        r"\cdot",
        "^{2}",
        "^{-1}",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(NOTATION_ALPHABET, max_size=25).map("".join))
def test_random_notation_reads_or_fails_with_a_message(latex: str) -> None:
    reading = GRADER.read(config(), latex)
    if reading.expr is None:
        assert reading.error
    else:
        assert reading.canonical is not None
        assert parse_text(reading.canonical) == reading.expr
