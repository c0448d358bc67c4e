"""Resolving a LaTeX answer's raw parse tree against the question's declarations: whether `w_{hh}`
is a name, `h_{t-1}` an indexed symbol, `y_{t,i}` a component, `g_{ot}` the symbol g_o at t, is
read from the declared spellings, never guessed; function application, powers after arguments,
primes and bound variables are decided here, and products are left open for shapes.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from lark import Token, Tree

from graders.expression.config import ExpressionConfig, SymbolDeclaration
from graders.expression.errors import ExpressionError, ExpressionSyntaxError
from graders.expression.evaluate import UndeclaredName
from graders.expression.limits import Limits
from graders.expression.syntax import (
    CDOT,
    SIDE_BY_SIDE,
    Binary,
    Call,
    Expr,
    Indexed,
    Name,
    Negate,
    Number,
    Reduce,
    shifted,
    to_text,
)
from graders.expression.text_parser import parse_text

# LaTeX commands that name functions, and the functions their derivatives (') name.
FUNCTION_COMMANDS = {
    r"\psi": "psi",
    r"\tanh": "tanh",
    r"\sigma": "sigmoid",
    r"\exp": "exp",
    r"\log": "log",
    r"\ln": "log",
}
DERIVATIVES = {"psi": "dpsi"}
# Derivatives with no function of their own, written out from the function: \tanh'(z) is
# 1 - tanh(z)^2 and \sigma'(z) is sigma(z) (1 - sigma(z)), so they need only tanh or sigmoid.
_DERIVED_BY_FORMULA = {"tanh": "tanh'", "sigmoid": "sigmoid'"}
_DERIVATIVE_FORMULAS: dict[str, Callable[[Expr], Expr]] = {
    "tanh'": lambda z: Binary("-", Number(1.0), Binary("**", Call("tanh", (z,)), Number(2.0))),
    "sigmoid'": lambda z: Binary("*", Call("sigmoid", (z,)), Binary("-", Number(1.0), Call("sigmoid", (z,)))),
}
TRANSPOSE_MARKS = {r"\top", r"\intercal", "T"}
# Greek letters a sum or product may bind, by their canonical (text) names: `\sum_{\tau=1}^{t}`
# binds tau. \pi (a constant) and the function letters \psi, \sigma are not among them.
_GREEK_LETTERS = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "rho tau upsilon phi varphi chi omega"
)
GREEK_VARIABLES = {f"\\{name}": name for name in _GREEK_LETTERS.split(" ")}
# The grammar's product rules and the operator each leaves in the tree: \times * \odot \circ are
# elementwise ("*"); side by side and \cdot are left for the shape pass to resolve.
_PRODUCT_OPERATORS = {"juxtapose": SIDE_BY_SIDE, "cdot": CDOT, "mul": "*"}
_ATOM_KINDS = frozenset({"word", "command", "hat", "subscripted"})


# --- name resolution -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spelling:
    symbol: SymbolDeclaration
    base: str
    pattern: re.Pattern[str] | None  # over the subscript text; None: no subscript
    shown: str


def _spellings(config: ExpressionConfig) -> list[_Spelling]:
    out = []
    for symbol in config.symbols:
        written = symbol.latex or [symbol.name]
        for spelling in written:
            base, _, sub = spelling.partition("_")
            sub = sub.strip()
            if sub.startswith("{") and sub.endswith("}"):
                sub = sub[1:-1]
            if symbol.sequence and "#" not in sub:
                sub += "#"  # a sequence is indexed by time
            declared = [sub] if sub else []
            subs = list(declared)
            # A vector or matrix is also indexed by component, after the declared subscript:
            # `g_{o,#}` gives `g_{o,t,i}`, `w_{yh}` gives `w_{yh,i}`.
            most = int(symbol.sequence) + len(symbol.shape)
            for components in range(1, most - sub.count("#") + 1):
                subs.append(",".join(declared + ["#"] * components))
            if not sub:
                out.append(_Spelling(symbol, base.strip(), None, spelling))
            for pattern in subs:
                parts = [re.escape(part) for part in pattern.replace(" ", "").split("#")]
                regex = re.compile("^" + "(.+?)".join(parts) + "$")
                out.append(_Spelling(symbol, base.strip(), regex, f"{base}_{{{pattern}}}"))
    return out


@dataclass(frozen=True, slots=True)
class _Declared:
    """A question's spellings, in declared order, and the same grouped by their base."""

    spellings: tuple[_Spelling, ...]
    by_base: dict[str, tuple[_Spelling, ...]]


