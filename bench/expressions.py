"""P2: grading gradient formulas, this grader against SymPy equivalence, in one run.

    .venv/bin/python bench/expressions.py [--repeats 15]

Grades the same answers (the SPEC's reference formulas, the hand-in, typical mistakes; text and
LaTeX) with the expression grader, and the text forms with `sympify(reference).equals(sympify(answer))`
as PrairieLearn-style symbolic equivalence would. SymPy runs here only, on translations of the
text forms (sums become Sum/Product, arrays IndexedBase, dot a product); it never sees student
input in the service. The grader's points are drawn once per question before timing (as a worker
does on its first answer), so the figures are the per-answer cost.
"""

from __future__ import annotations

import argparse
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
    arguments = parser.parse_args()

    loaded = read_material(ROOT / "reference" / "hw5")
    configs = {
        q.id: ExpressionConfig.model_validate(q.config)
        for q in loaded.material.questions
        if q.kind == "expression"
    }
    context = GradingContext(0, load_reference_functions(loaded.reference_source, loaded.content_hash))
    grader = ExpressionGrader()
    for config in configs.values():
        grader.points_for(config, context)  # drawn once per process, before timing

    rows = []
    for question, label, answer_format, answer in ANSWERS:
        config = configs[question]
        payload = {"expression": answer, "format": answer_format}
        result = grader.grade_raw_answer(config, payload, context)
        ours = median_ms(partial(grader.grade_raw_answer, config, payload, context), arguments.repeats)
        theirs: float | None = None
        verdict_sympy = "-"
        if answer_format == "text":
            equal = sympy_equivalent(REFERENCES[question], answer)
            verdict_sympy = {True: "equal", False: "differ", None: "unknown"}[equal]
            check = partial(sympy_equivalent, REFERENCES[question], answer)
            theirs = median_ms(check, max(3, arguments.repeats // 3))
        rows.append((question, label, answer_format, result.verdict.value, ours, verdict_sympy, theirs))

    columns = ("question", "answer", "format", "verdict", "ours ms", "sympy", "sympy ms", "ratio")
    header = "{:8} {:10} {:6} {:10} {:>8} {:8} {:>9} {:>7}".format(*columns)
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
    print(f"median per text answer:  {median_text:7.2f} ms (target <= 2 ms)  {passed(median_text <= 2)}")
    print(f"median per LaTeX answer: {median_latex:7.2f} ms (target <= 10 ms) {passed(median_latex <= 10)}")
    print(f"median SymPy per text answer: {median_sympy:.1f} ms")
    print(
        f"ratio of the medians, SymPy / ours (text): {speedup:.0f}x (target >= 20x) {passed(speedup >= 20)}"
    )


def passed(condition: bool) -> str:
    return "PASS" if condition else "MISS"


if __name__ == "__main__":
    main()
