"""A faster drop-in for lark's contextual lexer, used by both expression grammars.

Lark's own lexer was the largest single cost of reading an answer (docs/performance.md, P2): per
token it goes through a line counter, `Token.__new__`'s keyword handling and several attribute
look-ups. This lexer keeps everything that decides *which* tokens come out exactly as lark builds
it: the per-parser-state sets of terminals (so a terminal is only tried where the grammar can accept
it), their order (priority, then length), the compiled master regexes and the callbacks that retype
a keyword matched by a name pattern. Only the loop is ours: one regex match and one Token per token.
A grammar change (a new terminal, a new rule) therefore changes this lexer the same way it changes
lark's; tests/graders/test_expression_lexing.py pins that both give the same token stream.

Where no terminal of the parser state matches, the rest of the input is handed to lark's own
contextual lexer, so every lexing error is the one lark raises (with its expected terminals).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from re import Match
from typing import Any

from lark import Lark, Token
from lark.lexer import BasicLexer, ContextualLexer, LexerState
from lark.parsers.lalr_analysis import Shift

# Token() goes through a deprecation shim on every call; _future_new is what it forwards to.
_new_token: Callable[..., Token] = getattr(Token, "_future_new", Token)

# Per parser state: the matchers of its master regexes, its ignored types, its callbacks, and the
# types whose pattern can contain a newline (only those need counting lines).
_Scanner = tuple[
    tuple[Callable[[str, int, int], Match[str] | None], ...],
    frozenset[str],
    dict[str, Callable[[Token], Token]],
    frozenset[str],
]


class FastContextualLexer(ContextualLexer):
    """Lark's ContextualLexer with a tight loop; pass it as `Lark(..., _plugins={"ContextualLexer": ...})`."""

    def __init__(
        self, conf: Any, states: dict[int, Collection[str]], always_accept: Collection[str] = ()
    ) -> None:
        super().__init__(conf, states, always_accept)
        # The parse table's own name objects: lark's names are Token instances, whose Python-level
        # __eq__ a dict look-up calls unless the key is the very same object.
        self._names = {str(name): name for accepts in states.values() for name in accepts}
        self._scanners: dict[int, _Scanner] = {}
        self._by_lexer: dict[int, _Scanner] = {}

    def _scanner(self, position: int) -> _Scanner:
        lexer = self.lexers[position]
        scanner = self._by_lexer.get(id(lexer))
        if scanner is None:
            assert isinstance(lexer, BasicLexer)
            built = lexer.scanner  # builds lark's regexes and keyword callbacks on first use
            matchers = tuple(mre.match for mre in built._mres)
            scanner = (matchers, lexer.ignore_types, lexer.callback, lexer.newline_types)
            self._by_lexer[id(lexer)] = scanner
        self._scanners[position] = scanner
        return scanner

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text_slice = lexer_state.text
        text, end = text_slice.text, text_slice.end
        counter = lexer_state.line_ctr
        pos, line, line_start = counter.char_pos, counter.line, counter.line_start_pos
        scanners, names = self._scanners, self._names
        last_token = lexer_state.last_token
        try:
            while pos < end:
                position = parser_state.position
                scanner = scanners.get(position) or self._scanner(position)
                matchers, ignore_types, callbacks, newline_types = scanner
                match = None
                for matcher in matchers:
                    match = matcher(text, pos, end)
                    if match is not None:
                        break
                if match is None:
                    break  # lark's own lexer raises the error below
                value = match.group()
                group = match.lastgroup
                assert group is not None
                kind = names.get(group, group)
                stop = match.end()
                end_line, end_start = line, line_start
                if kind in newline_types:
                    newlines = value.count("\n")
                    if newlines:
                        end_line += newlines
                        end_start = pos + value.rindex("\n") + 1
                ignored = kind in ignore_types
                token = None
                if not ignored or kind in callbacks:
                    token = _new_token(
                        kind, value, pos, line, pos - line_start + 1, end_line, stop - end_start + 1, stop
                    )
                    if kind in callbacks:
                        token = callbacks[kind](token)
                pos, line, line_start = stop, end_line, end_start
                if token is not None and not ignored:
                    last_token = token
                    yield token
        finally:
            # Also when the parser stops early (an unexpected token): the state stays lark's.
            counter.char_pos, counter.line, counter.line_start_pos = pos, line, line_start
            counter.column = pos - line_start + 1
            lexer_state.last_token = last_token
        if pos < end:
            yield from super().lex(lexer_state, parser_state)


def share_rule_names(parser: Lark) -> Lark:
    """Key the LALR table by the very name objects its rules carry.

    After each reduction lark looks the rule's name up in the state's table; the two are equal
    strings but, for most rules, distinct Token objects, so every look-up ran Token.__eq__ in
    Python (about a tenth of a parse). Same keys, same values: only the objects are shared. If
    lark's internals differ from what this expects, the table is left as it is.
    """
    try:
        states = parser.parser.parser.parser.parse_table.states
        rules = [arg for state in states.values() for action, arg in state.values() if action is not Shift]
        shared = {str(rule.origin.name): rule.origin.name for rule in rules}
        for actions in states.values():
            for key in [key for key in actions if str(key) in shared and shared[str(key)] is not key]:
                actions[shared[str(key)]] = actions.pop(key)
    except AttributeError:
        pass
    return parser
