"""Writing a reading back as LaTeX (the preview's `read_as_latex`): it must read back as the same tree."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graders.expression import ExpressionConfig, parse_latex, to_latex
from graders.expression.syntax import Binary, Call, Expr, Indexed, Name, Negate, Number, Reduce, node_count
from tests.graders.hw5_expressions import GRADER, HANDIN_LATEX, REFERENCE_LATEX, REFERENCE_TEXT, hw5


def config(question: str = "q2_2") -> ExpressionConfig:
    return hw5()[0][question]


def read(expression: str, answer_format: str | None = None, question: str = "q2_2") -> Expr:
    reading = GRADER.read(config(question), expression, answer_format)
    assert reading.expr is not None, reading.error
    return reading.expr


def assert_reads_back(tree: Expr, question: str = "q2_2") -> str:
    written = to_latex(tree, config(question))
    assert parse_latex(written, config(question)) == tree, written
    return written


@pytest.mark.parametrize(
    ("text", "latex"),
    [
        ("yhat[t]", r"\hat{y}_{t}"),
        ("yhat[t][i]", r"\hat{y}_{t,i}"),
        ("y[t][i]", r"y_{t,i}"),
        ("g_o[t - 1]", r"g_{o,t-1}"),
        ("g_o[t][2]", r"g_{o,t,2}"),
        ("w_hh", r"w_{hh}"),
        ("w_yh[1]", r"w_{yh,1}"),
        ("gw_hh[t]", r"gw_{hh,t}"),
        ("dpsi(z[k]) * psi(z[k])", r"\psi'\left(z_{k}\right) \times \psi\left(z_{k}\right)"),
        ("sigmoid(z[t]) * tanh(z[t])", r"\sigma\left(z_{t}\right) \times \tanh\left(z_{t}\right)"),
        ("exp(log(z[t]))", r"\exp\left(\log\left(z_{t}\right)\right)"),
        ("softmax(o[t])", r"\operatorname{softmax}\left(o_{t}\right)"),
        ("dot(w_yh, g_o[t])", r"\operatorname{dot}\left(w_{yh}, g_{o,t}\right)"),
        ("sqrt(abs(z[t]))", r"\sqrt{\lvert z_{t} \rvert}"),
        ("abs(abs(z[t]) - 1) ** 2", r"\left(\lvert \lvert z_{t} \rvert - 1 \rvert\right)^{2}"),
        ("sum(h[k] for k in range(1, t + 1))", r"\sum_{k=1}^{t} h_{k}"),
        ("prod(h[k] for k in range(0, t - i))", r"\prod_{k=0}^{t - i - 1} h_{k}"),
        ("sum(h[k] for k in range(1, 4))", r"\sum_{k=1}^{3} h_{k}"),
        ("(z[t] + 1) / (2 * h[t])", r"\frac{z_{t} + 1}{2 h_{t}}"),
        ("w_hh ** (t - i)", r"w_{hh}^{t - i}"),
        ("tanh(z[t]) ** 2", r"\left(\tanh\left(z_{t}\right)\right)^{2}"),
        ("transpose(w_yh) @ g_o[t]", r"w_{yh}^\top g_{o,t}"),
        ("-(z[t] - 1) * h[t]", r"\left(-\left(z_{t} - 1\right)\right) \times h_{t}"),
        ("z[t] - (h[t] + x[t])", r"z_{t} - \left(h_{t} + x_{t}\right)"),
        ("(z[t] - h[t]) - x[t]", r"z_{t} - h_{t} - x_{t}"),
        ("-z[t] ** 2", r"-z_{t}^{2}"),
        ("(-z[t]) ** 2", r"\left(-z_{t}\right)^{2}"),
        ("z[t] ** h[t] ** 2", r"z_{t}^{h_{t}^{2}}"),
        ("(z[t] ** h[t]) ** 2", r"\left(z_{t}^{h_{t}}\right)^{2}"),
        ("0.5 * z[t]", r"0.5 z_{t}"),
        ("z[t] * 2", r"z_{t} \times 2"),
    ],
)
def test_readings_are_written_in_the_declared_spellings_with_few_parentheses(text: str, latex: str) -> None:
    tree = read(text, "text")
    assert assert_reads_back(tree) == latex


def test_a_matrix_product_without_a_transpose_is_written_with_cdot() -> None:
    # \cdot reads back as "@" once products follow the declared shapes (two non-scalars).
    assert to_latex(read("w_yh @ g_o[t]", "text"), config()) == r"w_{yh} \cdot g_{o,t}"


def test_a_sum_before_another_factor_is_parenthesised_so_its_body_stays_the_same() -> None:
    inner = "sum(h[k] for k in range(1, t + 1))"
    assert assert_reads_back(read(f"{inner} * z[t]", "text")) == (
        r"\left(\sum_{k=1}^{t} h_{k}\right) \times z_{t}"
    )
    written = assert_reads_back(read(f"(z[t] * {inner}) * x[t]", "text"))
    assert written == r"\left(z_{t} \times \sum_{k=1}^{t} h_{k}\right) \times x_{t}"
    assert assert_reads_back(read(f"{inner} + z[t]", "text")) == r"\sum_{k=1}^{t} h_{k} + z_{t}"
    assert assert_reads_back(read("sum(-h[k] + 1 for k in range(1, t + 1))", "text")) == (
        r"\sum_{k=1}^{t} \left(-h_{k} + 1\right)"
    )


@pytest.mark.parametrize(
    "stop", ["t + 1", "t + 3", "t - 1", "t - i", "t", "2 * t", "4", "1.5", "(t - 2) + 1"]
)
def test_an_upper_bound_reads_back_as_the_same_exclusive_stop(stop: str) -> None:
    assert_reads_back(read(f"sum(h[k] for k in range(1, {stop}))", "text"))


def test_the_spec_formulas_and_the_handin_read_back_unchanged() -> None:
    for question in REFERENCE_TEXT:
        for expression in (REFERENCE_TEXT[question], REFERENCE_LATEX[question], HANDIN_LATEX[question]):
            assert_reads_back(read(expression, question=question), question)
    assert to_latex(read(REFERENCE_LATEX["q2_2"]), config()) == (
        r"w_{yh}^\top g_{o,t} \times w_{hh}^{t - i} \times \prod_{k=i + 1}^{t} \psi'\left(z_{k}\right)"
    )


# Canonical forms the other expression tests grade or read.
CANONICAL = [
    "yhat[t] - y[t]",
    "y[t] - yhat[t]",
    "2 * (yhat[t] - y[t])",
    "sum(yhat[t] - y[t])",
    "dot(w_yh, g_o[t]) * w_hh ** (t - i) * prod(dpsi(z[k]) for k in range(i, t + 1))",
    "sum(g_h[i] * dpsi(z[i]) * h[t - 1] for i in range(1, t + 1))",
    "sum(y[t][i] * z[t] for i in range(1, 3))",
    "prod(x[k] for k in range(0, t - i))",
    "(1 - yhat[t][1]) * y[t][1]",
    "1 / 2 * z[t]",
    "psi(z[k]) * tanh(z[k])",
    "h[0] * w_hh",
    "x[t] * h[t - 1]",
    "-sum(y[t][i] * (1 - yhat[t][i]) for i in range(1, 3))",
    "g_o[t] * w_yh * w_hh ** (t - i) * prod(dpsi(z[t]) for k in range(0, t - i))",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_forms_of_the_other_tests_read_back(text: str) -> None:
    assert_reads_back(read(text, "text"))


@pytest.mark.parametrize(
    "latex", [r"\lvert z_t - 1 \rvert", r"\left| z_t - 1 \right|", r"\left\lvert z_t - 1 \right\rvert"]
)
def test_an_absolute_value_is_read_between_bars(latex: str) -> None:
    assert parse_latex(latex, config()) == read("abs(z[t] - 1)", "text")


def test_absolute_values_are_bounded_and_unreadable_bars_are_explained() -> None:
    nested = r"\lvert " * 41 + "z_t" + r" \rvert" * 41
    started = time.process_time()
    reading = GRADER.read(config(), nested)
    assert time.process_time() - started < 0.05
    assert reading.error == "An answer may hold at most 40 absolute values and inner products."
    assert GRADER.read(config(), r"\lvert z_t").error is not None
    assert GRADER.read(config(), r"| z_t |", "latex").error is not None


def test_components_of_declared_spellings_are_read() -> None:
    # Every component of a vector can be written in LaTeX, in each declared spelling.
    assert parse_latex(r"g_{o,t-1,2}", config()) == read("g_o[t - 1][2]", "text")
    assert parse_latex(r"g_{ot,2}", config()) == read("g_o[t][2]", "text")
    assert parse_latex(r"w_{yh,i}", config()) == read("w_yh[i]", "text")
    assert parse_latex(r"w_{yh}", config()) == Name("w_yh")


# --- generated trees ---------------------------------------------------------------------------

# The hw5 symbols by what they hold; vectors have 2 components.
TIMED_SCALARS = ["x", "h", "z", "g_h", "gw_hh"]
TIMED_VECTORS = ["o", "y", "yhat", "g_o"]
SCALAR_FUNCTIONS = ["exp", "log", "tanh", "sigmoid", "abs", "sqrt", "psi", "dpsi"]

INDEX_NAMES = st.sampled_from(["t", "i", "k"]).map(Name)
SMALL_NUMBERS = st.integers(0, 12).map(float).map(Number)
INDICES = st.one_of(
    INDEX_NAMES,
    SMALL_NUMBERS,
    st.builds(Binary, st.sampled_from(["+", "-"]), INDEX_NAMES, st.one_of(INDEX_NAMES, SMALL_NUMBERS)),
)
NUMBERS = st.one_of(
    SMALL_NUMBERS,
    st.floats(0, 1e6, allow_nan=False).map(lambda value: Number(round(value, 6))),
    st.just(Number(1e20)),
)


def _scalar_leaves() -> st.SearchStrategy[Expr]:
    return st.one_of(
        NUMBERS,
        INDEX_NAMES,
        st.sampled_from(["w_hh", "w_hx"]).map(Name),
        st.builds(lambda name, index: Indexed(name, (index,)), st.sampled_from(TIMED_SCALARS), INDICES),
        st.builds(
            lambda name, index, component: Indexed(name, (index, component)),
            st.sampled_from(TIMED_VECTORS),
            INDICES,
            INDICES,
        ),
        st.builds(lambda index: Indexed("w_yh", (index,)), INDICES),
    )


def _vector_leaves() -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.just(Name("w_yh")),
        st.builds(lambda name, index: Indexed(name, (index,)), st.sampled_from(TIMED_VECTORS), INDICES),
    )


def _not_transposed(expr: Expr) -> bool:
    # `x^\top \times y` reads as a matrix product until products follow the declared shapes.
    return not (isinstance(expr, Call) and expr.function == "transpose")


@st.composite
def hw5_trees(draw: st.DrawFn, depth: int = 4, vector: bool = False) -> Expr:
    """A tree the hw5 questions accept: names used as declared, shapes that fit."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(_vector_leaves() if vector else _scalar_leaves())
    scalar = hw5_trees(depth=depth - 1)
    vectors = hw5_trees(depth=depth - 1, vector=True)
    if vector:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            return Binary(draw(st.sampled_from(["+", "-", "*"])), draw(vectors), draw(vectors))
        if choice == 1:
            return Binary("*", draw(scalar.filter(_not_transposed)), draw(vectors))
        if choice == 2:
            return Binary(draw(st.sampled_from(["*", "/"])), draw(vectors), draw(scalar))
        if choice == 3:
            return Negate(draw(vectors))
        if choice == 4:
            return Call(draw(st.sampled_from(["softmax", "tanh", "exp"])), (draw(vectors),))
        return Reduce("sum", "k", draw(INDICES), draw(INDICES), draw(vectors))
    choice = draw(st.integers(0, 8))
    if choice == 0:
        left = draw(scalar.filter(_not_transposed))
        return Binary(draw(st.sampled_from(["+", "-", "*", "/"])), left, draw(scalar))
    if choice == 1:
        return Binary("**", draw(scalar), draw(st.one_of(NUMBERS, INDICES, scalar)))
    if choice == 2:
        return Negate(draw(scalar))
    if choice == 3:
        return Call(draw(st.sampled_from(SCALAR_FUNCTIONS)), (draw(scalar),))
    if choice == 4:
        return Call("dot", (draw(vectors), draw(vectors)))
    if choice == 5:
        return Call(draw(st.sampled_from(["sum", "prod"])), (draw(vectors),))
    if choice == 6:
        return Binary("@", Call("transpose", (draw(vectors),)), draw(vectors))
    if choice == 7:
        return Call("transpose", (draw(scalar),))
    kind = draw(st.sampled_from(["sum", "prod"]))
    return Reduce(kind, draw(st.sampled_from(["k", "i"])), draw(INDICES), draw(INDICES), draw(scalar))


