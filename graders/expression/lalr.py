"""A tight LALR(1) driver over the parse table lark builds, with the contextual lexer inlined.

Lark stays the grammar compiler: it builds the parse table, the per-state lexers (through
FastContextualLexer, whose scanners this reuses) and the callbacks that shape the tree (child
filtering, `?rule` inlining, placeholders, the text grammar's transformer). Only the loop is ours.
Per token lark's loop goes through a generator, a LexerThread, `Rule.__hash__` and `Rule.__eq__`
in Python for every reduction and several layers of attribute look-ups; about half of the reductions
are unit rules (`?sum: product`) whose callback only hands its one child back. Here every state's
actions are one dict keyed by plain strings, each reduction carries its callback and its goto table,
and a unit rule whose callback returns its child unchanged is a change of state only.

Anything unexpected (no terminal matches, no action for a token, a callback raising) hands the
whole text to lark's own parser, which raises its own error with its own message and position (or,
should the two ever disagree on an input, gives lark's result): errors and positions are lark's.
tests/graders/test_expression_lalr.py checks both grammars give lark's trees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from lark import Lark, Token
from lark.parse_tree_builder import maybe_create_child_filter
from lark.parsers.lalr_analysis import Shift

from graders.expression.lexing import FastContextualLexer

# Token() goes through a deprecation shim on every call; _future_new is what it forwards to.
_new_token: Callable[..., Token] = getattr(Token, "_future_new", Token)

# A reduction: the rule's length, its callback (None: a unit rule that hands its child back) and
# the state to go to from each state the rule can be reduced back to.
_Reduce = tuple[int, Callable[[list[Any]], Any] | None, dict[int, int]]
# Shifts are ints (the next state); reductions are tuples.
_Action = int | _Reduce


class _Unsupported(Exception):
    """The input leaves the fast path: lark parses it again and says what is wrong."""


class FastLALR:
    """`FastLALR(lark).parse(text)` gives what `lark.parse(text)` gives, faster."""

    def __init__(self, lark: Lark, builders: Mapping[str, Callable[[list[Any]], Any]] | None = None) -> None:
        """`builders`: what the lark parser's transformer calls for a rule name (through its
        `__default__`, after lark's child filter); here called straight after the same filter."""
        self._lark = lark
        frontend: Any = lark.parser
        lexer = frontend.lexer
        if not isinstance(lexer, FastContextualLexer) or frontend.lexer_conf.postlex is not None:
            raise TypeError("FastLALR needs a contextual LALR parser built with FastContextualLexer")
        self._lexer = lexer
        inner = frontend.parser.parser  # LALR_Parser -> _Parser
        table = inner.parse_table
        callbacks: dict[Any, Any] = inner.callbacks
        start = frontend.parser_conf.start[0]
        self._start: int = table.start_states[start]
        self._end: int = table.end_states[start]
        # Terminals with a parser callback (a transformer method named after a terminal).
        self._token_callbacks = {str(key): value for key, value in callbacks.items() if isinstance(key, str)}

        gotos: dict[str, dict[int, int]] = {}
        for state, actions in table.states.items():
            for key, (action, argument) in actions.items():
                if action is Shift and not str(key).isupper() and not str(key).startswith("$"):
                    gotos.setdefault(str(key), {})[state] = argument
        reductions: dict[int, _Reduce] = {}
        self._actions: dict[int, dict[str, _Action]] = {}
        # (state below, state, token type) -> the state after the unit reductions the token
        # triggers there: at most states x states x terminals entries, filled as they are met.
        self._runs: dict[tuple[int, int, str], int] = {}
        # With builders for every rule that keeps a token, the tree needs only the tokens' text:
        # plain strings are pushed instead of Token objects (made only for a keyword callback).
        self._plain = builders is not None and not self._token_callbacks
        for state, actions in table.states.items():
            own: dict[str, _Action] = {}
            for key, (action, argument) in actions.items():
                if action is Shift:
                    own[str(key)] = argument
                    continue
                rule = argument
                reduction = reductions.get(id(rule))
                if reduction is None:
                    callback = self._callback(rule, callbacks[rule], builders or {})
                    size = len(rule.expansion)
                    unit = size == 1 and rule.options.expand1 and not rule.alias and _hands_back(callback)
                    goto = gotos.get(str(rule.origin.name), {})
                    reduction = (size, None if unit else callback, goto)
                    reductions[id(rule)] = reduction
                own[str(key)] = reduction
            self._actions[state] = own
        rules = [rule for rule in lark.rules if _keeps_token(rule)]
        self._plain = self._plain and all(self._built(rule, builders or {}) for rule in rules)

    def _callback(
        self, rule: Any, stock: Callable[[list[Any]], Any], builders: Mapping[str, Callable[[list[Any]], Any]]
    ) -> Callable[[list[Any]], Any]:
        """Lark's callback of a rule, or the rule's builder behind lark's own child filter."""
        options = self._lark.options
        name = rule.alias or rule.options.template_source or rule.origin.name
        build = builders.get(str(name))
        inlined = rule.options.expand1 and not rule.alias  # `?rule`: lark may hand its child back
        if build is None or inlined or options.propagate_positions or options.ambiguity != "auto":
            return stock
        placeholders: Any = rule.options.empty_indices if options.maybe_placeholders else None
        keep_all = rule.options.keep_all_tokens
        child_filter = maybe_create_child_filter(rule.expansion, keep_all, False, placeholders)
        return build if child_filter is None else cast(Callable[[list[Any]], Any], child_filter(build))

    def _built(self, rule: Any, builders: Mapping[str, Callable[[list[Any]], Any]]) -> bool:
        name = rule.alias or rule.options.template_source or rule.origin.name
        return str(name) in builders and not (rule.options.expand1 and not rule.alias)

    def _unit_run(self, below: int, top: int, kind: str) -> int:
        """The state after every unit reduction `kind` triggers on top of `below`."""
        while True:
            action = self._actions[top].get(kind)
            if action is None or action.__class__ is int or action[1] is not None:  # type: ignore[index]
                return top
            top = action[2][below]  # type: ignore[index]

    @property
    def lark(self) -> Lark:
        return self._lark

    def parse(self, text: str) -> Any:
        return self.parse_noting(text, "", frozenset())[0]

    def parse_noting(self, text: str, noted_type: str, noted: frozenset[str]) -> tuple[Any, bool]:
        """The tree, and whether a token of type `noted_type` with one of the `noted` values was
        read (True too whenever lark parsed: it does not say)."""
        try:
            return self._parse(text, noted_type, noted)
        except Exception:  # any surprise: lark's own parse decides, and raises its own error
            return self._lark.parse(text), True

    def _parse(
        self, text: str, noted_type: str = "", noted: frozenset[str] = frozenset()
    ) -> tuple[Any, bool]:
        actions = self._actions
        scanners, scanner_of = self._lexer._scanners, self._lexer._scanner
        token_callbacks, runs, plain = self._token_callbacks, self._runs, self._plain
        state_stack = [self._start]
        value_stack: list[Any] = []
        pos, end, line, line_start = 0, len(text), 1, 0
        seen = False
        while pos < end:
            state = state_stack[-1]
            matchers, ignore_types, lexer_callbacks, newline_types = scanners.get(state) or scanner_of(state)
            match = None
            for matcher in matchers:
                match = matcher(text, pos, end)
                if match is not None:
                    break
            if match is None:
                raise _Unsupported
            value = match.group()
            kind = match.lastgroup
            assert kind is not None
            stop = match.end()
            end_line, end_start = line, line_start
            if kind in newline_types:
                newlines = value.count("\n")
                if newlines:
                    end_line += newlines
                    end_start = pos + value.rindex("\n") + 1
            ignored = kind in ignore_types
            if ignored and kind not in lexer_callbacks:
                pos, line, line_start = stop, end_line, end_start
                continue
            token: Any = value
            if not plain or kind in lexer_callbacks:
                column, end_column = pos - line_start + 1, stop - end_start + 1
                token = _new_token(kind, value, pos, line, column, end_line, end_column, stop)
                if kind in lexer_callbacks:
                    token = lexer_callbacks[kind](token)
                    kind = token.type
                    if plain:
                        token = value
            pos, line, line_start = stop, end_line, end_start
            if ignored:
                continue
            if noted and kind == noted_type and value in noted:
                seen = True
            while True:
                top = state_stack[-1]
                action = actions[top].get(kind)
                if action is None:
                    raise _Unsupported
                if action.__class__ is int:
                    state_stack.append(action)
                    value_stack.append(token if kind not in token_callbacks else token_callbacks[kind](token))
                    break
                size, callback, goto = action  # type: ignore[misc]
                if callback is None:
                    # A run of unit reductions depends only on the state below it and the token.
                    key = (state_stack[-2], top, kind)
                    target = runs.get(key)
                    if target is None:
                        target = runs[key] = self._unit_run(*key)
                    state_stack[-1] = target
                    continue
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(callback(children))
                state_stack.append(goto[state_stack[-1]])
        end_state = self._end
        while True:
            action = actions[state_stack[-1]].get("$END")
            if action is None or action.__class__ is int:
                raise _Unsupported
            size, callback, goto = action  # type: ignore[misc]
            if callback is None:
                state_stack[-1] = goto[state_stack[-2]]
            else:
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(callback(children))
                state_stack.append(goto[state_stack[-1]])
            if state_stack[-1] == end_state:
                return value_stack[-1], seen


def _keeps_token(rule: Any) -> bool:
    """Whether lark's tree keeps a token of this rule's (an anonymous string is filtered out)."""
    keep_all = rule.options.keep_all_tokens
    return any(symbol.is_term and (keep_all or not symbol.filter_out) for symbol in rule.expansion)


class _Probe:
    """A stand-in child: a callback that returns it unchanged only hands its child back."""


def _hands_back(callback: Callable[[list[Any]], Any]) -> bool:
    probe = _Probe()
    try:
        return callback([probe]) is probe
    except Exception:  # a callback that cannot take the probe builds something
        return False
