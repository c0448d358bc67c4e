"""The LaTeX grammar: what students paste from their write-ups, e.g. `\\sum_{i=1}^t g_{h,i} \\psi'(z_i)`.

Three steps: normalise the source (strip $, \\left/\\right and spacing, brace lone scripts, keep the
last right-hand side of a derivation), parse with lark (LALR) into a raw tree, then resolve that
tree against the question's declarations: whether `w_{hh}` is a name, `h_{t-1}` an indexed symbol,
`y_{t,i}` a component, `g_{ot}` the symbol g_o at t, is read from the declared spellings, never
guessed. The result is the same syntax tree the text grammar produces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput
from lark.lexer import ContextualLexer

from graders.expression.config import ExpressionConfig, SymbolDeclaration
from graders.expression.errors import ExpressionError, ExpressionSyntaxError
from graders.expression.evaluate import UndeclaredName
from graders.expression.lexing import FastContextualLexer, share_rule_names
from graders.expression.limits import DEFAULT_LIMITS, Limits, check_source, derivation_sides
from graders.expression.syntax import Binary, Call, Expr, Indexed, Name, Negate, Number, Reduce
from graders.expression.text_parser import describe_unexpected, parse_text

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
TRANSPOSE_MARKS = {r"\top", r"\intercal", "T"}

_SPACING = re.compile(r"\\[,;:! ]|\\q?quad(?![A-Za-z])|~")
_SIZING = re.compile(r"\\(left|right|big|Big|bigg|Bigg)(?![A-Za-z])\.?")
_NAMED_OPERATOR = re.compile(r"\\(operatorname|mathrm|text|textrm|mathit)\s*\{\s*([A-Za-z]+)\s*\}")
# A script without braces takes one character, or one command: `_t`, `^2`, `^\top`.
_BARE_SCRIPT = re.compile(r"([_^])\s*(\\[A-Za-z]+|[A-Za-z0-9])")


def make_parser(fast: bool = True) -> Lark:
    """The LaTeX grammar's parser; `fast=False` is lark as shipped, for tests to compare with."""
    grammar = (Path(__file__).parent / "latex_grammar.lark").read_text(encoding="utf-8")
    lexer = FastContextualLexer if fast else ContextualLexer
    parser = Lark(grammar, parser="lalr", lexer="contextual", _plugins={"ContextualLexer": lexer})
    return share_rule_names(parser) if fast else parser


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return make_parser()


def normalise(source: str) -> str:
    for position, character in enumerate(source):
        if ord(character) > 126 or (ord(character) < 32 and character not in "\t\r\n"):
            raise ExpressionSyntaxError(
                f"Character {character!r} (U+{ord(character):04X}) at position {position + 1} is not "
                "allowed; write LaTeX commands in plain ASCII (e.g. \\hat{y}, \\times).",
                position,
            )
    text = source.replace("$", " ")
    text = _SIZING.sub(" ", text)
    text = _SPACING.sub(" ", text)
    text = _NAMED_OPERATOR.sub(lambda m: f" {m.group(2)} ", text)
    return _BARE_SCRIPT.sub(lambda m: f"{m.group(1)}{{{m.group(2)}}}", text)


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
            subs = [sub] if sub else []
            if symbol.sequence and "#" not in sub:
                # A sequence is indexed by time, and a vector-valued one also by component.
                subs = [s + "#" if s else "#" for s in (subs or [""])]
                subs += [s + ",#" for s in list(subs)] if symbol.shape else []
            if not subs:
                out.append(_Spelling(symbol, base.strip(), None, spelling))
            for pattern in subs:
                parts = [re.escape(part) for part in pattern.replace(" ", "").split("#")]
                regex = re.compile("^" + "(.+?)".join(parts) + "$")
                out.append(_Spelling(symbol, base.strip(), regex, f"{base}_{{{pattern}}}"))
    return out