# Per node, at most (with hw5's spellings): a function head with its parentheses, a \sum with
# its bounds, a spelled symbol with its subscript, a number in scientific notation.
MOST_CHARACTERS_PER_NODE = 64


@settings(max_examples=150, deadline=None)
@given(hw5_trees())
def test_generated_trees_read_back_unchanged_and_bounded(tree: Expr) -> None:
    assert GRADER.read(config(), assert_reads_back(tree), "latex").expr == tree
    assert len(to_latex(tree, config())) <= MOST_CHARACTERS_PER_NODE * node_count(tree)


def test_the_deepest_trees_the_parsers_accept_are_written_fast_without_recursion() -> None:
    negations = read("- " * 398 + "w_hh", "text")
    powers = read(" ** ".join(["w_hh"] * 200), "text")
    sums = read(" + ".join(["w_{hh}"] * 200), "latex")
    for tree in (negations, powers, sums):
        assert node_count(tree) >= 199
        started = time.process_time()
        written = to_latex(tree, config())
        assert time.process_time() - started < 0.05
        assert len(written) <= MOST_CHARACTERS_PER_NODE * node_count(tree)
    # Far deeper than any answer may be: still no RecursionError.
    deep: Expr = Name("w_hh")
    for _ in range(20_000):
        deep = Negate(deep)
    assert to_latex(deep, config()).count("-") == 20_000


