"""A tiny, safe guard language for FSM transitions and reflexes (parsed here, never eval'd).

Grammar (lowest precedence first):
    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := atom (("<" | "<=" | ">" | ">=" | "==" | "!=") atom)?
    atom    := NUMBER | STRING | "true" | "false" | NAME | "(" expr ")"
Names:
    player_distance        numeric observation value (Observation.values), missing = 0
    tag.location           categorical observation value (Observation.tags), missing = ""
    event.theft            true when an event of that kind arrived this step
    time_in_state          game seconds since the FSM entered its current state
    said                   true when the player said something this step
Types are checked at compile time: ordering comparisons need numbers, == / != need equal types.
Compiled to nested closures: evaluating a guard costs well under a microsecond per node. Guards come from
modders' files and game clients, so their size is bounded (`GuardLimits`: characters, nesting of `not` and
parentheses) and chains of `and` / `or` compile flat: neither compiling nor evaluating can recurse deeply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from npc_runtime.errors import InvalidArgument


@dataclass(slots=True)
class GuardContext:
    """What a guard can see in one tick."""

    values: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    events: frozenset[str] = frozenset()
    time_in_state: float = 0.0
    said: bool = False


Evaluator = Callable[[GuardContext], object]


@dataclass(frozen=True, kw_only=True)
class GuardLimits:
    max_chars: int = 1_000     # the built-in FSMs' longest guard is under 100
    max_depth: int = 32        # nested `not` and parentheses


DEFAULT_GUARD_LIMITS = GuardLimits()

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<str>\"[^\"]*\"|'[^']*')|(?P<op><=|>=|==|!=|<|>|\(|\))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?))"
)
_KEYWORDS = {"and", "or", "not", "true", "false"}


def ExpressionError(message: str, *, text: str, column: int) -> InvalidArgument:
    """A guard that does not parse or type-check: an InvalidArgument whose `column` is 1-based in the text."""
    exc = InvalidArgument(f"{message} at column {column} in {text!r}")
    exc.column = column  # type: ignore[attr-defined]
    return exc


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num | str | op | name | kw | end
    text: str
    col: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ExpressionError(f"unexpected character {text[col - 1]!r}", text=text, column=col)
        kind = m.lastgroup or ""
        value = m.group(kind)
        col = m.start(kind) + 1
        if kind == "name" and value in _KEYWORDS:
            kind = "kw"
        toks.append(_Tok(kind, value, col))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


_ORDER_OPS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_EQ_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _all(fns: list[Evaluator]) -> Evaluator:
    if len(fns) == 2:   # the common case, without a loop
        a, b = fns
        return lambda c: bool(a(c)) and bool(b(c))
    return lambda c: all(f(c) for f in fns)


def _any(fns: list[Evaluator]) -> Evaluator:
    if len(fns) == 2:
        a, b = fns
        return lambda c: bool(a(c)) or bool(b(c))
    return lambda c: any(f(c) for f in fns)


class _Parser:
    def __init__(self, text: str, limits: GuardLimits):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.max_depth = limits.max_depth

    def _enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            self._fail(f"nested deeper than {self.max_depth} levels", tok)

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _fail(self, message: str, tok: _Tok):
        raise ExpressionError(message, text=self.text, column=tok.col)

    def parse(self) -> tuple[Evaluator, str]:
        if self._peek().kind == "end":
            self._fail("empty expression", self._peek())
        fn, typ = self._or()
        if self._peek().kind != "end":
            self._fail(f"unexpected {self._peek().text!r}", self._peek())
        return fn, typ

    def _or(self):
        fn, typ = self._and()
        fns = [fn]
        while self._peek().kind == "kw" and self._peek().text == "or":
            self._next()
            fns.append(self._and()[0])
        return (fn, typ) if len(fns) == 1 else (_any(fns), "bool")

    def _and(self):
        fn, typ = self._not()
        fns = [fn]
        while self._peek().kind == "kw" and self._peek().text == "and":
            self._next()
            fns.append(self._not()[0])
        return (fn, typ) if len(fns) == 1 else (_all(fns), "bool")

    def _not(self):
        tok = self._peek()
        if tok.kind == "kw" and tok.text == "not":
            self._next()
            self._enter(tok)
            inner, _ = self._not()
            self.depth -= 1
            return (lambda a: lambda c: not a(c))(inner), "bool"
        return self._cmp()

    def _cmp(self):
        lhs, ltyp = self._atom()
        tok = self._peek()
        if tok.kind == "op" and (tok.text in _ORDER_OPS or tok.text in _EQ_OPS):
            self._next()
            rhs_tok = self._peek()
            rhs, rtyp = self._atom()
            if tok.text in _ORDER_OPS:
                if ltyp != "num" or rtyp != "num":
                    self._fail(f"'{tok.text}' compares numbers, got {ltyp} and {rtyp}", tok)
                op = _ORDER_OPS[tok.text]
            else:
                if ltyp != rtyp and not {ltyp, rtyp} <= {"num", "bool"}:
                    self._fail(f"'{tok.text}' compares equal types, got {ltyp} and {rtyp}", rhs_tok)
                op = _EQ_OPS[tok.text]
            return (lambda f, a, b: lambda c: f(a(c), b(c)))(op, lhs, rhs), "bool"
        return lhs, ltyp

    def _atom(self):
        tok = self._next()
        if tok.kind == "num":
            v = float(tok.text)
            if not math.isfinite(v):
                self._fail(f"number {tok.text[:20]}... is too large", tok)
            return (lambda c: v), "num"
        if tok.kind == "str":
            s = tok.text[1:-1]
            return (lambda c: s), "str"
        if tok.kind == "kw" and tok.text in ("true", "false"):
            b = tok.text == "true"
            return (lambda c: b), "bool"
        if tok.kind == "op" and tok.text == "(":
            self._enter(tok)
            fn, typ = self._or()
            self.depth -= 1
            if self._peek().text != ")":
                self._fail("missing ')'", self._peek())
            self._next()
            return fn, typ
        if tok.kind == "name":
            return self._name(tok)
        self._fail(f"expected a value, got {tok.text or 'end of expression'!r}", tok)
        raise AssertionError("unreachable")

    def _name(self, tok: _Tok):
        name = tok.text
        if "." in name:
            scope, key = name.split(".", 1)
            if scope in ("tag", "tags"):
                return (lambda c: c.tags.get(key, "")), "str"
            if scope in ("event", "events"):
                return (lambda c: key in c.events), "bool"
            self._fail(f"unknown scope {scope!r} (use tag.NAME or event.KIND)", tok)
        if name == "time_in_state":
            return (lambda c: c.time_in_state), "num"
        if name == "said":
            return (lambda c: c.said), "bool"
        return (lambda c: c.values.get(name, 0.0)), "num"


@dataclass(frozen=True)
class Guard:
    """A compiled guard expression; call `guard(ctx)` for a bool."""

    text: str
    _fn: Evaluator

    def __call__(self, ctx: GuardContext) -> bool:
        return bool(self._fn(ctx))


def compile_guard(text: str, *, limits: GuardLimits = DEFAULT_GUARD_LIMITS) -> Guard:
    """Parse and type-check `text`; raises InvalidArgument naming the column."""
    if not isinstance(text, str):
        raise ExpressionError(f"a guard must be a string, got {type(text).__name__}", text=str(text)[:40], column=1)
    if len(text) > limits.max_chars:
        raise ExpressionError(f"a guard is at most {limits.max_chars} characters (got {len(text)})",
                              text=text[:40] + "...", column=limits.max_chars + 1)
    fn, _typ = _Parser(text, limits).parse()
    return Guard(text, fn)
