"""P2: grading gradient formulas, this grader against SymPy equivalence, in one run.

    .venv/bin/python bench/expressions.py [--repeats 15] [--rows]
    py-spy record -r 250 --format speedscope -o grade.json -- .venv/bin/python bench/expressions.py --loop 20

Grades the same answers (the SPEC's reference formulas, the hand-in, typical mistakes; text and
LaTeX) with the expression grader, and the text forms with `sympify(reference).equals(sympify(answer))`
as PrairieLearn-style symbolic equivalence would. SymPy runs here only, on translations of the
text forms (sums become Sum/Product, arrays IndexedBase, dot a product); it never sees student
input in the service. The grader's points are drawn once per question before timing (as a worker
does on its first answer), so the figures are the per-answer cost.

Then the notation corpus (tests/graders/notation_corpus.py, issue 10), when it is there: every entry
graded as a student submits it (format auto-detected unless the entry fixes one), medians per
format as the grader read it. SymPy gets the hw5 entries it can compare: our parsed tree translated
as above (SymPy gets the benefit of our parsing of LaTeX), and, as in the first table, SymPy's
reading of that text (`sympify`) and `equals` are timed, as our reading and checking are. Entries
that do not parse, and the matrix questions of the layers material (SymPy would need matrices of
symbols), are left out of the SymPy column and counted.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sympy

from graders import GradingContext
from graders.expression import ExpressionConfig, ExpressionGrader, parse_text
from graders.expression.syntax import Binary, Call, Expr, Indexed, Name, Negate, Number, Reduce
from service.assignments.material import read_material
from service.assignments.references import load_reference_functions

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = {
    "q2_1": "yhat[t] - y[t]",
    "q2_2": "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))",
    "q2_3": "sum(g_h[i] * dpsi(z[i]) * h[i-1] for i in range(1, t+1))",
    "q2_4": "sum(gw_hh[t] for t in range(1, 4))",
}
# (question, label, format, answer)
ANSWERS: list[tuple[str, str, str, str]] = [
    ("q2_1", "reference", "text", REFERENCES["q2_1"]),
    ("q2_1", "reference", "latex", r"\hat{y}_t - y_t"),
    ("q2_1", "hand-in", "latex", r"- \sum_{i=1}^2 y_{t,i} \times (1 - \hat{y}_{t,i})"),
    ("q2_1", "rewritten", "text", "-(y[t] - yhat[t])"),
    ("q2_1", "sign", "text", "y[t] - yhat[t]"),
    ("q2_1", "factor", "text", "2*(yhat[t] - y[t])"),
    ("q2_2", "reference", "text", REFERENCES["q2_2"]),
    ("q2_2", "reference", "latex", r"w_{yh}^\top g_{o,t} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \psi'(z_k)"),
    (
        "q2_2",
        "hand-in",
        "latex",
        r"g_{ot} \times w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)",
    ),
    (
        "q2_2",
        "rewritten",
        "text",
        "w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1)) * dot(g_o[t], w_yh)",
    ),
    ("q2_2", "sign", "text", "-dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))"),
    ("q2_2", "range", "text", "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i, t+1))"),
    ("q2_3", "reference", "text", REFERENCES["q2_3"]),
    ("q2_3", "reference", "latex", r"\sum_{i=1}^{t} g_{h,i} \, \psi'(z_i) \, h_{i-1}"),
    ("q2_3", "hand-in", "latex", r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}"),
    ("q2_3", "rewritten", "text", "sum(h[i-1] * g_h[i] * (1 - tanh(z[i])**2) for i in range(1, t+1))"),
    ("q2_3", "index", "text", "sum(g_h[i] * dpsi(z[i]) * h[t-1] for i in range(1, t+1))"),
    ("q2_3", "sign", "text", "-sum(g_h[i] * dpsi(z[i]) * h[i-1] for i in range(1, t+1))"),
    ("q2_4", "reference", "text", REFERENCES["q2_4"]),
    ("q2_4", "reference", "latex", r"\sum_{t=1}^{3} gw_{hh,t}"),
    ("q2_4", "hand-in", "latex", r"\sum_{t=1}^3 gw_{hh,t}"),
    ("q2_4", "rewritten", "text", "gw_hh[1] + gw_hh[2] + gw_hh[3]"),
    ("q2_4", "partial", "text", "gw_hh[1] + gw_hh[2]"),
]

# --- SymPy side: the text form translated into what sympify can read ---------------------------

SYMPY_FUNCTIONS = {
    "psi": "tanh({0})",
    "dpsi": "(1 - tanh({0})**2)",
    "tanh": "tanh({0})",
    "exp": "exp({0})",
    "log": "log({0})",
    "sigmoid": "(1/(1 + exp(-({0}))))",
}


def to_sympy_text(expr: Expr) -> str:
    if isinstance(expr, Number):
        return repr(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Indexed):
        return f"{expr.name}[{', '.join(to_sympy_text(i) for i in expr.indices)}]"
    if isinstance(expr, Call) and expr.function == "transpose":
        return to_sympy_text(expr.args[0])  # vectors are symbols here, as `dot` is a product
    if isinstance(expr, Negate):
        return f"(-({to_sympy_text(expr.operand)}))"
    if isinstance(expr, Binary):
        op = "*" if expr.op in ("*", "@") else expr.op
        return f"({to_sympy_text(expr.left)} {op} {to_sympy_text(expr.right)})"
    if isinstance(expr, Call):
        if expr.function == "dot":
            return f"({to_sympy_text(expr.args[0])} * {to_sympy_text(expr.args[1])})"
        return SYMPY_FUNCTIONS[expr.function].format(to_sympy_text(expr.args[0]))
    assert isinstance(expr, Reduce)
    kind = "Sum" if expr.kind == "sum" else "Product"
    stop = f"({to_sympy_text(expr.stop)}) - 1"
    return f"{kind}({to_sympy_text(expr.body)}, ({expr.variable}, {to_sympy_text(expr.start)}, {stop}))"


SYMPY_LOCALS: dict[str, Any] = {
    name: sympy.IndexedBase(name) for name in ("x", "h", "z", "o", "y", "yhat", "g_o", "g_h", "gw_hh")
} | {name: sympy.Symbol(name) for name in ("w_hh", "w_hx", "w_yh", "t", "i", "k")}


def sympy_equivalent(reference: str, answer: str) -> bool | None:
    left = sympy.sympify(to_sympy_text(parse_text(reference)), locals=SYMPY_LOCALS)
    right = sympy.sympify(to_sympy_text(parse_text(answer)), locals=SYMPY_LOCALS)
    result = left.equals(right)
    return None if result is None else bool(result)


class NotComparable(Exception):
    """An answer SymPy is not given: it does not parse, or it uses what the translation lacks."""


def sympy_pair(config: ExpressionConfig, reference: str, expr: Expr) -> tuple[str, str]:
    """The reference's and our tree of an answer as text SymPy reads (checked here, not timed)."""
    try:
        translated = to_sympy_text(expr)
    except (KeyError, AssertionError, IndexError) as error:
        raise NotComparable(f"no SymPy translation: {error!r}") from None
    try:
        sympy.sympify(translated, locals=SYMPY_LOCALS)
    except (TypeError, ValueError, sympy.SympifyError) as error:
        # e.g. a component of a vector the translation keeps as one symbol (w_yh[j])
        raise NotComparable(f"SymPy cannot read the translation: {error!r}") from None
    return to_sympy_text(parse_text(reference)), translated