# Keyed by the config object, as configs are immutable and reused per question: listing the
# spellings (and compiling their patterns) cost more than resolving a typical answer.
_SPELLINGS: dict[int, tuple[ExpressionConfig, _Declared]] = {}


def _declared_spellings(config: ExpressionConfig) -> _Declared:
    """The question's spellings, listed once per config."""
    entry = _SPELLINGS.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1]
    spellings = tuple(_spellings(config))
    by_base: dict[str, list[_Spelling]] = {}
    for spelling in spellings:
        by_base.setdefault(spelling.base, []).append(spelling)
    declared = _Declared(spellings, {base: tuple(group) for base, group in by_base.items()})
    if len(_SPELLINGS) > 256:
        _SPELLINGS.clear()
    _SPELLINGS[id(config)] = (config, declared)
    return declared


@dataclass(frozen=True, slots=True)
class _FunctionAtom:
    """A function waiting for its argument; `\\tanh^2` carries the power of its value."""

    name: str
    written: str
    power: Expr | None = None


@dataclass(frozen=True, slots=True)
class _ArgumentList:
    """A parenthesised list, with the script written after it: `(z_i)^2`, `(x)^\\top`.

    Kept apart from its content so that `\\tanh(z_i)^2` powers the function's value (tanh(z_i)^2,
    as in every textbook) rather than its argument.
    """

    args: tuple[Expr, ...]
    power: Expr | None = None
    transposed: bool = False


@dataclass(frozen=True, slots=True)
class _Quotient:
    """The leftmost factor of a product is `a / b`: `a / \\tanh(z)` divides by the whole call."""

    numerator: Expr
    denominator: _Item


_Item = Expr | _FunctionAtom | _ArgumentList | _Quotient


def _scripted(value: Expr, group: _ArgumentList) -> Expr:
    if group.transposed:
        return Call("transpose", (value,))
    if group.power is not None:
        return Binary("**", value, group.power)
    return value


