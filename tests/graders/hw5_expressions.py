"""The hw5 Q2 questions, loaded from the shipped material, for the expression tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from graders import GradingContext, get_grader
from graders.expression import ExpressionConfig, ExpressionGrader
from service.assignments.material import read_material
from service.assignments.references import load_reference_functions
from tests.conftest import HW5_FOLDER

GRADER = get_grader("expression")
assert isinstance(GRADER, ExpressionGrader)

# The SPEC's reference formulas, as text and as LaTeX.
REFERENCE_TEXT = {
    "q2_1": "yhat[t] - y[t]",
    "q2_2": "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))",
    "q2_3": "sum(g_h[i] * dpsi(z[i]) * h[i-1] for i in range(1, t+1))",
    "q2_4": "sum(gw_hh[t] for t in range(1, 4))",
}
REFERENCE_LATEX = {
    "q2_1": r"\hat{y}_t - y_t",
    "q2_2": r"w_{yh}^\top g_{o,t} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \psi'(z_k)",
    "q2_3": r"\sum_{i=1}^{t} g_{h,i} \, \psi'(z_i) \, h_{i-1}",
    "q2_4": r"\sum_{t=1}^{3} gw_{hh,t}",
}
# The student's hand-in (the SPEC's mapping table).
HANDIN_LATEX = {
    "q2_1": r"- \sum_{i=1}^2 y_{t,i} \times (1 - \hat{y}_{t,i})",
    "q2_2": r"g_{ot} \times w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)",
    "q2_3": r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}",
    "q2_4": r"\sum_{t=1}^3 gw_{hh,t}",
}


def expression_questions(folder: Path) -> tuple[dict[str, ExpressionConfig], GradingContext]:
    """A material folder's expression questions and the context that grades them."""
    loaded = read_material(folder)
    configs = {
        question.id: ExpressionConfig.model_validate(question.config)
        for question in loaded.material.questions
        if question.kind == "expression"
    }
    reference = load_reference_functions(loaded.reference_source, loaded.content_hash)
    return configs, GradingContext(0, reference)


@lru_cache(maxsize=1)
def hw5() -> tuple[dict[str, ExpressionConfig], GradingContext]:
    return expression_questions(HW5_FOLDER)
