"""The notation corpus: answers written the ways students write them, the expression grader's oracle.

Every correct entry is a right answer to its question in a standard notation: as textbooks and
lecture notes typeset it (Goodfellow et al.'s *Deep Learning*, *Dive into Deep Learning*, Bishop's
*PRML*), as the LaTeX math editors of LMS quiz boxes emit it (MathQuill, MathLive), as hand-typed in
Overleaf, or as typed into a plain formula box. Every wrong entry carries the mistakes its feedback
must name. `source` says where each spelling comes from. test_notation_corpus.py grades all of it
through the grader's public API; checked by hand for mathematical correctness, entry by entry.

Questions: hw5's Q2 (reference/hw5, /work/shared/hw5/SPEC.md) and the matrix question set
tests/graders/material/layers (y = W x + b with column vectors; softmax cross-entropy; O = A V).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from graders import GradingContext
from graders.expression import ExpressionConfig
from tests.graders.hw5_expressions import HANDIN_LATEX, expression_questions, hw5

LAYERS_FOLDER = Path(__file__).parent / "material" / "layers"
HW5_QUESTIONS = ("q2_1", "q2_2", "q2_3", "q2_4")
LAYERS_QUESTIONS = ("lin_dW", "lin_dx", "lin_db", "ce_dz", "att_dV", "att_dA")


@dataclass(frozen=True)
class Written:
    question: str  # "q2_1".."q2_4" (hw5) or a question id of the layers material
    answer: str
    format: str | None  # None = auto-detect, as a student submits
    source: str  # "Goodfellow", "D2L", "Bishop", "MathQuill", "MathLive", "Overleaf", "text box", ...
    correct: bool = True
    mistakes: tuple[
        str, ...
    ] = ()  # wrong answers: Diagnosis values and/or feedback fragments that must appear


def material(name: str) -> tuple[dict[str, ExpressionConfig], GradingContext]:
    """The expression questions of "hw5" or "layers" and a context holding their references."""
    if name == "hw5":
        return hw5()
    if name == "layers":
        return _layers()
    raise KeyError(f"no material {name!r}: known are 'hw5' and 'layers'")


def material_name(question: str) -> str:
    return "hw5" if question in HW5_QUESTIONS else "layers"


@lru_cache(maxsize=1)
def _layers() -> tuple[dict[str, ExpressionConfig], GradingContext]:
    return expression_questions(LAYERS_FOLDER)


# Where a notation comes from. A textbook named here typesets the expression this way (its symbols
# renamed to the question's); an editor named here emits these commands for what a student types.
SPEC = "hw5 SPEC (the reference formula)"
GOODFELLOW = "Goodfellow et al., Deep Learning: \\boldsymbol vectors, ^\\top, \\odot (ch. 2, 10.2.2)"
GOODFELLOW_RNN = "Goodfellow et al., Deep Learning 10.2.2: BPTT gradients (eqs. 10.18-10.26) in scalar form"
D2L = "Dive into Deep Learning: \\mathrm{softmax}, ^\\top, \\odot, softmax(o) - y"
BISHOP = "Bishop, PRML: \\mathbf vectors, transpose as ^{\\mathrm{T}}, softmax gradient y - t"
MATHQUILL = (
    "MathQuill (LMS quiz editor): \\left( \\right), \\cdot, ^{\\prime}, \\operatorname{}, braced scripts"
)
MATHLIVE = "MathLive (LMS quiz editor): braces everywhere, \\frac{}{}, \\mathrm{}, ^{\\prime}"
OVERLEAF = "Overleaf, hand-typed: \\displaystyle, \\limits, \\mathbf, \\bm, \\, and $ delimiters"
TEXT_BOX = "text box (numpy/Python spelling)"
TEXT_CARET = "text box with ^ for power (PrairieLearn, WeBWorK)"
LECTURE = "lecture notes: a bound variable other than the declared index names"
IDENTITY = "standard identity (one-hot targets sum to 1; tanh' = 1 - tanh^2 = sech^2; h = tanh z)"
HANDIN = "the hw5 hand-in (tests/graders/hw5_expressions.py)"
TYPICAL = "a typical student mistake"


def _ok(question: str, answer: str, source: str, answer_format: str | None = None) -> Written:
    return Written(question, answer, answer_format, source)


def _wrong(
    question: str, answer: str, source: str, mistakes: tuple[str, ...], fmt: str | None = None
) -> Written:
    return Written(question, answer, fmt, source, correct=False, mistakes=mistakes)


# dJ_t/do_t = yhat_t - y_t (a vector of 2).
_Q2_1 = (
    _ok("q2_1", r"\hat{y}_t - y_t", SPEC),
    _ok("q2_1", r"\hat{y}_{t}-y_{t}", MATHQUILL),
    _ok("q2_1", r"\left(\hat{y}_{t}-y_{t}\right)", MATHQUILL),
    _ok("q2_1", r"\hat y_t - y_t", OVERLEAF),
    _ok("q2_1", r"\widehat{y}_t - y_t", OVERLEAF),
    _ok("q2_1", r"-(y_t - \hat{y}_t)", SPEC),
    _ok("q2_1", r"-\left(y_{t}-\hat{y}_{t}\right)", MATHQUILL),
    _ok("q2_1", r"-y_t + \hat{y}_t", OVERLEAF),
    _ok("q2_1", r"\hat{y}_{t}+\left(-y_{t}\right)", MATHQUILL),
    _ok("q2_1", r"\hat{\mathbf{y}}_t - \mathbf{y}_t", BISHOP),
    _ok("q2_1", r"\hat{\boldsymbol{y}}_t - \boldsymbol{y}_t", GOODFELLOW),
    _ok("q2_1", r"\mathbf{\hat{y}}_t - \mathbf{y}_t", OVERLEAF),
    _ok("q2_1", r"\hat{\bm{y}}_t - \bm{y}_t", OVERLEAF),
    _ok("q2_1", r"\hat{\mathbf y}_t - \mathbf y_t", OVERLEAF),
    _ok("q2_1", r"{\hat{y}}_{t}-{y}_{t}", MATHLIVE),
    _ok("q2_1", r"\left[\hat{y}_t - y_t\right]", OVERLEAF),
    _ok("q2_1", r"\operatorname{softmax}(o_t) - y_t", MATHQUILL),
    _ok("q2_1", r"\operatorname{softmax}\left(o_{t}\right)-y_{t}", MATHQUILL),
    _ok("q2_1", r"\mathrm{softmax}(o_t) - y_t", D2L),
    _ok("q2_1", r"\text{softmax}(o_t) - y_t", OVERLEAF),
    _ok("q2_1", r"\mathrm{softmax}\left(\boldsymbol{o}_t\right) - \boldsymbol{y}_t", D2L),
    _ok("q2_1", r"\operatorname{softmax}(w_{yh} h_t) - y_t", SPEC),
    _ok("q2_1", r"\operatorname{softmax}\left(w_{yh}\tanh\left(z_{t}\right)\right)-y_{t}", MATHQUILL),
    _ok("q2_1", r"\mathrm{softmax}(h_t w_{yh}) - y_t", D2L),
    _ok("q2_1", r"\frac{\exp(o_t)}{\sum_{j=1}^{2}\exp(o_{t,j})} - y_t", BISHOP),
    _ok("q2_1", r"\displaystyle \hat{y}_t - y_t", OVERLEAF),
    _ok("q2_1", r"$\hat{y}_t - y_t$", OVERLEAF),
    _ok("q2_1", r"$$\hat{y}_t - y_t$$", OVERLEAF),
    _ok("q2_1", r"\(\hat{y}_t - y_t\)", OVERLEAF),
    _ok("q2_1", r"\[\hat{y}_t - y_t\]", OVERLEAF),
    _ok("q2_1", r"\hat{y}_t \sum_{j=1}^{2} y_{t,j} - y_t", GOODFELLOW_RNN + "; " + IDENTITY),
    _ok("q2_1", r"\left(\sum\limits_{j=1}^{2} y_{t,j}\right)\hat{y}_{t} - y_{t}", OVERLEAF + "; " + IDENTITY),
    _ok("q2_1", r"\hat{y}_t - y_t = -(y_t - \hat{y}_t)", OVERLEAF),
    _ok("q2_1", r"\frac{\partial J_t}{\partial o_t} = \hat{y}_t - y_t", OVERLEAF),
    _ok("q2_1", r"\operatorname{softmax}(o_t) - y_t = \hat{y}_t - y_t", MATHQUILL),
    _ok("q2_1", "yhat[t] - y[t]", TEXT_BOX, "text"),
    _ok("q2_1", "yhat[t] - y[t]", TEXT_BOX + " (format detected)"),
    _ok("q2_1", "softmax(o[t]) - y[t]", TEXT_BOX),
    _ok("q2_1", "-(y[t] - yhat[t])", TEXT_BOX),
    _ok("q2_1", "exp(o[t]) / sum(exp(o[t])) - y[t]", TEXT_BOX),
    _ok("q2_1", "yhat[t] * sum(y[t]) - y[t]", TEXT_BOX + "; " + IDENTITY),
    _ok("q2_1", "softmax(w_yh * h[t]) - y[t]", TEXT_BOX),
)

# dJ_t/dh_i = (w_yh . g_o[t]) w_hh^(t-i) prod_{k=i+1}^{t} psi'(z_k) (a scalar).
_PSI = r"\prod_{k=i+1}^{t} \psi'(z_k)"
_DOT = r"w_{yh}^\top g_{o,t}"
_Q2_2 = (
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} {_PSI}", SPEC),
    _ok("q2_2", r"w_{yh}^T g_{ot} w_{hh}^{t-i} \prod_{k=i+1}^t \psi'(z_k)", OVERLEAF),
    _ok("q2_2", r"g_{ot}^T w_{yh} w_{hh}^{t-i} \prod_{k=i+1}^t \psi'(z_k)", OVERLEAF),
    _ok("q2_2", rf"g_{{o,t}}^\top w_{{yh}} \, w_{{hh}}^{{t-i}} {_PSI}", GOODFELLOW),
    _ok("q2_2", r"g_{o,t}^{\mathrm{T}} w_{yh} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \psi'(z_k)", BISHOP),
    _ok("q2_2", r"w_{yh}^\intercal g_{o,t} \, w_{hh}^{t-i} \prod_{k=i+1}^{t} \psi'(z_k)", OVERLEAF),
    _ok(
        "q2_2",
        r"w_{yh}^{\top}g_{o,t}\,w_{hh}^{t-i}\prod\limits_{k=i+1}^{t}\psi^{\prime}\left(z_{k}\right)",
        MATHQUILL,
    ),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} \psi^\prime(z_k)", OVERLEAF),
    _ok("q2_2", rf"\displaystyle {_DOT} \, w_{{hh}}^{{t-i}} {_PSI}", OVERLEAF),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod\nolimits_{{k=i+1}}^{{t}} \psi'(z_k)", OVERLEAF),
    _ok("q2_2", rf"{_DOT} \prod_{{k=i+1}}^{{t}} w_{{hh}} \psi'(z_k)", GOODFELLOW_RNN),
    _ok(
        "q2_2", rf"{_DOT} \prod_{{k=i+1}}^{{t}} w_{{hh}} (1 - \tanh^2(z_k))", GOODFELLOW_RNN + "; " + IDENTITY
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} (1 - \tanh(z_k)^2)",
        OVERLEAF + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        r"w_{yh}^{\top}g_{o,t}w_{hh}^{t-i}\prod_{k=i+1}^{t}\left(1-\tanh\left(z_{k}\right)^{2}\right)",
        MATHQUILL + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} (1 - \tanh^{{2}} z_k)",
        OVERLEAF + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} (1 - h_k^2)",
        GOODFELLOW_RNN + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} (1 - \psi(z_k)^2)",
        OVERLEAF + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} (1 - \psi^2(z_k))",
        OVERLEAF + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} "
        r"\frac{4}{\left(\exp(z_k)+\exp(-z_k)\right)^2}",
        MATHLIVE + "; " + IDENTITY,
    ),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{j=i+1}}^{{t}} \psi'(z_j)", LECTURE),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{\tau=i+1}}^{{t}} \psi'(z_\tau)", LECTURE + " (Greek)"),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{s=i+1}}^{{t}} \psi'(z_s)", LECTURE),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i}}^{{t-1}} \psi'(z_{{k+1}})", OVERLEAF),
    _ok(
        "q2_2",
        rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=0}}^{{t-i-1}} \psi'(z_{{t-k}})",
        HANDIN + " (corrected)",
    ),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=1}}^{{t-i}} \psi'(z_{{i+k}})", OVERLEAF),
    _ok("q2_2", rf"w_{{yh}} \cdot g_{{o,t}} \, w_{{hh}}^{{t-i}} {_PSI}", MATHQUILL),
    _ok("q2_2", rf"\left(w_{{yh}}^{{\top}}g_{{o,t}}\right)w_{{hh}}^{{t-i}}{_PSI}", MATHQUILL),
    _ok("q2_2", rf"{_DOT} \cdot w_{{hh}}^{{t-i}} \cdot {_PSI}", MATHQUILL),
    _ok("q2_2", rf"\mathbf{{w}}_{{yh}}^\top \mathbf{{g}}_{{o,t}} \, w_{{hh}}^{{t-i}} {_PSI}", BISHOP),
    _ok(
        "q2_2",
        rf"\boldsymbol{{w}}_{{yh}}^{{\top}}\boldsymbol{{g}}_{{o,t}}\, w_{{hh}}^{{t-i}} {_PSI}",
        GOODFELLOW,
    ),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} \operatorname{{dpsi}}(z_k)", MATHQUILL),
    _ok("q2_2", rf"w_{{hh}}^{{t-i}} \, {_DOT} {_PSI}", OVERLEAF),
    _ok("q2_2", rf"\left(\prod_{{k=i+1}}^{{t}} w_{{hh}}\,\psi'(z_k)\right) {_DOT}", GOODFELLOW_RNN),
    _ok(
        "q2_2",
        r"g_{o,t}^\top w_{yh} \prod_{k=i+1}^{t} w_{hh} (1 - h_k^2)",
        GOODFELLOW_RNN + "; " + IDENTITY,
    ),
    _ok(
        "q2_2",
        rf"\langle w_{{yh}}, g_{{o,t}} \rangle \, w_{{hh}}^{{t-i}} {_PSI}",
        "inner-product brackets (Bishop)",
    ),
    _ok("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} \tanh'(z_k)", OVERLEAF + "; psi = tanh"),
    _ok("q2_2", "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))", TEXT_BOX),
    _ok("q2_2", "dot(g_o[t], w_yh) * w_hh^(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))", TEXT_CARET),
    _ok("q2_2", "w_yh @ g_o[t] * w_hh**(t-i) * prod(1 - tanh(z[k])**2 for k in range(i+1, t+1))", TEXT_BOX),
    _ok("q2_2", "sum(w_yh * g_o[t]) * prod(w_hh * dpsi(z[k]) for k in range(i+1, t+1))", TEXT_BOX),
    _ok(
        "q2_2",
        "sum(w_yh[j] * g_o[t, j] for j in range(1, 3)) * w_hh**(t-i) "
        "* prod(1 - h[k]**2 for k in range(i+1, t+1))",
        TEXT_BOX + "; " + IDENTITY,
    ),
    _ok("q2_2", "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[i+k]) for k in range(1, t-i+1))", TEXT_BOX),
    _ok("q2_2", "w_yh.T @ g_o[t] * w_hh^(t - i) * prod(1 - h[k]^2 for k in range(i + 1, t + 1))", TEXT_CARET),
)

# dJ_t/dw_hh = sum_{i=1}^{t} g_h[i] psi'(z_i) h_{i-1} (a scalar).
_Q2_3 = (
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \, \psi'(z_i) \, h_{i-1}", SPEC),
    _ok("q2_3", r"\sum_{i=1}^t g_{hi} \psi'(z_i) h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum\limits_{i=1}^{t} g_{h,i}\,\psi'(z_i)\,h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\displaystyle\sum_{i=1}^{t} g_{h,i}\psi'(z_i)h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\displaystyle\sum\limits_{i=1}^{t} g_{h,i}\;\psi^\prime(z_i)\;h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \psi^\prime(z_i) h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t}g_{h,i}\psi^{\prime}\left(z_{i}\right)h_{i-1}", MATHQUILL),
    _ok("q2_3", r"\sum_{i=1}^{t}\left(g_{h,i}\psi'\left(z_i\right)h_{i-1}\right)", MATHQUILL),
    _ok("q2_3", r"\sum_{i=1}^{t}{g_{h,i}\psi'(z_i)h_{i-1}}", MATHLIVE),
    _ok("q2_3", r"\sum_{k=1}^{t} g_{h,k} \psi'(z_k) h_{k-1}", SPEC),
    _ok("q2_3", r"\sum_{j=1}^{t} g_{h,j} \psi'(z_j) h_{j-1}", LECTURE),
    _ok("q2_3", r"\sum_{\tau=1}^{t} g_{h,\tau} \psi'(z_\tau) h_{\tau-1}", LECTURE + " (Greek)"),
    _ok("q2_3", r"\sum_{s=1}^{t} g_{h,s}\,\psi'(z_s)\,h_{s-1}", LECTURE),
    _ok("q2_3", r"\sum_{i=0}^{t-1} g_{h,i+1} \psi'(z_{i+1}) h_i", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} (1 - h_i^2) h_{i-1}", GOODFELLOW_RNN + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t}g_{hi}\left(1-h_{i}^{2}\right)h_{i-1}", MATHQUILL + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} (1 - \tanh^2(z_i)) h_{i-1}", OVERLEAF + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \left(1 - \tanh(z_i)^2\right) h_{i-1}", OVERLEAF + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} (1 - \tanh^2 z_i) h_{i-1}", OVERLEAF + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} (1 - \psi(z_i)^2) h_{i-1}", OVERLEAF + "; " + IDENTITY),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \cdot \psi'(z_i) \cdot h_{i-1}", MATHQUILL),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \times \psi'(z_i) \times h_{i-1}", HANDIN + " (corrected)"),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} * \psi'(z_i) * h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} h_{i-1} \psi'(z_i) g_{h,i}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} \psi'(z_i) \, g_{h,i} \, h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} h_{i-1} \psi'(z_i)", OVERLEAF),
    _ok("q2_3", r"g_{h,t}\psi'(z_t)h_{t-1} + \sum_{i=1}^{t-1} g_{h,i}\psi'(z_i)h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \odot \psi'(z_i) \odot h_{i-1}", GOODFELLOW),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \circ \psi'(z_i) \circ h_{i-1}", OVERLEAF),
    _ok("q2_3", r"\sum_{i=1}^{t} (1 - h_i^2) \, g_{h,i} \, h_{i-1}^{\top}", GOODFELLOW_RNN),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \operatorname{dpsi}(z_i) h_{i-1}", MATHQUILL),
    _ok("q2_3", r"\sum_{i=1}^{t} g_{h,i} \psi'(w_{hh} h_{i-1} + w_{hx} x_i) h_{i-1}", SPEC),
    _ok(
        "q2_3",
        r"\sum_{i=1}^{t}g_{h,i}\left(1-\tanh^{2}\left(w_{hh}h_{i-1}+w_{hx}x_{i}\right)\right)h_{i-1}",
        MATHQUILL + "; " + IDENTITY,
    ),
    _ok(
        "q2_3",
        r"\sum_{i=1}^{t} g_{h,i}\,\frac{4\,h_{i-1}}{\left(\exp(z_i)+\exp(-z_i)\right)^{2}}",
        MATHLIVE + "; " + IDENTITY,
    ),
    _ok(
        "q2_3",
        r"\sum_{i=1}^{t} g_{h,i}\psi'(z_i)h_{i-1} = \sum_{i=1}^{t} g_{h,i}(1-h_i^2)h_{i-1}",
        OVERLEAF + "; " + IDENTITY,
    ),
    _ok("q2_3", r"$\sum_{i=1}^{t} g_{h,i} \psi'(z_i) h_{i-1}$", OVERLEAF),
    _ok("q2_3", "sum(g_h[i] * dpsi(z[i]) * h[i-1] for i in range(1, t+1))", TEXT_BOX),
    _ok("q2_3", "sum(g_h[k]*(1-tanh(z[k])**2)*h[k-1] for k in range(1,t+1))", TEXT_BOX + "; " + IDENTITY),
    _ok("q2_3", "sum(g_h[i]*(1-h[i]^2)*h[i-1] for i in range(1,t+1))", TEXT_CARET + "; " + IDENTITY),
    _ok("q2_3", "sum(g_h[j] * dpsi(z[j]) * h[j-1] for j in range(1, t+1))", TEXT_BOX + "; " + LECTURE),
    _ok("q2_3", "sum(g_h[i+1]*dpsi(z[i+1])*h[i] for i in range(t))", TEXT_BOX),
    _ok(
        "q2_3", "sum(g_h[i] * (1 - psi(z[i])**2) * h[i-1] for i in range(1, t+1))", TEXT_BOX + "; " + IDENTITY
    ),
    _ok(
        "q2_3",
        "sum(g_h[i] * (1 - tanh(z[i])^2) * h[i-1] for i in range(1, t+1))",
        TEXT_CARET + "; " + IDENTITY,
    ),
)

# dJ/dw_hh = sum_{t=1}^{3} gw_hh[t] (a scalar).
_Q2_4 = (
    _ok("q2_4", r"\sum_{t=1}^{3} gw_{hh,t}", SPEC),
    _ok("q2_4", HANDIN_LATEX["q2_4"], HANDIN),
    _ok("q2_4", r"\sum\limits_{t=1}^{3} gw_{hh,t}", OVERLEAF),
    _ok("q2_4", r"\displaystyle\sum_{t=1}^{3} gw_{hh,t}", OVERLEAF),
    _ok("q2_4", r"\displaystyle\sum\limits_{t=1}^{3}{gw_{hh,t}}", OVERLEAF),
    _ok("q2_4", r"\textstyle\sum_{t=1}^{3} gw_{hh,t}", OVERLEAF),
    _ok("q2_4", r"gw_{hh,1} + gw_{hh,2} + gw_{hh,3}", "hand-typed, no format (issue 10)"),
    _ok("q2_4", r"gw_{hh,1}+gw_{hh,2}+gw_{hh,3}", MATHLIVE, "latex"),
    _ok("q2_4", r"gw_{hh,3} + gw_{hh,2} + gw_{hh,1}", "hand-typed, no format"),
    _ok("q2_4", r"\left(gw_{hh,1}+gw_{hh,2}\right)+gw_{hh,3}", MATHQUILL),
    _ok("q2_4", r"\sum_{k=1}^{3} gw_{hh,k}", SPEC),
    _ok("q2_4", r"\sum_{i=1}^{3} gw_{hh,i}", SPEC),
    _ok("q2_4", r"\sum_{j=1}^{3} gw_{hh,j}", LECTURE),
    _ok("q2_4", r"\sum_{\tau=1}^{3} gw_{hh,\tau}", LECTURE + " (Greek)"),
    _ok("q2_4", r"\sum_{s=1}^{3} gw_{hh,s}", LECTURE),
    _ok("q2_4", r"\sum_{n=1}^{3} gw_{hh,n}", LECTURE),
    _ok("q2_4", r"\sum_{t=0}^{2} gw_{hh,t+1}", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{3}\left(gw_{hh,t}\right)", MATHQUILL),
    _ok("q2_4", r"\sum_{t=1}^{3}{gw_{hh,t}}", MATHLIVE),
    _ok("q2_4", r"\sum_{t=1}^{3} \left[ gw_{hh,t} \right]", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{3} \mathrm{gw}_{hh,t}", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{3} \mathit{gw}_{hh,t}", OVERLEAF),
    _ok("q2_4", r"$\sum_{t=1}^{3} gw_{hh,t}$", OVERLEAF),
    _ok("q2_4", r"$$\sum_{t=1}^3 gw_{hh,t}$$", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{3} gw_{hh,t} = gw_{hh,1} + gw_{hh,2} + gw_{hh,3}", OVERLEAF),
    _ok("q2_4", r"\frac{\partial J}{\partial w_{hh}} = \sum_{t=1}^{3} gw_{hh,t}", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{2} gw_{hh,t} + gw_{hh,3}", OVERLEAF),
    _ok("q2_4", r"gw_{hh,1} + \sum_{t=2}^{3} gw_{hh,t}", OVERLEAF),
    _ok("q2_4", r"\sum_{t=1}^{3} gw_{hh,4-t}", OVERLEAF),
    _ok("q2_4", r"gw_{hh,1}+\left(gw_{hh,2}+gw_{hh,3}\right)", MATHQUILL),
    _ok("q2_4", "gw_hh[1] + gw_hh[2] + gw_hh[3]", TEXT_BOX),
    _ok("q2_4", "sum(gw_hh[4 - t] for t in range(1, 4))", TEXT_BOX),
    _ok("q2_4", "sum(gw_hh[t] for t in range(1, 4))", TEXT_BOX),
    _ok("q2_4", "sum(gw_hh[k] for k in range(1,4))", TEXT_BOX),
    _ok("q2_4", "sum(gw_hh[j] for j in range(1, 4))", TEXT_BOX + "; " + LECTURE),
    _ok("q2_4", "sum(gw_hh[t+1] for t in range(3))", TEXT_BOX),
    _ok("q2_4", "sum(gw_hh[t] for t in range(1, 3+1))", TEXT_BOX),
    _ok("q2_4", "gw_hh[3] + gw_hh[2] + gw_hh[1]", TEXT_BOX, "text"),
)

# The layers material: y = W x + b, L = 1/2 ||y - t||^2; L = -sum_j c_j log softmax(z)_j;
# O = A V with dL/dO = G. Column vectors are n x 1 matrices; z, c, p are 1-D.
_LAYERS = (
    # dL/dW = (y - t) x^T (2 x 3): the outer product every linear layer's weight gradient is.
    _ok("lin_dW", r"(y - t) x^\top", GOODFELLOW),
    _ok("lin_dW", r"(y-t)x^T", OVERLEAF),
    _ok("lin_dW", r"(Wx + b - t)x^T", "lecture notes (issue 10)"),
    _ok("lin_dW", r"\left(\mathbf{y}-\mathbf{t}\right)\mathbf{x}^{\top}", MATHQUILL + "; " + BISHOP),
    _ok("lin_dW", r"(\mathbf{y} - \mathbf{t}) \cdot \mathbf{x}^T", MATHQUILL),
    _ok("lin_dW", r"(\mathbf{y} - \mathbf{t})\,\mathbf{x}^{\mathrm{T}}", BISHOP),
    _ok("lin_dW", r"(\boldsymbol{y} - \boldsymbol{t})\boldsymbol{x}^{\top}", GOODFELLOW),
    _ok("lin_dW", r"y x^\top - t x^\top", D2L),
    _ok("lin_dW", r"\frac{\partial L}{\partial W} = (y - t) x^\top", OVERLEAF),
    _ok("lin_dW", "(y - t) @ x.T", TEXT_BOX),
    _ok("lin_dW", "(W @ x + b - t) @ transpose(x)", TEXT_BOX),
    # dL/dx = W^T (y - t) (3 x 1).
    _ok("lin_dx", r"W^\top (y - t)", GOODFELLOW),
    _ok("lin_dx", r"W^T(Wx + b - t)", OVERLEAF),
    _ok("lin_dx", r"\mathbf{W}^{\top}(\mathbf{y}-\mathbf{t})", BISHOP),
    _ok("lin_dx", r"\mathbf{W}^{\mathrm{T}}\left(\mathbf{y}-\mathbf{t}\right)", BISHOP + "; " + MATHQUILL),
    _ok("lin_dx", r"W^{\top} \cdot (y - t)", MATHQUILL),
    _ok("lin_dx", r"W^\top y - W^\top t", D2L),
    _ok("lin_dx", r"\left((y - t)^\top W\right)^\top", OVERLEAF),
    _ok("lin_dx", "W.T @ (y - t)", TEXT_BOX),
    _ok("lin_dx", "transpose(W) @ (W @ x + b - t)", TEXT_BOX),
    # dL/db = y - t (2 x 1).
    _ok("lin_db", r"y - t", GOODFELLOW),
    _ok("lin_db", r"\mathbf{y}-\mathbf{t}", BISHOP),
    _ok("lin_db", r"\boldsymbol{y} - \boldsymbol{t}", GOODFELLOW),
    _ok("lin_db", r"Wx + b - t", "lecture notes"),
    _ok("lin_db", r"\mathbf{W}\mathbf{x}+\mathbf{b}-\mathbf{t}", BISHOP),
    _ok("lin_db", r"-\left(t-y\right)", MATHQUILL),
    _ok("lin_db", "y - t", TEXT_BOX, "text"),
    _ok("lin_db", "W @ x + b - t", TEXT_BOX),
    # dL/dz = softmax(z) - c = p - c (a vector of 4).
    _ok("ce_dz", r"\operatorname{softmax}(z) - c", MATHQUILL),
    _ok("ce_dz", r"\operatorname{softmax}\left(z\right)-c", MATHQUILL),
    _ok("ce_dz", r"\mathrm{softmax}(\mathbf{z}) - \mathbf{c}", D2L),
    _ok("ce_dz", r"\text{softmax}(z) - c", OVERLEAF),
    _ok("ce_dz", r"p - c", BISHOP),
    _ok("ce_dz", r"\mathbf{p} - \mathbf{c}", BISHOP),
    _ok("ce_dz", r"\boldsymbol{p}-\boldsymbol{c}", GOODFELLOW),
    _ok("ce_dz", r"-(c - p)", OVERLEAF),
    _ok("ce_dz", r"\operatorname{softmax}(z) - c = p - c", OVERLEAF),
    _ok("ce_dz", "p - c", TEXT_BOX, "text"),
    _ok("ce_dz", "softmax(z) - c", TEXT_BOX),
    _ok("ce_dz", "exp(z) / sum(exp(z)) - c", TEXT_BOX),
    # dL/dV = A^T G (4 x 2).
    _ok("att_dV", r"A^\top G", GOODFELLOW),
    _ok("att_dV", r"A^T G", OVERLEAF),
    _ok("att_dV", r"A^{\top}G", MATHQUILL),
    _ok("att_dV", r"\mathbf{A}^\top \mathbf{G}", BISHOP),
    _ok("att_dV", r"A^{\mathrm{T}} G", BISHOP),
    _ok("att_dV", r"A^\top \cdot G", MATHQUILL),
    _ok("att_dV", r"\left(G^{\top}A\right)^{\top}", MATHQUILL),
    _ok("att_dV", "A.T @ G", TEXT_BOX),
    _ok("att_dV", "transpose(A) @ G", TEXT_BOX),
    # dL/dA = G V^T (3 x 4).
    _ok("att_dA", r"G V^\top", GOODFELLOW),
    _ok("att_dA", r"GV^T", OVERLEAF),
    _ok("att_dA", r"G V^{\top}", MATHQUILL),
    _ok("att_dA", r"\mathbf{G}\mathbf{V}^{\top}", BISHOP),
    _ok("att_dA", r"G \cdot V^T", MATHQUILL),
    _ok("att_dA", r"\left(V G^\top\right)^\top", OVERLEAF),
    _ok("att_dA", "G @ V.T", TEXT_BOX),
    _ok("att_dA", "G @ transpose(V)", TEXT_BOX),
)

# Wrong answers, each with the mistakes its feedback must name (Diagnosis values, or fragments).
_WRONG = (
    # hw5 hand-in: q2_1 is a scalar where a vector is due; q2_2 has an elementwise product where the
    # dot product is due *and* psi'(z_t) where psi'(z_{t-k}) is due; q2_3 has h_{t-1} for h_{i-1}.
    _wrong("q2_1", HANDIN_LATEX["q2_1"], HANDIN, ("shape",)),
    _wrong("q2_2", HANDIN_LATEX["q2_2"], HANDIN, ("shape", "index")),
    _wrong("q2_3", HANDIN_LATEX["q2_3"], HANDIN, ("index", "index of h")),
    # sign
    _wrong("q2_1", r"y_t - \hat{y}_t", TYPICAL, ("sign",)),
    _wrong("q2_1", r"-\left(\hat{y}_{t}-y_{t}\right)", MATHQUILL, ("sign",)),
    _wrong("q2_1", "y[t] - yhat[t]", TEXT_BOX, ("sign",)),
    _wrong("q2_2", rf"-{_DOT} \, w_{{hh}}^{{t-i}} {_PSI}", TYPICAL, ("sign",)),
    _wrong("q2_3", r"-\sum_{i=1}^{t} g_{h,i}\,\psi'(z_i)\,h_{i-1}", TYPICAL, ("sign",)),
    _wrong("q2_4", r"-\sum_{t=1}^{3} gw_{hh,t}", TYPICAL, ("sign",)),
    _wrong("lin_dW", r"(t - y) x^\top", TYPICAL, ("sign",)),
    _wrong("lin_dx", r"W^\top (t - y)", TYPICAL, ("sign",)),
    _wrong("lin_db", r"t - y", TYPICAL, ("sign",)),
    _wrong("ce_dz", r"c - \operatorname{softmax}(z)", TYPICAL, ("sign",)),
    _wrong("att_dV", r"-A^\top G", TYPICAL, ("sign",)),
    # constant factor
    _wrong("q2_1", r"2(\hat{y}_t - y_t)", TYPICAL, ("factor",)),
    _wrong("q2_3", r"\frac{1}{2}\sum_{i=1}^{t} g_{h,i}\psi'(z_i)h_{i-1}", TYPICAL, ("factor",)),
    _wrong(
        "q2_4", r"\frac{1}{3}\sum_{t=1}^{3} gw_{hh,t}", "D2L averages the loss over time steps", ("factor",)
    ),
    _wrong("q2_4", "sum(gw_hh[t] for t in range(1, 4)) / 3", TEXT_BOX, ("factor",)),
    _wrong("lin_dW", r"2(y - t)x^\top", "the 1/2 of the loss forgotten", ("factor",)),
    _wrong("ce_dz", r"2(p - c)", TYPICAL, ("factor",)),
    # index
    _wrong("q2_1", r"\hat{y}_t - y_{t-1}", TYPICAL, ("index",)),
    _wrong("q2_1", r"\hat{y}_{t-1} - y_{t-1}", TYPICAL, ("index",)),
    _wrong("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} \psi'(z_t)", TYPICAL, ("index",)),
    _wrong("q2_3", r"\sum_{i=1}^{t} g_{h,i}\,\psi'(z_i)\,h_i", TYPICAL, ("index", "index of h")),
    _wrong("q2_3", r"\sum_{i=1}^{t} g_{h,i}\,\psi'(z_{i-1})\,h_{i-1}", TYPICAL, ("index",)),
    _wrong("q2_3", "sum(g_h[i] * dpsi(z[i]) * h[i] for i in range(1, t+1))", TEXT_BOX, ("index",)),
    _wrong("q2_4", r"\sum_{t=1}^{3} gw_{hh,t-1}", TYPICAL, ("index",)),
    _wrong("q2_4", r"gw_{hh,1} + gw_{hh,2} + gw_{hh,2}", TYPICAL, ("index",)),
    # shape: elementwise where the dot product is due, a scalar where a vector is due, factors
    # whose shapes do not fit
    _wrong("q2_2", rf"g_{{o,t}} \odot w_{{yh}} \, w_{{hh}}^{{t-i}} {_PSI}", GOODFELLOW, ("shape",)),
    _wrong("q2_2", rf"g_{{o,t}} \times w_{{yh}} \times w_{{hh}}^{{t-i}} \times {_PSI}", HANDIN, ("shape",)),
    _wrong(
        "q2_2",
        "g_o[t] * w_yh * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i+1, t+1))",
        TEXT_BOX,
        ("shape",),
    ),
    _wrong("q2_1", r"\sum_{j=1}^{2}(\hat{y}_{t,j} - y_{t,j})", TYPICAL, ("shape",)),
    _wrong("ce_dz", "sum(p - c)", TEXT_BOX, ("shape",)),
    _wrong("lin_dW", r"(y - t)^\top x", TYPICAL, ("shape",)),
    _wrong("lin_dW", r"(y - t) \odot x^\top", "Hadamard product where the outer product is due", ("shape",)),
    _wrong("lin_dx", r"W (y - t)", TYPICAL, ("shape",)),
    _wrong("lin_db", r"(y - t) x^\top", TYPICAL, ("shape",)),
    _wrong("att_dV", r"A G", TYPICAL, ("shape",)),
    _wrong("att_dA", r"G V", TYPICAL, ("shape",)),
    _wrong("att_dA", r"G \odot V^\top", "Hadamard product where the matrix product is due", ("shape",)),
    # transpose: the answer is the transpose of what is due
    _wrong("lin_dW", r"x (y - t)^\top", TYPICAL, ("transpose",)),
    _wrong("lin_dx", r"(y - t)^\top W", TYPICAL, ("transpose",)),
    _wrong("lin_db", r"(y - t)^\top", TYPICAL, ("transpose",)),
    _wrong("att_dV", r"G^\top A", TYPICAL, ("transpose",)),
    _wrong("att_dA", r"V G^\top", TYPICAL, ("transpose",)),
    _wrong("att_dA", "V @ G.T", TEXT_BOX, ("transpose",)),
    # wrong without a nameable mistake: only the verdict is checked
    _wrong("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i+1}} {_PSI}", TYPICAL, ()),
    _wrong("q2_2", rf"{_DOT} \, w_{{hh}}^{{t-i}} \prod_{{k=i+1}}^{{t}} \psi(z_k)", "psi for psi'", ()),
    _wrong("q2_3", r"\sum_{i=1}^{t} g_{h,i}\,h_{i-1}", "psi' left out", ()),
    _wrong("q2_4", r"gw_{hh,3}", "the last step only", ()),
    _wrong("ce_dz", r"-\frac{c}{p}", "dL/dp for dL/dz", ()),
)

CORPUS: tuple[Written, ...] = _Q2_1 + _Q2_2 + _Q2_3 + _Q2_4 + _LAYERS + _WRONG