@dataclass(frozen=True, slots=True)
class _FunctionAtom:
    name: str


@dataclass(frozen=True, slots=True)
class _ArgumentList:
    args: tuple[Expr, ...]


_Item = Expr | _FunctionAtom | _ArgumentList


class _Resolver:
    def __init__(self, config: ExpressionConfig, limits: Limits) -> None:
        self.config = config
        self.limits = limits
        self.spellings = _spellings(config)
        self.bases = {spelling.base for spelling in self.spellings}
        self.functions = set(config.functions)

    # Raw tree → expression. Products are resolved as chains, so `\tanh z_t` and `softmax(o_t)`
    # become calls and `gw_{hh,t}` finds its two-letter base.
    def expr(self, node: Tree[Token] | Token) -> Expr:
        item = self.item(node)
        if isinstance(item, _FunctionAtom):
            raise ExpressionError(f"The function {item.name} needs an argument.")
        if isinstance(item, _ArgumentList):
            raise ExpressionError("A list in parentheses only makes sense as a function's arguments.")
        return item

    def item(self, node: Tree[Token] | Token) -> _Item:
        if isinstance(node, Token):
            raise ExpressionSyntaxError(f"Unexpected {str(node)!r}.")
        kind = node.data
        children = node.children
        if kind in ("juxtapose", "mul"):
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
        if kind == "sqrt":
            return Call("sqrt", (self.expr(children[1]),))
        if kind == "number":
            return Number(float(str(children[0])))
        if kind == "group":
            args = tuple(self.expr(child) for child in children)
            return args[0] if len(args) == 1 else _ArgumentList(args)
        if kind == "pow":
            return self.power(children[0], children[1])
        if kind == "prime":
            inner = self.item(children[0])
            if isinstance(inner, _FunctionAtom) and inner.name in DERIVATIVES:
                return _FunctionAtom(DERIVATIVES[inner.name])
            raise ExpressionError("A prime (') is understood only on \\psi: \\psi'(z) is psi's derivative.")
        if kind == "bigop":
            return self.bigop(children)
        if kind in ("word", "command", "hat", "subscripted"):
            return self.atom(node)
        raise ExpressionSyntaxError(f"Cannot read {kind}.")

    def chain(self, node: Tree[Token]) -> Expr:
        items: list[_Item] = []
        self._flatten(node, items)
        result: Expr | None = None
        pending: list[str] = []  # functions waiting for their argument, innermost last
        for item in items:
            if isinstance(item, _FunctionAtom):
                pending.append(item.name)
                continue
            if isinstance(item, _ArgumentList):
                if not pending:
                    raise ExpressionError("A list in parentheses only makes sense as a function's arguments.")
                value: Expr = Call(pending.pop(), item.args)
            else:
                value = item
            while pending:
                value = Call(pending.pop(), (value,))
            if result is None:
                result = value
            elif isinstance(result, Call) and result.function == "transpose":
                # `w^\top g` is a matrix product (for two vectors: their dot product).
                result = Binary("@", result, value)
            else:
                result = Binary("*", result, value)
        if pending:
            raise ExpressionError(f"The function {pending[-1]} needs an argument.")
        assert result is not None
        return result

    def _flatten(self, node: Tree[Token] | Token, items: list[_Item]) -> None:
        if isinstance(node, Tree) and node.data in ("juxtapose", "mul"):
            operands = [child for child in node.children if not isinstance(child, Token)]
            for operand in operands:
                self._flatten(operand, items)
        else:
            items.append(self.item(node))

    def power(self, base_node: Tree[Token] | Token, exponent_node: Tree[Token] | Token) -> Expr:
        if isinstance(exponent_node, Tree) and exponent_node.data in ("word", "command"):
            mark = str(exponent_node.children[0])
            if mark in TRANSPOSE_MARKS:
                return Call("transpose", (self.expr(base_node),))
        return Binary("**", self.expr(base_node), self.expr(exponent_node))

    def bigop(self, children: Sequence[Tree[Token] | Token]) -> Expr:
        kind = "sum" if str(children[0]).endswith("sum") else "prod"
        variable = str(children[1])
        start = self.expr(children[2])
        last = self.expr(children[3])
        # LaTeX bounds are inclusive; the tree's stop is exclusive, as in Python's range.
        return Reduce(kind, variable, start, _plus_one(last), self.expr(children[4]))

    # Atoms: words, commands, hats, each with an optional subscript.
    def atom(self, node: Tree[Token]) -> _Item:
        subscript: str | None = None
        if node.data == "subscripted":
            base_node, sub_node = node.children
            assert isinstance(sub_node, Tree)
            subscript = "".join(str(token) for token in sub_node.children).replace(" ", "")
            if not isinstance(base_node, Tree) or base_node.data not in ("word", "command", "hat"):
                raise ExpressionError("Only a symbol can carry a subscript.")
            node = base_node
        base = f"\\hat{{{node.children[1]}}}" if node.data == "hat" else str(node.children[0])
        if node.data == "command":
            if base in FUNCTION_COMMANDS and subscript is None and base not in self.bases:
                return _FunctionAtom(FUNCTION_COMMANDS[base])
            if base not in self.bases:
                raise UndeclaredName(f"Unknown LaTeX command {base}. {self._allowed()}")
        if node.data == "word" and subscript is None and base in self.functions and base not in self.bases:
            return _FunctionAtom(base)
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
                        product = Binary("*", product, factor)
                    return product
        if subscript is None and base in self.bases:
            raise UndeclaredName(f"{base} needs a subscript, e.g. {base}_{{t}}. {self._allowed()}")
        written = base + (f"_{{{subscript}}}" if subscript is not None else "")
        raise UndeclaredName(f"Unknown symbol {written}. {self._allowed()}")

    def _match(self, base: str, subscript: str | None) -> Expr | None:
        if subscript is None and base in self.config.index_names:
            return Name(base)
        for spelling in self.spellings:
            if spelling.base != base:
                continue
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


