"""A formula as the grader read it (its `read_as_latex`), typeset as MathML on the server.

latex2mathml turns LaTeX into MathML, but it passes some input through as markup (`\\text{<b>}`
comes out as a raw `<b>` element; `\\href{javascript:...}` as an `href` attribute), and the LaTeX
is written from a student's answer. So its output is parsed as XML and written out again
element by element: only MathML elements and presentational attributes survive, every text is
escaped, and anything else makes the formula fall back to its LaTeX shown as text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from html import escape

from latex2mathml.converter import convert
from markupsafe import Markup

MATHML = "http://www.w3.org/1998/Math/MathML"
# The grader writes a reading back in a few hundred characters; far more is not a formula we show.
MAX_LATEX_CHARS = 4_000
# Presentation MathML's elements (MathML Core and what latex2mathml writes).
# fmt: off
ELEMENTS = frozenset({
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup", "munder",
    "mover", "munderover", "mfrac", "msqrt", "mroot", "mstyle", "mpadded", "mphantom", "menclose",
    "mfenced", "mtable", "mtr", "mtd", "mlabeledtr", "merror", "maction", "mmultiscripts",
    "mprescripts", "none", "semantics", "annotation",
})
# Layout only: no href, no colours or styles, no event handlers, no ids.
ATTRIBUTES = frozenset({
    "display", "mathvariant", "stretchy", "fence", "form", "separator", "lspace", "rspace", "accent",
    "accentunder", "linethickness", "columnalign", "rowalign", "columnspacing", "rowspacing",
    "columnlines", "rowlines", "frame", "displaystyle", "scriptlevel", "minsize", "maxsize",
    "movablelimits", "largeop", "symmetric", "width", "height", "depth", "notation", "open", "close",
    "separators", "mathsize", "align",
})
# fmt: on


class Unsafe(Exception):
    """latex2mathml wrote something that is not plain presentation MathML."""


def typeset(latex: str) -> Markup | None:
    """The formula as a `<math>` element, or None when it cannot be typeset safely (too long,
    not understood by latex2mathml, or markup beyond presentation MathML): show the LaTeX then."""
    if not latex.strip() or len(latex) > MAX_LATEX_CHARS:
        return None
    try:
        # Our own converter's output, not a document from outside; expat refuses entity expansion bombs.
        root = ElementTree.fromstring(convert(latex))  # noqa: S314
        return Markup(_write(root))  # noqa: S704 (_write escapes every text and attribute)
    # Unsafe, or what latex2mathml raises on LaTeX it cannot follow: its own errors, and
    # IndexError, KeyError ... from its parser. A formula that cannot be typeset is shown as text.
    except Exception:
        return None


def _write(element: ElementTree.Element) -> str:
    namespace, _, name = element.tag.rpartition("}")
    if namespace.lstrip("{") != MATHML or name not in ELEMENTS:
        raise Unsafe(element.tag)
    attributes = "".join(
        f' {key}="{escape(value, quote=True)}"' for key, value in element.attrib.items() if key in ATTRIBUTES
    )
    if name == "math":
        attributes = f' xmlns="{MATHML}"' + attributes
    inner = escape(element.text or "", quote=False)
    inner += "".join(_write(child) + escape(child.tail or "", quote=False) for child in element)
    return f"<{name}{attributes}>{inner}</{name}>"