class Resolver:
    def __init__(self, config: ExpressionConfig, limits: Limits) -> None:
        self.config = config
        self.limits = limits
        declared = _declared_spellings(config)
        self.spellings = declared.spellings
        self.by_base = declared.by_base
        self.bases = declared.by_base.keys()
        self.functions = set(config.functions)
        self.bound: list[str] = []  # variables bound by the sums and products around this point

    # Raw tree → expression. Products are resolved as chains, so `\tanh z_t` and `softmax(o_t)`
    # become calls and `gw_{hh,t}` finds its two-letter base.
    def expr(self, node: Tree[Token] | Token) -> Expr:
        return self.value(self.item(node))

    def value(self, item: _Item) -> Expr:
        if isinstance(item, _FunctionAtom):
            raise ExpressionError(f"The function {item.name} needs an argument.")
        if isinstance(item, _ArgumentList):
            if len(item.args) != 1:
                raise ExpressionError("A list in parentheses only makes sense as a function's arguments.")
            return _scripted(item.args[0], item)
        if isinstance(item, _Quotient):
            return Binary("/", item.numerator, self.value(item.denominator))
        return item

    def item(self, node: Tree[Token] | Token) -> _Item:
        if isinstance(node, Token):
            raise ExpressionSyntaxError(f"Unexpected {str(node)!r}.")
        kind = node.data
        children = node.children
        # The kinds are distinct: the most frequent ones (symbols, numbers, products) come first.
        if kind in _ATOM_KINDS:
            return self.atom(node)
        if kind == "number":
            return Number(float(str(children[0])))
        if kind in _PRODUCT_OPERATORS:
            return self.chain(node)
        if kind == "add":
            return Binary("+", self.expr(children[0]), self.expr(children[1]))
        if kind == "sub":
            return Binary("-", self.expr(children[0]), self.expr(children[1]))
        if kind == "neg":
            return Negate(self.expr(children[0]))
        if kind == "div":
            return Binary("/", self.expr(children[0]), self.expr(children[1]))
        if kind == "frac":
            return Binary("/", self.expr(children[1]), self.expr(children[2]))
        if kind == "inner":
            left, right = (child for child in children if not isinstance(child, Token))
            return Call("dot", (self.expr(left), self.expr(right)))
        if kind == "sqrt":
            return Call("sqrt", (self.expr(children[1]),))
        if kind == "abs":
            return Call("abs", (self.expr(children[1]),))
        if kind == "group":
            return _ArgumentList(tuple(self.expr(child) for child in children))
        if kind == "pow":
            return self.power(children[0], children[1])
        if kind == "prime":
            return self.derivative(self.item(children[0]), 1)
        if kind == "script_prime":
            marks = children[1]
            assert isinstance(marks, Tree)
            return self.derivative(self.item(children[0]), len(marks.children))
        if kind == "bigop":
            return self.bigop(children)
        raise ExpressionSyntaxError(f"Cannot read {kind}.")

    def chain(self, node: Tree[Token]) -> Expr:
        items: list[_Item] = []
        # links[j]: the grammar rule ("juxtapose", "cdot", "mul") joining items[j] to the one before
        links: list[str] = []
        self._flatten(node, items, links, "juxtapose")
        result: Expr | None = None
        pending: list[_FunctionAtom] = []  # functions waiting for their argument, innermost last
        numerator: Expr | None = None
        operator = SIDE_BY_SIDE  # how the next value joins the product so far
        for position, entry in enumerate(items):
            if not pending:
                # A function's value joins by the link before the function, not its argument's.
                operator = _PRODUCT_OPERATORS[links[position]]
            item = entry
            if isinstance(entry, _Quotient):
                numerator, item = entry.numerator, entry.denominator
            if isinstance(item, _FunctionAtom):
                pending.append(item)
                continue
            if isinstance(item, _ArgumentList) and pending:
                value: Expr = _scripted(self.apply(pending.pop(), item.args), item)
            elif isinstance(item, Binary) and item.op == "**" and pending:
                raise ExpressionError(_ambiguous_power(pending[-1], item))
            else:
                value = self.value(item)
            while pending:
                value = self.apply(pending.pop(), (value,))
            if numerator is not None:
                if position + 1 < len(items) and links[position + 1] == "juxtapose":
                    raise ExpressionError(_ambiguous_quotient(numerator, value))
                value, numerator = Binary("/", numerator, value), None
            # Side by side and \cdot stay open here: shapes.py makes each a matrix product or a
            # scaling from the declared shapes.
            result = value if result is None else Binary(operator, result, value)
        if pending:
            raise ExpressionError(f"The function {pending[-1].name} needs an argument.")
        assert result is not None
        return result

    def _flatten(self, node: Tree[Token] | Token, items: list[_Item], links: list[str], link: str) -> None:
        """The factors of a product, each with the rule that joins it to the ones before."""
        if isinstance(node, Tree) and node.data in _PRODUCT_OPERATORS:
            left, right = node.children[0], node.children[-1]  # a `mul` has its operator between
            self._flatten(left, items, links, link)
            if isinstance(right, Tree) and right.data in _PRODUCT_OPERATORS:
                # Only braces make a product a right operand: `\tanh{a b}` applies to the group.
                items.append(self.chain(right))
                links.append(node.data)
            else:
                self._flatten(right, items, links, node.data)
            return
        if isinstance(node, Tree) and node.data == "div" and not items:
            # `a / b c` parses as (a / b) c; the chain decides whether that reading is sure.
            items.append(_Quotient(self.expr(node.children[0]), self.item(node.children[1])))
        else:
            items.append(self.item(node))
        links.append(link)

    def apply(self, function: _FunctionAtom, args: tuple[Expr, ...]) -> Expr:
        formula = _DERIVATIVE_FORMULAS.get(function.name)
        if formula is not None and len(args) == 1:
            call: Expr = formula(args[0])
        else:
            call = Call(function.name, args)
        return call if function.power is None else Binary("**", call, function.power)

    def derivative(self, inner: _Item, order: int) -> _FunctionAtom:
        if isinstance(inner, _FunctionAtom) and inner.power is None:
            if inner.name in DERIVATIVES.values() or (inner.name in DERIVATIVES and order > 1):
                raise ExpressionError(
                    "Only a first derivative is understood (\\psi'(z) is dpsi); a second derivative "
                    "such as \\psi''(z) is not available here."
                )
            if inner.name in DERIVATIVES:
                return _FunctionAtom(DERIVATIVES[inner.name], inner.written + "'")
            if inner.name in _DERIVED_BY_FORMULA:
                return _FunctionAtom(_DERIVED_BY_FORMULA[inner.name], inner.written + "'")
        raise ExpressionError("A prime (') is understood only on \\psi: \\psi'(z) is psi's derivative.")

    def power(self, base_node: Tree[Token] | Token, exponent_node: Tree[Token] | Token) -> _Item:
        transposed = (
            isinstance(exponent_node, Tree)
            and exponent_node.data in ("word", "command")
            and str(exponent_node.children[0]) in TRANSPOSE_MARKS
        )
        base = self.item(base_node)
        if isinstance(base, _FunctionAtom):
            return self.function_power(base, None if transposed else self.expr(exponent_node))
        exponent = None if transposed else self.expr(exponent_node)
        if isinstance(base, _ArgumentList):
            return _ArgumentList(base.args, exponent, transposed)
        value = self.value(base)
        if _is_letter_run(base_node) and isinstance(value, Binary) and value.op == SIDE_BY_SIDE:
            # `GV^\top` is G V^\top: a script binds to the letter before it, as `xh_t` is x h_t.
            return Binary(SIDE_BY_SIDE, value.left, _raised(value.right, exponent))
        return _raised(value, exponent)

    def function_power(self, function: _FunctionAtom, exponent: Expr | None) -> _FunctionAtom:
        """`\\tanh^2(z)` is (tanh z)^2; `\\tanh^{-1}` would be the inverse function."""
        written = function.written
        if isinstance(exponent, Negate) or (isinstance(exponent, Number) and exponent.value < 0):
            raise ExpressionError(
                f"{written}^{{-1}} is the inverse function, which is not available; for a reciprocal "
                f"write \\frac{{1}}{{{written}(z)}}."
            )
        if (
            not isinstance(exponent, Number)
            or not exponent.value.is_integer()
            or not 1 <= exponent.value <= self.limits.max_exponent
        ):
            raise ExpressionError(
                f"A power of a function must be a whole number, as in {written}^2(z), which is "
                f"({written}(z))^2."
            )
        return _FunctionAtom(function.name, written, exponent)

    def bigop(self, children: Sequence[Tree[Token] | Token]) -> Expr:
        kind = "sum" if str(children[0]).endswith("sum") else "prod"
        variable = self.variable(str(children[1]))
        start = self.expr(children[2])
        last = self.expr(children[3])
        self.bound.append(variable)
        try:
            body = self.expr(children[4])
        finally:
            self.bound.pop()
        # LaTeX bounds are inclusive; the tree's stop is exclusive, as in Python's range.
        return Reduce(kind, variable, start, shifted(last, +1), body)

    def variable(self, written: str) -> str:
        """The name a sum binds: one letter, or a Greek letter by its name (`\\tau` → tau)."""
        if written in FUNCTION_COMMANDS or written in self.functions:
            raise ExpressionError(
                f"{written} is a function; a sum or product cannot bind it. Use another letter."
            )
        name = GREEK_VARIABLES.get(written, written)
        if name.startswith("\\") or (len(name) > 1 and written == name):
            raise ExpressionError(
                f"{written} cannot be a summation variable: use one letter or a Greek letter, e.g. "
                "\\sum_{j=1}^{t} or \\sum_{\\tau=1}^{t}."
            )
        if self.config.symbol(name) is not None or name in self.bases or written in self.bases:
            raise ExpressionError(
                f"{written} is a declared symbol; a sum or product cannot bind it. Use another letter."
            )
        return name

    # Atoms: words, commands, hats, each with an optional subscript.
    def atom(self, node: Tree[Token]) -> _Item:
        subscript: str | None = None
        if node.data == "subscripted":
            base_node, sub_node = node.children
            assert isinstance(sub_node, Tree)
            # A Greek letter in a subscript is its name: `h_{\tau-1}` is h[tau - 1].
            subscript = "".join(GREEK_VARIABLES.get(str(token), str(token)) for token in sub_node.children)
            subscript = subscript.replace(" ", "")
            if not isinstance(base_node, Tree) or base_node.data not in ("word", "command", "hat"):
                raise ExpressionError("Only a symbol can carry a subscript.")
            node = base_node
        base = f"\\hat{{{node.children[1]}}}" if node.data == "hat" else str(node.children[0])
        if node.data == "command":
            if base in FUNCTION_COMMANDS and subscript is None and base not in self.bases:
                return _FunctionAtom(FUNCTION_COMMANDS[base], base)
            if subscript is None and GREEK_VARIABLES.get(base) in self.bound:
                return Name(GREEK_VARIABLES[base])
            if base not in self.bases:
                raise UndeclaredName(f"Unknown LaTeX command {base}. {self._allowed()}")
        if node.data == "word" and subscript is None and base in self.functions and base not in self.bases:
            return _FunctionAtom(base, f"\\operatorname{{{base}}}")
        return self.resolve(base, subscript)

    def resolve(self, base: str, subscript: str | None) -> Expr:
        found = self._match(base, subscript)
        if found is not None:
            return found
        if base.isalpha() and len(base) > 1 and not base.startswith("\\"):
            # A run of letters is a product of single letters, unless a declared base ends it:
            # `gw_{hh,t}` is gw_hh[t], `xh_t` is x * h[t].
            for split in range(1, len(base)):
                head, tail = base[:split], base[split:]
                tail_value = self._match(tail, subscript)
                if tail_value is not None:
                    factors = [self.resolve(letter, None) for letter in head] + [tail_value]
                    product = factors[0]
                    for factor in factors[1:]:
                        product = Binary(SIDE_BY_SIDE, product, factor)
                    return product
        if subscript is None and base in self.bases:
            raise UndeclaredName(f"{base} needs a subscript, e.g. {base}_{{t}}. {self._allowed()}")
        written = base + (f"_{{{subscript}}}" if subscript is not None else "")
        raise UndeclaredName(f"Unknown symbol {written}. {self._allowed()}")

    def _match(self, base: str, subscript: str | None) -> Expr | None:
        if subscript is None and (base in self.bound or base in self.config.index_names):
            return Name(base)
        for spelling in self.by_base.get(base, ()):  # in declared order, as all spellings were
            if spelling.pattern is None:
                if subscript is None:
                    return Name(spelling.symbol.name)
                continue
            if subscript is None:
                continue
            match = spelling.pattern.match(subscript)
            if match is None:
                continue
            try:
                indices = tuple(_parse_subscript(group, self.limits) for group in match.groups())
            except ExpressionError:
                continue
            if not indices:
                return Name(spelling.symbol.name)
            return Indexed(spelling.symbol.name, indices)
        return None

    def _allowed(self) -> str:
        shown = sorted({spelling.shown for spelling in self.spellings})
        return f"Allowed symbols: {', '.join(shown)}; indices: {', '.join(self.config.index_names)}."