@lru_cache(maxsize=1024)
def _parse_subscript(text: str, limits: Limits) -> Expr:
    """An index inside a subscript (`i-1` of h_{i-1}): a handful of short texts come back in every
    answer, and each was a full parse. Trees are immutable, so sharing one is safe; an error is
    raised again each time (lru_cache keeps only results)."""
    return parse_text(text, limits)


def _plus_one(expr: Expr) -> Expr:
    """`b + 1`, folded where the bound ends in a constant: 3 → 4, t - i - 1 → t - i."""
    if isinstance(expr, Number):
        return Number(expr.value + 1)
    if isinstance(expr, Binary) and isinstance(expr.right, Number) and expr.op in "+-":
        shifted = expr.right.value + (1 if expr.op == "+" else -1)
        if shifted == 0:
            return expr.left
        return Binary(expr.op, expr.left, Number(shifted))
    return Binary("+", expr, Number(1.0))


def parse_latex(source: str, config: ExpressionConfig, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse a LaTeX answer into the shared syntax tree; raises ExpressionError subclasses only."""
    check_source(source, limits)
    sides = derivation_sides(normalise(source))
    # A derivation `a = b = c` is graded on c; the earlier steps need only be well-formed LaTeX.
    trees = [_parse_side(side, last=index == len(sides) - 1) for index, side in enumerate(sides)]
    try:
        return _Resolver(config, limits).expr(trees[-1])
    except RecursionError:
        raise ExpressionSyntaxError("The answer is nested too deeply.") from None


def _parse_side(text: str, last: bool) -> Any:
    if not text.strip():
        raise ExpressionSyntaxError("The answer is empty." if last else "A step of the derivation is empty.")
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise describe_unexpected(error, text) from None
    except RecursionError:
        raise ExpressionSyntaxError("The answer is nested too deeply.") from None