def sympy_equals(reference: str, answer: str) -> bool | None:
    """SymPy's reading and equivalence of two translated forms: what the SPEC table times too."""
    result = sympy.sympify(reference, locals=SYMPY_LOCALS).equals(sympy.sympify(answer, locals=SYMPY_LOCALS))
    return None if result is None else bool(result)


def median_ms(function: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rows", action="store_true", help="print every corpus entry's row")
    parser.add_argument(
        "--loop", type=float, metavar="SECONDS", help="only grade the SPEC's answers in a loop (for py-spy)"
    )
    arguments = parser.parse_args()
    grader = ExpressionGrader()
    if arguments.loop:
        grade_in_a_loop(grader, arguments.loop)
        return
    bench_answers(grader, arguments.repeats)
    bench_corpus(grader, arguments.repeats, arguments.rows)


def hw5_questions(grader: ExpressionGrader) -> tuple[dict[str, ExpressionConfig], GradingContext]:
    loaded = read_material(ROOT / "reference" / "hw5")
    configs = {
        q.id: ExpressionConfig.model_validate(q.config)
        for q in loaded.material.questions
        if q.kind == "expression"
    }
    context = GradingContext(0, load_reference_functions(loaded.reference_source, loaded.content_hash))
    for config in configs.values():
        grader.points_for(config, context)  # drawn once per process, before timing
    return configs, context


def grade_in_a_loop(grader: ExpressionGrader, seconds: float) -> None:
    """The SPEC's answers graded over and over: what py-spy samples for docs/performance.md."""
    configs, context = hw5_questions(grader)
    payloads = [(configs[q], {"expression": a, "format": f}) for q, _label, f, a in ANSWERS]
    graded = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for config, payload in payloads:
            grader.grade_raw_answer(config, payload, context)
        graded += len(payloads)
    print(f"{graded} grades, {seconds / graded * 1000:.3f} ms each on average")


def bench_answers(grader: ExpressionGrader, repeats: int) -> None:
    configs, context = hw5_questions(grader)

    rows = []
    for question, label, answer_format, answer in ANSWERS:
        config = configs[question]
        payload = {"expression": answer, "format": answer_format}
        result = grader.grade_raw_answer(config, payload, context)
        ours = median_ms(partial(grader.grade_raw_answer, config, payload, context), repeats)
        theirs: float | None = None
        verdict_sympy = "-"
        if answer_format == "text":
            equal = sympy_equivalent(REFERENCES[question], answer)
            verdict_sympy = {True: "equal", False: "differ", None: "unknown"}[equal]
            check = partial(sympy_equivalent, REFERENCES[question], answer)
            theirs = median_ms(check, max(3, repeats // 3))
        rows.append((question, label, answer_format, result.verdict.value, ours, verdict_sympy, theirs))

    columns = ("question", "answer", "format", "verdict", "ours ms", "sympy", "sympy ms", "ratio")
    header = "{:8} {:10} {:6} {:10} {:>8} {:8} {:>9} {:>7}".format(*columns)
    print("The SPEC's answers (SymPy: sympify and equals of the text forms, both timed)")
    print(header)
    print("-" * len(header))
    for question, label, answer_format, verdict, ours, verdict_sympy, theirs in rows:
        ratio = f"{theirs / ours:6.0f}x" if theirs else ""
        shown = f"{theirs:9.1f}" if theirs else ""
        line = f"{question:8} {label:10} {answer_format:6} {verdict:10} {ours:8.2f} {verdict_sympy:8}"
        print(f"{line} {shown:>9} {ratio}")
    text = [row[4] for row in rows if row[2] == "text"]
    latex = [row[4] for row in rows if row[2] == "latex"]
    sympy_text = [row[6] for row in rows if row[6] is not None]
    median_text, median_latex, median_sympy = (statistics.median(v) for v in (text, latex, sympy_text))
    speedup = median_sympy / median_text
    print()
    print(f"median per text answer:  {median_text:7.2f} ms (target <= 1 ms)  {passed(median_text <= 1)}")
    print(f"median per LaTeX answer: {median_latex:7.2f} ms (target <= 1 ms)  {passed(median_latex <= 1)}")
    print(f"median SymPy per text answer: {median_sympy:.1f} ms")
    print(
        f"ratio of the medians, SymPy / ours (text): {speedup:.0f}x (target >= 30x) {passed(speedup >= 30)}"
    )


def bench_corpus(grader: ExpressionGrader, repeats: int, show_rows: bool) -> None:
    try:
        corpus: Any = importlib.import_module("tests.graders.notation_corpus")
    except ModuleNotFoundError:
        print("\nNo notation corpus (tests/graders/notation_corpus.py) in this tree: skipped.")
        return
    materials = {name: corpus.material(name) for name in ("hw5", "layers")}
    for configs, context in materials.values():
        for config in configs.values():
            grader.points_for(config, context)  # drawn once per process, before timing

    rows = []
    left_out: dict[str, int] = {}
    for written in corpus.CORPUS:
        name = corpus.material_name(written.question)
        configs, context = materials[name]
        config = configs[written.question]
        payload = {"expression": written.answer, "format": written.format}
        result = grader.grade_raw_answer(config, payload, context)
        as_expected = (result.verdict.value == "correct") == written.correct
        reading = grader.read(config, written.answer, written.format)
        ours = median_ms(partial(grader.grade_raw_answer, config, payload, context), repeats)
        theirs: float | None = None
        verdict_sympy = "-"
        if name != "hw5":
            left_out["matrix questions (layers)"] = left_out.get("matrix questions (layers)", 0) + 1
        elif reading.expr is None:
            left_out["not read by the grader"] = left_out.get("not read by the grader", 0) + 1
        else:
            try:
                reference, answer = sympy_pair(config, REFERENCES[written.question], reading.expr)
            except NotComparable:
                left_out["no SymPy translation"] = left_out.get("no SymPy translation", 0) + 1
            else:
                equal = sympy_equals(reference, answer)
                verdict_sympy = {True: "equal", False: "differ", None: "unknown"}[equal]
                theirs = median_ms(partial(sympy_equals, reference, answer), max(1, repeats // 5))
        rows.append((written, reading.format, result.verdict.value, as_expected, ours, verdict_sympy, theirs))

    print()
    print(f"The notation corpus: {len(rows)} entries, each graded {repeats} times (median)")
    if show_rows:
        for written, shown_format, verdict, as_expected, ours, verdict_sympy, theirs in rows:
            sympy_ms = f"{theirs:9.1f}" if theirs is not None else ""
            mark = "" if as_expected else "  (not as the corpus says)"
            print(
                f"{written.question:7} {shown_format:6} {verdict:10} {ours:7.2f} {verdict_sympy:8} "
                f"{sympy_ms:>9} {written.answer[:60]}{mark}"
            )
    graded_as_said = sum(1 for row in rows if row[3])
    print(f"graded as the corpus says: {graded_as_said} of {len(rows)}")
    header = f"{'answers':32} {'count':>5} {'ours ms':>8} {'SymPy ms':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for shown_format in ("text", "latex"):
        times = [row[4] for row in rows if row[1] == shown_format]
        if times:
            print(f"{'read as ' + shown_format:32} {len(times):5} {statistics.median(times):8.2f}")
    compared = [row for row in rows if row[6] is not None]
    if compared:
        ours_median = statistics.median(row[4] for row in compared)
        sympy_median = statistics.median(row[6] for row in compared)
        ratio = sympy_median / ours_median
        print(
            f"{'hw5 entries SymPy compares':32} {len(compared):5} {ours_median:8.2f} "
            f"{sympy_median:9.1f} {ratio:6.0f}x"
        )
    print(
        "left out of the SymPy column: " + (", ".join(f"{n} {why}" for why, n in left_out.items()) or "none")
    )
    text = [row[4] for row in rows if row[1] == "text"]
    latex = [row[4] for row in rows if row[1] == "latex"]
    print()
    if text:
        median_text = statistics.median(text)
        verdict = passed(median_text <= 1)
        print(f"corpus, median per text answer:  {median_text:7.2f} ms (target <= 1 ms)  {verdict}")
    if latex:
        median_latex = statistics.median(latex)
        verdict = passed(median_latex <= 1)
        print(f"corpus, median per LaTeX answer: {median_latex:7.2f} ms (target <= 1 ms)  {verdict}")
    if compared:
        print(
            f"corpus, ratio of the medians, SymPy / ours: {ratio:.0f}x (target >= 30x) {passed(ratio >= 30)}"
        )


def passed(condition: bool) -> str:
    return "PASS" if condition else "MISS"


if __name__ == "__main__":
    main()