def _raised(value: Expr, exponent: Expr | None) -> Expr:
    """A power, or a transpose where the exponent is a transpose mark (None)."""
    return Call("transpose", (value,)) if exponent is None else Binary("**", value, exponent)


def _is_letter_run(node: Tree[Token] | Token) -> bool:
    return isinstance(node, Tree) and node.data == "word" and len(str(node.children[0])) > 1


@lru_cache(maxsize=1024)
def _parse_subscript(text: str, limits: Limits) -> Expr:
    """An index inside a subscript (`i-1` of h_{i-1}): a handful of short texts come back in every
    answer, and each was a full parse. Trees are immutable, so sharing one is safe; an error is
    raised again each time (lru_cache keeps only results)."""
    return parse_text(text, limits)


def _ambiguous_power(function: _FunctionAtom, power: Binary) -> str:
    """`\tanh z_t^2`: tanh(z_t^2) by the old convention, (tanh z_t)^2 to many a student."""
    f, base, exponent = function.written, to_text(power.left), to_text(power.right)
    return (
        f"{f} followed by a power without parentheses is ambiguous: {function.name}({base} ** {exponent}) "
        f"or {function.name}({base}) ** {exponent}. Write {f}(x^2) for the first, {f}(x)^2 or "
        f"{f}^2(x) for the second."
    )


def _ambiguous_quotient(numerator: Expr, denominator: Expr) -> str:
    """`a / b c`: (a / b) c or a / (b c); textbooks use both."""
    top, bottom = to_text(numerator), to_text(denominator)
    return (
        f"A factor written right after '{top} / {bottom}' is ambiguous: it could multiply the "
        f"quotient or belong to the denominator. Write \\frac{{a}}{{b}} c for (a / b) c, or "
        f"\\frac{{a}}{{b c}} (or a / (b c)) for a / (b c)."
    )