def test_numbers_are_written_exactly_or_compactly() -> None:
    assert assert_reads_back(Number(0.1)) == "0.1"
    assert assert_reads_back(Number(1e20)) == "100000000000000000000"
    assert assert_reads_back(Number(1.25e-7)) == "0.000000125"
    # Beyond 32 digits: scientific notation, a product of the same value, bounded in length.
    assert to_latex(Number(1e300), config()) == r"\left(1 \times 10^{300}\right)"
    assert to_latex(Number(float("inf")), config()) == r"\infty"


def test_a_symbol_spelled_like_a_function_command_moves_the_function_to_its_name() -> None:
    declared = config().model_copy(
        update={
            "symbols": [
                *config().symbols,
                config().symbols[0].model_copy(update={"name": "s", "latex": [r"\sigma"], "sequence": False}),
            ]
        }
    )
    tree = Binary("*", Call("sigmoid", (Name("s"),)), Name("s"))
    written = to_latex(tree, declared)
    assert written == r"\operatorname{sigmoid}\left(\sigma\right) \times \sigma"
    assert parse_latex(written, declared) == tree


def test_the_preview_and_the_graded_details_carry_the_reading_in_latex() -> None:
    configs, context = hw5()
    answer = {"expression": REFERENCE_TEXT["q2_3"]}
    shown = r"\sum_{i=1}^{t} g_{h,i} \times \psi'\left(z_{i}\right) \times h_{i-1}"
    assert GRADER.preview(configs["q2_3"], answer)["read_as_latex"] == shown
    result = GRADER.grade_raw_answer(configs["q2_3"], answer, context)
    assert result.details["read_as_latex"] == shown
    assert result.details["read_as"] == "sum(g_h[i] * dpsi(z[i]) * h[i - 1] for i in range(1, t + 1))"
    unreadable = GRADER.preview(configs["q2_3"], {"expression": "g_h[i] * * h[i]"})
    assert unreadable["read_as_latex"] is None


ANY_NAMES = st.sampled_from(["t", "k", "w_hh", "h", "y", "g_o", "unknown", "a_1"])


def any_trees() -> st.SearchStrategy[Expr]:
    """Trees the grader would refuse too: unknown names and functions, wrong arities, odd numbers."""
    numbers = st.floats(allow_nan=True, allow_infinity=True).map(Number)
    leaves = st.one_of(numbers, ANY_NAMES.map(Name))

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/", "@", "**"]), children, children),
            st.builds(Negate, children),
            st.builds(
                Call,
                st.sampled_from(["transpose", "sqrt", "abs", "dpsi", "f"]),
                st.lists(children, max_size=3).map(tuple),
            ),
            st.builds(Indexed, ANY_NAMES, st.lists(children, min_size=1, max_size=3).map(tuple)),
            st.builds(Reduce, st.sampled_from(["sum", "prod"]), ANY_NAMES, children, children, children),
        )

    return st.recursive(leaves, extend, max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(any_trees())
def test_any_tree_is_written_without_an_error(tree: Expr) -> None:
    assert to_latex(tree, config())
